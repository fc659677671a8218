#!/usr/bin/env bash
# Installs nanollama with tools/install.sh into a temporary prefix and checks
# what a build system finds there:
#   bash tools/test-install.sh
# - the layout: header, static library, shared library whose SONAME is
#   libnanollama.so.ABI, the symlinks libnanollama.so -> .so.ABI -> the file;
# - a second install changes nothing, and DESTDIR stages the same tree;
# - the consumers of examples/consumer-{pkgconfig,cmake,meson} build (with
#   -Werror) against the prefix through PKG_CONFIG_PATH, CMAKE_PREFIX_PATH and
#   Meson's pkg-config lookup, each as greedy-shared (needs libnanollama.so.ABI,
#   loaded from the prefix through its runpath) and greedy-static (needs no
#   libnanollama), and all six print the same greedy text with the shipped model.
# Needs a C compiler, make, pkg-config, cmake and readelf (fails without them);
# the Meson consumer is skipped, loudly, only when meson or ninja is missing.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
model="$root/models/kjv-llama.gguf"
start=$SECONDS

fail() {
    echo "test-install: FAIL: $*" >&2
    exit 1
}
for tool in cc make pkg-config cmake readelf; do
    command -v "$tool" >/dev/null || fail "$tool is not installed (apt-get install -y cmake pkg-config make binutils)"
done
[ -f "$model" ] || fail "no $model"
for d in cmake meson; do
    cmp -s "$root/examples/consumer-pkgconfig/greedy.c" "$root/examples/consumer-$d/greedy.c" ||
        fail "examples/consumer-$d/greedy.c differs from examples/consumer-pkgconfig/greedy.c (keep the copies equal)"
done

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
prefix="$tmp/prefix"
lib="$prefix/lib"
bash "$root/tools/install.sh" "$prefix"

# The layout, the soname and the symlinks.
abi="$(sed -n 's/^#define NANOLLAMA_ABI_VERSION \([0-9][0-9]*\)$/\1/p' "$root/include/nanollama.h")"
pkgid="$(cd "$root" && cargo pkgid)"
version="${pkgid##*[#@]}"
soname="libnanollama.so.$abi"
real="$soname.$version"
cmp "$root/include/nanollama.h" "$prefix/include/nanollama.h" || fail "the installed header differs"
cmp "$root/include/nanollama.hpp" "$prefix/include/nanollama.hpp" || fail "the installed C++ header differs"
[ -f "$lib/libnanollama.a" ] || fail "no $lib/libnanollama.a"
[ -f "$lib/$real" ] && [ ! -L "$lib/$real" ] || fail "$lib/$real is not a file"
[ "$(readlink "$lib/$soname")" = "$real" ] || fail "$lib/$soname does not point to $real"
[ "$(readlink "$lib/libnanollama.so")" = "$soname" ] || fail "$lib/libnanollama.so does not point to $soname"
got="$(readelf -d "$lib/$real" | grep '(SONAME)')" || fail "$real has no SONAME"
echo "$real: $got"
[[ "$got" == *"[$soname]" ]] || fail "the SONAME of $real is not $soname"
# It names what it needs (libc), so that strict hosts and ldd -r are content.
readelf -d "$lib/$real" | grep -q 'NEEDED.*\[libc\.so' || fail "$real does not say it needs libc"
if ldd -r "$lib/$real" 2>&1 | grep -q 'undefined symbol'; then
    fail "$real has undefined symbols (ldd -r)"
fi
for f in pkgconfig/nanollama.pc cmake/nanollama/nanollama-config.cmake \
    cmake/nanollama/nanollama-config-version.cmake; do
    [ -f "$lib/$f" ] || fail "no $lib/$f"
done
[ "$(PKG_CONFIG_PATH="$lib/pkgconfig" pkg-config --modversion nanollama)" = "$version" ] ||
    fail "pkg-config's version is not $version"

# A second install leaves the same tree, byte for byte.
snapshot() { (cd "$1" && find . -printf '%p %y %m %l\n' | sort && find . -type f -exec sha256sum {} + | sort); }
before="$(snapshot "$prefix")"
bash "$root/tools/install.sh" "$prefix" >/dev/null
[ "$(snapshot "$prefix")" = "$before" ] || fail "a second install changed the tree"

# DESTDIR: the same tree under DESTDIR/PREFIX, naming PREFIX inside.
DESTDIR="$tmp/stage" bash "$root/tools/install.sh" "$prefix" >/dev/null
[ "$(snapshot "$tmp/stage$prefix")" = "$before" ] || fail "DESTDIR staged another tree"

unset LD_LIBRARY_PATH
outputs=()
# check DIR: DIR/greedy-shared and DIR/greedy-static link as they should and run.
check() {
    local exe="$1/greedy-shared" out
    out="$(readelf -d "$exe")"
    grep -q "(NEEDED).*\[$soname\]" <<<"$out" || fail "$exe does not need $soname"
    out="$(ldd "$exe")"
    grep -q "$soname => $lib/$soname " <<<"$out" || fail "$exe does not load $lib/$soname: $out"
    exe="$1/greedy-static"
    out="$(readelf -d "$exe")"
    ! grep -q "(NEEDED).*libnanollama" <<<"$out" || fail "$exe needs libnanollama.so"
    for exe in "$1/greedy-shared" "$1/greedy-static"; do
        out="$("$exe" "$model" "In the beginning" 16)" || fail "$exe exited with $?"
        echo "$exe:"
        echo "$out" | sed 's/^/    /'
        outputs+=("$out")
    done
}

echo
echo "=== pkg-config consumer (examples/consumer-pkgconfig)"
mkdir "$tmp/pkgconfig"
PKG_CONFIG_PATH="$lib/pkgconfig" make -s -C "$tmp/pkgconfig" \
    -f "$root/examples/consumer-pkgconfig/Makefile" CFLAGS="-O2 -Wall -Wextra -Werror"
check "$tmp/pkgconfig"

echo
echo "=== CMake consumer (examples/consumer-cmake)"
cmake -S "$root/examples/consumer-cmake" -B "$tmp/cmake" -DCMAKE_PREFIX_PATH="$prefix" \
    -DCMAKE_C_FLAGS="-Wall -Wextra -Werror" >/dev/null
grep -qx "nanollama_DIR:PATH=$lib/cmake/nanollama" "$tmp/cmake/CMakeCache.txt" ||
    fail "CMake found another nanollama: $(grep nanollama_DIR "$tmp/cmake/CMakeCache.txt")"
cmake --build "$tmp/cmake" >/dev/null
check "$tmp/cmake"

echo
echo "=== Meson consumer (examples/consumer-meson)"
if command -v meson >/dev/null && command -v ninja >/dev/null; then
    PKG_CONFIG_PATH="$lib/pkgconfig" meson setup --werror "$tmp/meson" "$root/examples/consumer-meson" >/dev/null
    meson compile -C "$tmp/meson" >/dev/null
    check "$tmp/meson"
    meson_result="built and ran"
else
    meson_result="SKIPPED (meson or ninja not installed)"
    for _ in 1 2 3; do
        echo "!!!!!!!! test-install: THE MESON CONSUMER WAS SKIPPED: meson or ninja is not installed" \
            "(apt-get install -y meson ninja-build) !!!!!!!!" >&2
    done
fi

echo
for out in "${outputs[@]}"; do
    [ "$out" = "${outputs[0]}" ] || fail "the consumers printed different texts"
done
[ "$(echo "${outputs[0]}" | wc -l)" -eq 2 ] || fail "unexpected output: ${outputs[0]}"
echo "test-install: OK in $((SECONDS - start)) s: ${#outputs[@]} consumer programs print the same text; meson: $meson_result"
