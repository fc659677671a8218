#!/usr/bin/env bash
# Builds the library in release mode and installs it under PREFIX, for C
# programs and the build systems that look for it:
#   bash tools/install.sh PREFIX          (e.g. ~/.local or /usr/local)
#   DESTDIR=/tmp/stage bash tools/install.sh /usr   (packaging: files go under
#       DESTDIR/PREFIX, the paths written into them name PREFIX)
#
# What it writes (ABI = NANOLLAMA_ABI_VERSION of the header, VERSION = the
# crate version of Cargo.toml; today libnanollama.so.1.0.1.0):
#   include/nanollama.h                    the committed header
#   include/nanollama.hpp                  the C++ layer over it (header-only)
#   lib/libnanollama.a                     static library
#   lib/libnanollama.so.ABI.VERSION        shared library, soname libnanollama.so.ABI
#   lib/libnanollama.so.ABI  -> libnanollama.so.ABI.VERSION   (what programs load)
#   lib/libnanollama.so      -> libnanollama.so.ABI           (what -lnanollama finds)
#   lib/pkgconfig/nanollama.pc             pkg-config nanollama
#   lib/cmake/nanollama/nanollama-config.cmake, nanollama-config-version.cmake
#                                          find_package(nanollama): targets
#                                          nanollama::nanollama (shared) and
#                                          nanollama::static
# The soname's major is the ABI version, so a release that breaks the ABI
# installs beside the old one; the rest of the file name is the crate
# version, so each release has its own file. Running it again replaces the
# files (each by a rename, so running programs keep their copy) and changes
# nothing when nothing changed. Files of older versions are left in place.
set -euo pipefail

if [ $# -ne 1 ] || [ -z "$1" ]; then
    echo "usage: [DESTDIR=DIR] $0 PREFIX" >&2
    exit 2
fi
root="$(cd "$(dirname "$0")/.." && pwd)"
prefix="$1"
case "$prefix" in
    /*) ;;
    *)
        [ -z "${DESTDIR:-}" ] || { echo "install.sh: with DESTDIR, PREFIX must be absolute" >&2; exit 2; }
        prefix="$PWD/$prefix"
        ;;
esac
while [ "${prefix%/}" != "$prefix" ] && [ "$prefix" != / ]; do prefix="${prefix%/}"; done
dest="${DESTDIR:-}$prefix"

cargo="${CARGO:-cargo}"
(cd "$root" && "$cargo" build --release --lib)

# The crate version ("path+file:///...#nanollama@0.1.0" or "...#0.1.0"),
# the ABI version and where cargo put the libraries.
pkgid="$(cd "$root" && "$cargo" pkgid)"
version="${pkgid##*[#@]}"
abi="$(sed -n 's/^#define NANOLLAMA_ABI_VERSION \([0-9][0-9]*\)$/\1/p' "$root/include/nanollama.h")"
target_dir="$(cd "$root" && "$cargo" metadata --format-version 1 --no-deps |
    sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')"
pointer_bits="$(rustc --print cfg | sed -n 's/^target_pointer_width="\(.*\)"$/\1/p')"
if ! [[ "$version" =~ ^([0-9]+)\.([0-9]+)\.[0-9]+ ]] || [ -z "$abi" ] || [ -z "$target_dir" ] ||
    [ -z "$pointer_bits" ]; then
    echo "install.sh: cannot tell the version ($version), ABI ($abi), target directory" \
        "($target_dir) or pointer width ($pointer_bits)" >&2
    exit 1
fi
major="${BASH_REMATCH[1]}"
minor="${BASH_REMATCH[2]}"
built="$target_dir/release"
soname="libnanollama.so.$abi"
real="$soname.$version"

# The shared library must carry the soname (build.rs gives it one from
# src/ffi.rs; the header comes from the same constant).
if command -v readelf >/dev/null; then
    got="$(readelf -d "$built/libnanollama.so" | sed -n 's/.*(SONAME).*\[\(.*\)\]$/\1/p')"
    if [ "$got" != "$soname" ]; then
        echo "install.sh: $built/libnanollama.so has soname '$got', not $soname" >&2
        exit 1
    fi
fi

# put MODE SRC DIR NAME: SRC as DIR/NAME, through a temporary file and a rename.
put() {
    install -m "$1" "$2" "$3/.$4.tmp.$$"
    mv -f "$3/.$4.tmp.$$" "$3/$4"
}
# fill TEMPLATE: the template with its @NAME@ placeholders replaced.
fill() {
    local t
    t="$(cat "$1")"
    t="${t//@PREFIX@/"$prefix"}"
    t="${t//@VERSION@/"$version"}"
    t="${t//@MAJOR@/"$major"}"
    t="${t//@MINOR@/"$minor"}"
    t="${t//@ABI@/"$abi"}"
    t="${t//@REAL@/"$real"}"
    t="${t//@POINTER_BITS@/"$pointer_bits"}"
    t="${t//@SIZEOF_VOID_P@/"$((pointer_bits / 8))"}"
    printf '%s\n' "$t"
}

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
fill "$root/tools/pkg/nanollama.pc.in" >"$tmp/nanollama.pc"
fill "$root/tools/pkg/nanollama-config.cmake.in" >"$tmp/nanollama-config.cmake"
fill "$root/tools/pkg/nanollama-config-version.cmake.in" >"$tmp/nanollama-config-version.cmake"

install -d "$dest/include" "$dest/lib/pkgconfig" "$dest/lib/cmake/nanollama"
put 0644 "$root/include/nanollama.h" "$dest/include" nanollama.h
put 0644 "$root/include/nanollama.hpp" "$dest/include" nanollama.hpp
put 0644 "$built/libnanollama.a" "$dest/lib" libnanollama.a
put 0755 "$built/libnanollama.so" "$dest/lib" "$real"
ln -sfn "$real" "$dest/lib/$soname"
ln -sfn "$soname" "$dest/lib/libnanollama.so"
put 0644 "$tmp/nanollama.pc" "$dest/lib/pkgconfig" nanollama.pc
put 0644 "$tmp/nanollama-config.cmake" "$dest/lib/cmake/nanollama" nanollama-config.cmake
put 0644 "$tmp/nanollama-config-version.cmake" "$dest/lib/cmake/nanollama" nanollama-config-version.cmake

echo "installed nanollama $version (ABI $abi) into $dest:"
echo "  $prefix/include/nanollama.{h,hpp}, $prefix/lib/{libnanollama.a,$real,$soname,libnanollama.so}"
echo "  pkg-config: PKG_CONFIG_PATH=$prefix/lib/pkgconfig pkg-config --cflags --libs nanollama"
echo "  CMake:      -DCMAKE_PREFIX_PATH=$prefix, find_package(nanollama), nanollama::nanollama or nanollama::static"
