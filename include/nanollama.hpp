/*
 * nanollama.hpp: a header-only C++17/C++20 layer over the C API of
 * nanollama.h (read that header's preamble first: memory, lifetimes,
 * threads, the ABI). Nothing here adds behaviour; it owns memory, turns
 * statuses into values or exceptions, and takes spans and strings.
 *
 * Memory. Model, Context, Sampler and Vocab own the memory their object
 * lives in: by default they allocate it themselves (64-byte aligned, with
 * operator new(std::align_val_t), nothrow) and free it in their destructor;
 * every factory also has an overload taking the caller's memory
 * (span<std::byte>, or pointer and size), which is borrowed, never freed,
 * and must stay valid while the object lives. They are movable, not
 * copyable; a moved-from object is empty (get() is null and its calls give
 * NANOLLAMA_STATUS_NULL_POINTER). Moving one never moves its memory, so the
 * C handle stays the same.
 *
 * Lifetimes (as in the C header, A must outlive B):
 *   GGUF bytes given to Model / Vocab > the Model / Vocab (borrowed, never
 *     copied: the weights are read in place);
 *   the Model (the object or whatever it was moved into)
 *                                     > every Context made from it (a
 *     Context keeps the C model handle, not a pointer to the C++ object,
 *     so moving the Model is fine; destroying it is not);
 *   the Vocab                         > every Detokenizer made from it;
 *   a ThreadPool or parallel_for callback and its user data
 *                                     > every Context it was given to.
 *
 * Errors: two APIs over the same calls, the user's choice.
 *   - try_*: noexcept, [[nodiscard]], returns Result<T>, which holds a T or
 *     an Error (.code(): the nanollama_status, .message():
 *     nanollama_status_str). Result<T> is std::expected<T, Error> when the
 *     standard library has it (__cpp_lib_expected, C++23), else a small
 *     type of this header with the same core interface (has_value, bool,
 *     *, ->, value, error, value_or). Check before value(): on an error it
 *     throws (std::bad_expected_access, or Exception for this header's
 *     type) or, without exceptions, aborts. Allocation failure inside a
 *     try_ call is the error code status_out_of_memory (not a C status).
 *   - The same names without try_ (and the constructors), which return
 *     the value and throw nanollama::Exception (a std::runtime_error with
 *     the Error) on failure. They exist unless NANOLLAMA_NO_EXCEPTIONS is
 *     defined or exceptions are off (-fno-exceptions: __cpp_exceptions is
 *     not defined); then only the try_ API is there. The header defines
 *     NANOLLAMA_EXCEPTIONS to 1 or 0 accordingly (do not define it).
 *   A refused call leaves every object as it was, as in C.
 *
 * Buffers: functions that write into the caller's span (no allocation)
 * end in _into (try_tokenize_into, try_token_to_piece_into,
 * Detokenizer::try_push_into, try_state_save_into); the others allocate
 * the std::vector or std::string they return. Spans are std::span in
 * C++20 and a minimal nanollama::span (pointer and size) in C++17; every
 * memory or byte argument also has a pointer-and-size overload.
 *
 * Threads: as the C objects. A Model and a Vocab may be shared by any
 * number of threads; a Context, a Sampler and a Detokenizer belong to one
 * thread at a time. ThreadPool (std::thread) is one ready parallel_for;
 * ContextParams::parallel_for takes any nanollama_parallel_for_fn. Define
 * NANOLLAMA_NO_THREAD_POOL to leave ThreadPool (and <thread>) out, for
 * hosts without threads.
 */
#ifndef NANOLLAMA_HPP
#define NANOLLAMA_HPP

#include "nanollama.h"

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <iterator>
#include <limits>
#include <new>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

#if !defined(NANOLLAMA_NO_THREAD_POOL)
#include <atomic>
#include <condition_variable>
#include <mutex>
#include <thread>
#endif
#if __has_include(<version>)
#include <version>
#endif
#if defined(__cpp_lib_span)
#include <span>
#endif
#if defined(__cpp_lib_expected)
#include <expected>
#endif
#if !defined(NANOLLAMA_NO_EXCEPTIONS) && defined(__cpp_exceptions)
#define NANOLLAMA_EXCEPTIONS 1
#include <stdexcept>
#else
#define NANOLLAMA_EXCEPTIONS 0
#endif

namespace nanollama {

// Result, span and the throwing API differ with the standard library and
// the exception settings, and return types are not part of a function's
// linker name: one inline namespace per configuration keeps translation
// units built differently (C++17 and C++23, with and without exceptions)
// in one program from sharing inline functions that are not the same.
#if defined(__cpp_lib_expected)
inline namespace result_std {
#else
inline namespace result_own {
#endif
#if defined(__cpp_lib_span)
inline namespace span_std {
#else
inline namespace span_own {
#endif
#if NANOLLAMA_EXCEPTIONS
inline namespace throwing {
#elif defined(__cpp_exceptions)
inline namespace nothrow {
#else
inline namespace noexceptions {
#endif

// The alignment of the memory of models, contexts, samplers, vocabularies
// and tokenizer scratch.
inline constexpr std::size_t alignment = 64;

// Not a C status: memory this header allocates could not be had.
inline constexpr nanollama_status status_out_of_memory = 0x10000u;

// ---------------------------------------------------------------- span

#if defined(__cpp_lib_span)
template <class T>
using span = std::span<T>;
#else
// C++17: the part of std::span this header uses (dynamic extent): a
// pointer and a count, made from an array, a contiguous container or
// pointer and size.
template <class T>
class span {
  template <class C>
  using data_t = decltype(std::data(std::declval<C &>()));
  template <class C>
  using from_container = std::enable_if_t<
      !std::is_same_v<std::remove_cv_t<std::remove_reference_t<C>>, span> &&
      !std::is_array_v<std::remove_reference_t<C>> &&
      std::is_convertible_v<std::remove_pointer_t<data_t<C>> (*)[], T (*)[]>>;

 public:
  using element_type = T;
  using value_type = std::remove_cv_t<T>;
  using size_type = std::size_t;
  using pointer = T *;
  using iterator = T *;

  constexpr span() noexcept = default;
  constexpr span(T *data, std::size_t size) noexcept : data_(data), size_(size) {}
  template <std::size_t N>
  constexpr span(T (&a)[N]) noexcept : data_(a), size_(N) {}
  template <class C, class = from_container<C>>
  constexpr span(C &&c) noexcept : data_(std::data(c)), size_(std::size(c)) {}
  template <class U, class = std::enable_if_t<std::is_convertible_v<U (*)[], T (*)[]>>>
  constexpr span(const span<U> &s) noexcept : data_(s.data()), size_(s.size()) {}

  constexpr T *data() const noexcept { return data_; }
  constexpr std::size_t size() const noexcept { return size_; }
  constexpr std::size_t size_bytes() const noexcept { return size_ * sizeof(T); }
  [[nodiscard]] constexpr bool empty() const noexcept { return size_ == 0; }
  constexpr T *begin() const noexcept { return data_; }
  constexpr T *end() const noexcept { return data_ + size_; }
  constexpr T &operator[](std::size_t i) const noexcept { return data_[i]; }
  constexpr span first(std::size_t n) const noexcept { return span(data_, n); }
  constexpr span last(std::size_t n) const noexcept { return span(data_ + size_ - n, n); }
  constexpr span subspan(std::size_t offset) const noexcept {
    return span(data_ + offset, size_ - offset);
  }
  constexpr span subspan(std::size_t offset, std::size_t count) const noexcept {
    return span(data_ + offset, count);
  }

 private:
  T *data_ = nullptr;
  std::size_t size_ = 0;
};
#endif

// Tokens in and out.
using token = nanollama_token;

// ------------------------------------------------------- Error, Result

// A failed call: a nanollama_status other than NANOLLAMA_STATUS_OK (or
// status_out_of_memory).
class Error {
 public:
  constexpr explicit Error(nanollama_status code) noexcept : code_(code) {}
  [[nodiscard]] constexpr nanollama_status code() const noexcept { return code_; }
  // Static, NUL-terminated.
  [[nodiscard]] const char *message() const noexcept {
    if (code_ == status_out_of_memory) return "out of memory (nanollama.hpp allocation)";
    return nanollama_status_str(code_);
  }
  friend constexpr bool operator==(Error a, Error b) noexcept { return a.code_ == b.code_; }
  friend constexpr bool operator!=(Error a, Error b) noexcept { return a.code_ != b.code_; }

 private:
  nanollama_status code_;
};

#if NANOLLAMA_EXCEPTIONS
// What the throwing API throws: what() is the status message.
class Exception : public std::runtime_error {
 public:
  explicit Exception(Error e) : std::runtime_error(e.message()), error_(e) {}
  [[nodiscard]] Error error() const noexcept { return error_; }
  [[nodiscard]] nanollama_status code() const noexcept { return error_.code(); }

 private:
  Error error_;
};
#endif

namespace detail {
[[noreturn]] inline void bad_access(Error e) {
#if NANOLLAMA_EXCEPTIONS
  throw Exception(e);
#else
  (void)e;
  std::abort();
#endif
}
}  // namespace detail

#if defined(__cpp_lib_expected)
template <class T>
using Result = std::expected<T, Error>;
namespace detail {
inline std::unexpected<Error> failure(nanollama_status s) noexcept {
  return std::unexpected<Error>(Error(s));
}
}  // namespace detail
#else
// A T or an Error: the core of std::expected<T, Error>.
template <class T>
class [[nodiscard]] Result {
  static_assert(!std::is_same_v<std::remove_cv_t<T>, Error>, "Result<Error>");

 public:
  using value_type = T;
  using error_type = Error;

  template <class U = T, class = std::enable_if_t<std::is_constructible_v<T, U &&> &&
                                                  !std::is_same_v<std::decay_t<U>, Result> &&
                                                  !std::is_same_v<std::decay_t<U>, Error>>>
  Result(U &&v) noexcept(std::is_nothrow_constructible_v<T, U &&>)
      : v_(std::in_place_index<0>, std::forward<U>(v)) {}
  Result(Error e) noexcept : v_(std::in_place_index<1>, e) {}

  [[nodiscard]] bool has_value() const noexcept { return v_.index() == 0; }
  explicit operator bool() const noexcept { return has_value(); }

  // Only when has_value().
  T &operator*() & noexcept { return *std::get_if<0>(&v_); }
  const T &operator*() const & noexcept { return *std::get_if<0>(&v_); }
  T &&operator*() && noexcept { return std::move(*std::get_if<0>(&v_)); }
  T *operator->() noexcept { return std::get_if<0>(&v_); }
  const T *operator->() const noexcept { return std::get_if<0>(&v_); }

  // The value; on an error throws Exception (aborts without exceptions).
  T &value() & {
    if (!has_value()) detail::bad_access(error());
    return **this;
  }
  const T &value() const & {
    if (!has_value()) detail::bad_access(error());
    return **this;
  }
  T &&value() && {
    if (!has_value()) detail::bad_access(error());
    return std::move(**this);
  }
  template <class U>
  T value_or(U &&other) const & {
    return has_value() ? **this : static_cast<T>(std::forward<U>(other));
  }
  template <class U>
  T value_or(U &&other) && {
    return has_value() ? std::move(**this) : static_cast<T>(std::forward<U>(other));
  }

  // Only when !has_value().
  [[nodiscard]] Error error() const noexcept { return *std::get_if<1>(&v_); }

 private:
  std::variant<T, Error> v_;
};

// Success or an Error.
template <>
class [[nodiscard]] Result<void> {
 public:
  using value_type = void;
  using error_type = Error;

  Result() noexcept = default;
  Result(Error e) noexcept : status_(e.code()) {}

  [[nodiscard]] bool has_value() const noexcept { return status_ == NANOLLAMA_STATUS_OK; }
  explicit operator bool() const noexcept { return has_value(); }
  void operator*() const noexcept {}
  void value() const {
    if (!has_value()) detail::bad_access(error());
  }
  [[nodiscard]] Error error() const noexcept { return Error(status_); }

 private:
  nanollama_status status_ = NANOLLAMA_STATUS_OK;
};

namespace detail {
inline Error failure(nanollama_status s) noexcept { return Error(s); }
}  // namespace detail
#endif

namespace detail {
// Result<void> of a C status.
inline Result<void> check(nanollama_status s) noexcept {
  if (s != NANOLLAMA_STATUS_OK) return failure(s);
  return {};
}

// Resizes a vector or string; false when memory is short.
template <class V>
bool try_resize(V &v, std::size_t n) noexcept {
#if defined(__cpp_exceptions)
  try {
    v.resize(n);
  } catch (...) {
    return false;
  }
#else
  v.resize(n);
#endif
  return true;
}

inline const std::uint8_t *u8(const void *p) noexcept {
  return static_cast<const std::uint8_t *>(p);
}
}  // namespace detail

#if NANOLLAMA_EXCEPTIONS
// The value of a Result, or throws its Error as an Exception.
template <class T>
T unwrap(Result<T> &&r) {
  if (!r.has_value()) throw Exception(r.error());
  return std::move(*r);
}
inline void unwrap(Result<void> &&r) {
  if (!r.has_value()) throw Exception(r.error());
}
#endif

// The library's version (a static struct) and whether the library
// implements the ABI this header was written for.
[[nodiscard]] inline const nanollama_version_info &version() noexcept { return *nanollama_version(); }
[[nodiscard]] inline bool abi_compatible() noexcept {
  return nanollama_version()->abi == NANOLLAMA_ABI_VERSION;
}

// --------------------------------------------------------------- Memory

// Bytes an object lives in: allocated here (64-byte aligned, freed by the
// destructor) or borrowed from the caller (never freed). Movable only.
class Memory {
 public:
  Memory() noexcept = default;
  Memory(Memory &&o) noexcept
      : data_(std::exchange(o.data_, nullptr)),
        size_(std::exchange(o.size_, 0)),
        owned_(std::exchange(o.owned_, false)) {}
  Memory &operator=(Memory &&o) noexcept {
    Memory t(std::move(o));
    swap(t);
    return *this;
  }
  Memory(const Memory &) = delete;
  Memory &operator=(const Memory &) = delete;
  ~Memory() {
    if (owned_) ::operator delete(data_, std::align_val_t(alignment));
  }

  // n bytes (at least one cache line) aligned to 64, uninitialized.
  [[nodiscard]] static Result<Memory> try_allocate(std::size_t n) noexcept {
    // No object is larger than PTRDIFF_MAX bytes.
    if (n > static_cast<std::size_t>(std::numeric_limits<std::ptrdiff_t>::max()) - alignment)
      return detail::failure(status_out_of_memory);
    std::size_t rounded = n == 0 ? alignment : (n + alignment - 1) / alignment * alignment;
    void *p = ::operator new(rounded, std::align_val_t(alignment), std::nothrow);
    if (p == nullptr) return detail::failure(status_out_of_memory);
    return Memory(p, n, true);
  }
  // The caller's bytes, not freed here.
  [[nodiscard]] static Memory borrow(void *data, std::size_t size) noexcept {
    return Memory(data, size, false);
  }
  [[nodiscard]] static Memory borrow(span<std::byte> bytes) noexcept {
    return Memory(bytes.data(), bytes.size(), false);
  }

  [[nodiscard]] void *data() const noexcept { return data_; }
  [[nodiscard]] std::size_t size() const noexcept { return size_; }
  // Allocated here (freed by the destructor).
  [[nodiscard]] bool owned() const noexcept { return owned_; }
  [[nodiscard]] span<std::byte> bytes() const noexcept {
    return span<std::byte>(static_cast<std::byte *>(data_), size_);
  }
  void swap(Memory &o) noexcept {
    std::swap(data_, o.data_);
    std::swap(size_, o.size_);
    std::swap(owned_, o.owned_);
  }

 private:
  Memory(void *data, std::size_t size, bool owned) noexcept
      : data_(data), size_(size), owned_(owned) {}
  void *data_ = nullptr;
  std::size_t size_ = 0;
  bool owned_ = false;
};

namespace detail {
// Memory of `need` bytes: the caller's (when given) or allocated.
inline Result<Memory> memory_for(std::size_t need, const Memory *caller) noexcept {
  if (caller != nullptr) return Memory::borrow(caller->data(), caller->size());
  return Memory::try_allocate(need);
}

// An object of the C API with its memory: the handle is null when empty.
template <class Handle>
class Owner {
 public:
  Owner() noexcept = default;
  Owner(Memory mem, Handle *h) noexcept : mem_(std::move(mem)), handle_(h) {}
  Owner(Owner &&o) noexcept : mem_(std::move(o.mem_)), handle_(std::exchange(o.handle_, nullptr)) {}
  Owner &operator=(Owner &&o) noexcept {
    Owner t(std::move(o));
    std::swap(mem_, t.mem_);
    std::swap(handle_, t.handle_);
    return *this;
  }
  Owner(const Owner &) = delete;
  Owner &operator=(const Owner &) = delete;
  ~Owner() = default;

  Handle *get() const noexcept { return handle_; }
  const Memory &memory() const noexcept { return mem_; }

 private:
  Memory mem_;
  Handle *handle_ = nullptr;
};
}  // namespace detail

// ---------------------------------------------------------------- Model

// A loaded model: read-only, shareable by any number of threads. The GGUF
// bytes are borrowed and must outlive it (and every Context made from it).
class Model {
 public:
  Model() noexcept = default;

  // Bytes of memory the model needs for this file (every check of the file
  // is made here already).
  [[nodiscard]] static Result<std::size_t> try_size(span<const std::byte> gguf) noexcept {
    std::size_t n = 0;
    nanollama_status s = nanollama_model_size(detail::u8(gguf.data()), gguf.size(), &n);
    if (s != NANOLLAMA_STATUS_OK) return detail::failure(s);
    return n;
  }
  // Loads the model, in memory allocated here.
  [[nodiscard]] static Result<Model> try_load(span<const std::byte> gguf) noexcept {
    return load_in(gguf, nullptr);
  }
  [[nodiscard]] static Result<Model> try_load(const void *gguf, std::size_t len) noexcept {
    return try_load(span<const std::byte>(static_cast<const std::byte *>(gguf), len));
  }
  // Loads the model in the caller's memory (64-byte aligned, try_size bytes).
  [[nodiscard]] static Result<Model> try_load(span<const std::byte> gguf,
                                              span<std::byte> mem) noexcept {
    Memory m = Memory::borrow(mem);
    return load_in(gguf, &m);
  }
  [[nodiscard]] static Result<Model> try_load(const void *gguf, std::size_t len, void *mem,
                                              std::size_t mem_len) noexcept {
    return try_load(span<const std::byte>(static_cast<const std::byte *>(gguf), len),
                    span<std::byte>(static_cast<std::byte *>(mem), mem_len));
  }
#if NANOLLAMA_EXCEPTIONS
  explicit Model(span<const std::byte> gguf) : Model(unwrap(try_load(gguf))) {}
  Model(const void *gguf, std::size_t len) : Model(unwrap(try_load(gguf, len))) {}
  Model(span<const std::byte> gguf, span<std::byte> mem) : Model(unwrap(try_load(gguf, mem))) {}
  Model(const void *gguf, std::size_t len, void *mem, std::size_t mem_len)
      : Model(unwrap(try_load(gguf, len, mem, mem_len))) {}
  [[nodiscard]] static std::size_t size(span<const std::byte> gguf) { return unwrap(try_size(gguf)); }
#endif

  // The C handle (null when empty).
  [[nodiscard]] const nanollama_model *get() const noexcept { return owner_.get(); }
  explicit operator bool() const noexcept { return get() != nullptr; }
  // Hyper-parameters (zeroed when empty).
  [[nodiscard]] const nanollama_model_info &info() const noexcept { return info_; }
  [[nodiscard]] std::uint32_t n_vocab() const noexcept { return info_.n_vocab; }
  [[nodiscard]] const Memory &memory() const noexcept { return owner_.memory(); }

 private:
  static Result<Model> load_in(span<const std::byte> gguf, const Memory *caller) noexcept {
    const std::uint8_t *g = detail::u8(gguf.data());
    std::size_t need = 0;
    nanollama_status s = nanollama_model_size(g, gguf.size(), &need);
    if (s != NANOLLAMA_STATUS_OK) return detail::failure(s);
    Result<Memory> mem = detail::memory_for(need, caller);
    if (!mem) return detail::failure(mem.error().code());
    const nanollama_model *h = nullptr;
    s = nanollama_model_init(g, gguf.size(), mem->data(), mem->size(), &h);
    if (s != NANOLLAMA_STATUS_OK) return detail::failure(s);
    Model m;
    m.owner_ = detail::Owner<const nanollama_model>(std::move(*mem), h);
    s = nanollama_model_get_info(h, &m.info_, sizeof m.info_);
    if (s != NANOLLAMA_STATUS_OK) return detail::failure(s);
    return m;
  }

  detail::Owner<const nanollama_model> owner_;
  nanollama_model_info info_{};
};

// ---------------------------------------------------------------- Vocab

// Flags of tokenize (nanollama_tokenize_flags values, OR-ed).
using tokenize_flags = std::uint32_t;

// A vocabulary: the tokenizer of a GGUF file. Read-only, shareable by any
// number of threads. The GGUF bytes are borrowed and must outlive it.
class Vocab {
 public:
  Vocab() noexcept = default;

  [[nodiscard]] static Result<std::size_t> try_size(span<const std::byte> gguf) noexcept {
    std::size_t n = 0;
    nanollama_status s = nanollama_vocab_size(detail::u8(gguf.data()), gguf.size(), &n);
    if (s != NANOLLAMA_STATUS_OK) return detail::failure(s);
    return n;
  }
  [[nodiscard]] static Result<Vocab> try_load(span<const std::byte> gguf) noexcept {
    return load_in(gguf, nullptr);
  }
  [[nodiscard]] static Result<Vocab> try_load(const void *gguf, std::size_t len) noexcept {
    return try_load(span<const std::byte>(static_cast<const std::byte *>(gguf), len));
  }
  [[nodiscard]] static Result<Vocab> try_load(span<const std::byte> gguf,
                                              span<std::byte> mem) noexcept {
    Memory m = Memory::borrow(mem);
    return load_in(gguf, &m);
  }
  [[nodiscard]] static Result<Vocab> try_load(const void *gguf, std::size_t len, void *mem,
                                              std::size_t mem_len) noexcept {
    return try_load(span<const std::byte>(static_cast<const std::byte *>(gguf), len),
                    span<std::byte>(static_cast<std::byte *>(mem), mem_len));
  }
#if NANOLLAMA_EXCEPTIONS
  explicit Vocab(span<const std::byte> gguf) : Vocab(unwrap(try_load(gguf))) {}
  Vocab(const void *gguf, std::size_t len) : Vocab(unwrap(try_load(gguf, len))) {}
  Vocab(span<const std::byte> gguf, span<std::byte> mem) : Vocab(unwrap(try_load(gguf, mem))) {}
  Vocab(const void *gguf, std::size_t len, void *mem, std::size_t mem_len)
      : Vocab(unwrap(try_load(gguf, len, mem, mem_len))) {}
#endif

  [[nodiscard]] const nanollama_vocab *get() const noexcept { return owner_.get(); }
  explicit operator bool() const noexcept { return get() != nullptr; }
  [[nodiscard]] const nanollama_vocab_info &info() const noexcept { return info_; }
  [[nodiscard]] std::uint32_t n_vocab() const noexcept { return info_.n_vocab; }
  [[nodiscard]] const Memory &memory() const noexcept { return owner_.memory(); }

  // Whether generation ends at `t` (EOS, end of turn, ...).
  [[nodiscard]] Result<bool> try_is_eog(token t) const noexcept {
    bool eog = false;
    nanollama_status s = nanollama_vocab_is_eog(get(), t, &eog);
    if (s != NANOLLAMA_STATUS_OK) return detail::failure(s);
    return eog;
  }

  // Bytes of scratch tokenize needs for texts of up to `max_text_len`
  // bytes (0 when that overflows).
  [[nodiscard]] static std::size_t scratch_size(std::size_t max_text_len) noexcept {
    return nanollama_tokenize_scratch_size(max_text_len);
  }

  // No allocation: encodes `text` into `out` with the caller's scratch
  // (64-byte aligned, scratch_size(text.size()) bytes); the count written.
  // BUFFER_TOO_SMALL when `out` is short (try_count tells the count).
  [[nodiscard]] Result<std::size_t> try_tokenize_into(std::string_view text, span<token> out,
                                                 span<std::byte> scratch,
                                                 tokenize_flags flags =
                                                     NANOLLAMA_TOKENIZE_FLAGS_ADD_SPECIAL) const noexcept {
    std::size_t n = 0;
    nanollama_status s = nanollama_tokenize(get(), detail::u8(text.data()), text.size(), flags,
                                            scratch.data(), scratch.size(), out.data(), out.size(), &n);
    if (s != NANOLLAMA_STATUS_OK) return detail::failure(s);
    return n;
  }
  // No allocation: the number of tokens `text` encodes to.
  [[nodiscard]] Result<std::size_t> try_count(std::string_view text, span<std::byte> scratch,
                                              tokenize_flags flags =
                                                  NANOLLAMA_TOKENIZE_FLAGS_ADD_SPECIAL) const noexcept {
    std::size_t n = 0;
    nanollama_status s = nanollama_tokenize(get(), detail::u8(text.data()), text.size(), flags,
                                            scratch.data(), scratch.size(), nullptr, 0, &n);
    if (s != NANOLLAMA_STATUS_OK && s != NANOLLAMA_STATUS_BUFFER_TOO_SMALL) return detail::failure(s);
    return n;
  }
  // Allocates the scratch and the tokens.
  [[nodiscard]] Result<std::vector<token>> try_tokenize(
      std::string_view text, tokenize_flags flags = NANOLLAMA_TOKENIZE_FLAGS_ADD_SPECIAL) const noexcept {
    std::size_t scratch_len = scratch_size(text.size());
    if (scratch_len == 0) return detail::failure(status_out_of_memory);
    Result<Memory> scratch = Memory::try_allocate(scratch_len);
    if (!scratch) return detail::failure(scratch.error().code());
    std::vector<token> out;
    // Room for one token per byte, BOS, EOS and a leading space: usually
    // one call; else the count the library asks for.
    std::size_t cap = text.size() + 4;
    for (int attempt = 0; attempt < 2; attempt++) {
      if (!detail::try_resize(out, cap)) return detail::failure(status_out_of_memory);
      std::size_t n = 0;
      nanollama_status s = nanollama_tokenize(get(), detail::u8(text.data()), text.size(), flags,
                                              scratch->data(), scratch->size(), out.data(), out.size(), &n);
      if (s == NANOLLAMA_STATUS_OK) {
        out.resize(n);
        return out;
      }
      if (s != NANOLLAMA_STATUS_BUFFER_TOO_SMALL) return detail::failure(s);
      cap = n;
    }
    return detail::failure(NANOLLAMA_STATUS_BUFFER_TOO_SMALL);
  }

  // No allocation: the text of `t` into `out`; its length. Control tokens
  // are empty unless `special`. BUFFER_TOO_SMALL when `out` is short.
  [[nodiscard]] Result<std::size_t> try_token_to_piece_into(token t, span<char> out,
                                                       bool special = false) const noexcept {
    std::size_t n = 0;
    nanollama_status s = nanollama_token_to_piece(get(), t, special ? 1u : 0u,
                                                  reinterpret_cast<std::uint8_t *>(out.data()),
                                                  out.size(), &n);
    if (s != NANOLLAMA_STATUS_OK) return detail::failure(s);
    return n;
  }
  [[nodiscard]] Result<std::string> try_token_to_piece(token t, bool special = false) const noexcept {
    std::string out;
    std::size_t n = 0;
    nanollama_status s = nanollama_token_to_piece(get(), t, special ? 1u : 0u, nullptr, 0, &n);
    if (s != NANOLLAMA_STATUS_OK && s != NANOLLAMA_STATUS_BUFFER_TOO_SMALL) return detail::failure(s);
    if (!detail::try_resize(out, n)) return detail::failure(status_out_of_memory);
    s = nanollama_token_to_piece(get(), t, special ? 1u : 0u,
                                 reinterpret_cast<std::uint8_t *>(out.data()), out.size(), &n);
    if (s != NANOLLAMA_STATUS_OK) return detail::failure(s);
    return out;
  }
  // The text of a token sequence (through a streaming detokenizer, so
  // characters split across tokens come out whole).
  [[nodiscard]] Result<std::string> try_detokenize(span<const token> tokens) const noexcept;

#if NANOLLAMA_EXCEPTIONS
  [[nodiscard]] bool is_eog(token t) const { return unwrap(try_is_eog(t)); }
  [[nodiscard]] std::vector<token> tokenize(std::string_view text,
                                            tokenize_flags flags = NANOLLAMA_TOKENIZE_FLAGS_ADD_SPECIAL) const {
    return unwrap(try_tokenize(text, flags));
  }
  [[nodiscard]] std::size_t tokenize_into(std::string_view text, span<token> out, span<std::byte> scratch,
                                          tokenize_flags flags = NANOLLAMA_TOKENIZE_FLAGS_ADD_SPECIAL) const {
    return unwrap(try_tokenize_into(text, out, scratch, flags));
  }
  [[nodiscard]] std::string token_to_piece(token t, bool special = false) const {
    return unwrap(try_token_to_piece(t, special));
  }
  [[nodiscard]] std::string detokenize(span<const token> tokens) const {
    return unwrap(try_detokenize(tokens));
  }
#endif

 private:
  static Result<Vocab> load_in(span<const std::byte> gguf, const Memory *caller) noexcept {
    const std::uint8_t *g = detail::u8(gguf.data());
    std::size_t need = 0;
    nanollama_status s = nanollama_vocab_size(g, gguf.size(), &need);
    if (s != NANOLLAMA_STATUS_OK) return detail::failure(s);
    Result<Memory> mem = detail::memory_for(need, caller);
    if (!mem) return detail::failure(mem.error().code());
    const nanollama_vocab *h = nullptr;
    s = nanollama_vocab_init(g, gguf.size(), mem->data(), mem->size(), &h);
    if (s != NANOLLAMA_STATUS_OK) return detail::failure(s);
    Vocab v;
    v.owner_ = detail::Owner<const nanollama_vocab>(std::move(*mem), h);
    s = nanollama_vocab_get_info(h, &v.info_, sizeof v.info_);
    if (s != NANOLLAMA_STATUS_OK) return detail::failure(s);
    return v;
  }

  detail::Owner<const nanollama_vocab> owner_;
  nanollama_vocab_info info_{};
};

// ---------------------------------------------------------- Detokenizer

// Streaming token-to-text: bytes of a character split across tokens come
// out together. Plain data (copyable); uses its Vocab, which must outlive
// it. One thread at a time.
class Detokenizer {
 public:
  // 260 bytes always suffice for one push (nanollama.h).
  static constexpr std::size_t max_push = 260;

  explicit Detokenizer(const Vocab &vocab) noexcept : vocab_(vocab.get()) {
    nanollama_detokenizer_init(&d_);
  }
  // Forgets pending bytes.
  void reset() noexcept { nanollama_detokenizer_init(&d_); }

  // No allocation: the text `t` completes, written to `out`; its length.
  [[nodiscard]] Result<std::size_t> try_push_into(token t, span<char> out) noexcept {
    std::size_t n = 0;
    nanollama_status s = nanollama_detokenizer_push(
        &d_, vocab_, t, reinterpret_cast<std::uint8_t *>(out.data()), out.size(), &n);
    if (s != NANOLLAMA_STATUS_OK) return detail::failure(s);
    return n;
  }
  // The text `t` completes, in this object's buffer: valid until the next
  // push or flush.
  [[nodiscard]] Result<std::string_view> try_push(token t) noexcept {
    Result<std::size_t> n = try_push_into(t, span<char>(buf_, sizeof buf_));
    if (!n) return detail::failure(n.error().code());
    return std::string_view(buf_, *n);
  }
  // The bytes still held (an incomplete character at the end; at most 3),
  // in this object's buffer; empties it.
  [[nodiscard]] Result<std::string_view> try_flush() noexcept {
    std::size_t n = 0;
    nanollama_status s =
        nanollama_detokenizer_flush(&d_, reinterpret_cast<std::uint8_t *>(buf_), sizeof buf_, &n);
    if (s != NANOLLAMA_STATUS_OK) return detail::failure(s);
    return std::string_view(buf_, n);
  }
#if NANOLLAMA_EXCEPTIONS
  [[nodiscard]] std::string_view push(token t) { return unwrap(try_push(t)); }
  [[nodiscard]] std::string_view flush() { return unwrap(try_flush()); }
#endif

  [[nodiscard]] nanollama_detokenizer &raw() noexcept { return d_; }

 private:
  const nanollama_vocab *vocab_;
  nanollama_detokenizer d_{};
  char buf_[max_push]{};
};

inline Result<std::string> Vocab::try_detokenize(span<const token> tokens) const noexcept {
  Detokenizer d(*this);
  std::string out;
  for (token t : tokens) {
    Result<std::string_view> piece = d.try_push(t);
    if (!piece) return detail::failure(piece.error().code());
    if (!detail::try_resize(out, out.size() + piece->size())) return detail::failure(status_out_of_memory);
    std::memcpy(out.data() + out.size() - piece->size(), piece->data(), piece->size());
  }
  Result<std::string_view> tail = d.try_flush();
  if (!tail) return detail::failure(tail.error().code());
  if (!detail::try_resize(out, out.size() + tail->size())) return detail::failure(status_out_of_memory);
  std::memcpy(out.data() + out.size() - tail->size(), tail->data(), tail->size());
  return out;
}

// ----------------------------------------------------------- ThreadPool

#if !defined(NANOLLAMA_NO_THREAD_POOL)

// A fixed pool of std::threads as the library's parallel_for: the caller
// of decode works too, so n_threads - 1 workers are started. Not movable
// (its address is the callback's user data); it must outlive the contexts
// it is given to (ContextParams::thread_pool). One decode at a time.
class ThreadPool {
 public:
  // Fewer workers when threads cannot be started.
  explicit ThreadPool(unsigned n_threads) {
    unsigned workers = n_threads > 1 ? n_threads - 1 : 0;
#if defined(__cpp_exceptions)
    try {
      workers_.reserve(workers);
      for (unsigned i = 0; i < workers; i++) workers_.emplace_back([this] { worker(); });
    } catch (...) {
    }
#else
    workers_.reserve(workers);
    for (unsigned i = 0; i < workers; i++) workers_.emplace_back([this] { worker(); });
#endif
  }
  ThreadPool(const ThreadPool &) = delete;
  ThreadPool &operator=(const ThreadPool &) = delete;
  ~ThreadPool() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop_ = true;
    }
    wake_.notify_all();
    for (std::thread &t : workers_) t.join();
  }

  // Threads that run tasks, the caller's included.
  [[nodiscard]] std::uint32_t n_threads() const noexcept {
    return static_cast<std::uint32_t>(workers_.size()) + 1;
  }

  // The nanollama_parallel_for_fn: user_data is the pool.
  static void parallel_for(void *user_data, nanollama_task_fn fn, void *task_data,
                           std::uint32_t n_tasks) noexcept {
    ThreadPool &p = *static_cast<ThreadPool *>(user_data);
    {
      std::lock_guard<std::mutex> lock(p.mu_);
      p.fn_ = fn;
      p.task_data_ = task_data;
      p.n_tasks_ = n_tasks;
      p.next_.store(0);
      p.active_ = p.workers_.size();
      p.generation_++;
    }
    p.wake_.notify_all();
    p.work();
    std::unique_lock<std::mutex> lock(p.mu_);
    p.done_.wait(lock, [&p] { return p.active_ == 0; });
  }

 private:
  void work() noexcept {
    for (;;) {
      std::uint32_t i = next_.fetch_add(1);
      if (i >= n_tasks_) return;
      fn_(task_data_, i);
    }
  }
  void worker() noexcept {
    unsigned long seen = 0;
    for (;;) {
      {
        std::unique_lock<std::mutex> lock(mu_);
        wake_.wait(lock, [&] { return generation_ != seen || stop_; });
        if (stop_) return;
        seen = generation_;
      }
      work();
      bool last;
      {
        std::lock_guard<std::mutex> lock(mu_);
        last = --active_ == 0;
      }
      if (last) done_.notify_one();
    }
  }

  std::mutex mu_;
  std::condition_variable wake_, done_;
  std::vector<std::thread> workers_;
  unsigned long generation_ = 0;
  std::size_t active_ = 0;
  bool stop_ = false;
  nanollama_task_fn fn_ = nullptr;
  void *task_data_ = nullptr;
  std::uint32_t n_tasks_ = 0;
  std::atomic<std::uint32_t> next_{0};
};
#endif  // NANOLLAMA_NO_THREAD_POOL

// --------------------------------------------------------------- Params

// nanollama_context_params with the library's defaults
// (nanollama_context_params_default), and setters that chain.
class ContextParams {
 public:
  ContextParams() noexcept { (void)nanollama_context_params_default(&p_, sizeof p_); }
  // Positions the KV cache holds; 0: the model's training length.
  ContextParams &n_ctx(std::uint32_t v) noexcept {
    p_.n_ctx = v;
    return *this;
  }
  // Most tokens one decode takes; 0: min(512, n_ctx).
  ContextParams &n_batch(std::uint32_t v) noexcept {
    p_.n_batch = v;
    return *this;
  }
  // NANOLLAMA_KV_TYPE_F16 (default) or NANOLLAMA_KV_TYPE_F32.
  ContextParams &kv_type(nanollama_kv_type v) noexcept {
    p_.kv_type = v;
    return *this;
  }
  ContextParams &logits_all(bool v) noexcept {
    p_.logits_all = v;
    return *this;
  }
  ContextParams &f32_activations(bool v) noexcept {
    p_.f32_activations = v;
    return *this;
  }
  // The host's parallel-for (null: inline), its user data and the thread
  // count it spreads over; they must outlive the context.
  ContextParams &parallel_for(nanollama_parallel_for_fn fn, void *user_data,
                              std::uint32_t n_threads) noexcept {
    p_.parallel_for = fn;
    p_.parallel_user_data = user_data;
    p_.n_threads = n_threads;
    return *this;
  }
#if !defined(NANOLLAMA_NO_THREAD_POOL)
  ContextParams &thread_pool(ThreadPool &pool) noexcept {
    return parallel_for(&ThreadPool::parallel_for, &pool, pool.n_threads());
  }
#endif
  [[nodiscard]] const nanollama_context_params &raw() const noexcept { return p_; }
  [[nodiscard]] nanollama_context_params &raw() noexcept { return p_; }

 private:
  nanollama_context_params p_{};
};

// nanollama_sampler_params with llama.cpp's defaults
// (nanollama_sampler_params_default), and setters that chain. The logit
// biases are copied when a Sampler is made: the array need only live
// until then.
class SamplerParams {
 public:
  SamplerParams() noexcept { (void)nanollama_sampler_params_default(&p_, sizeof p_); }
  // Temperature 0: the most likely token.
  [[nodiscard]] static SamplerParams greedy() noexcept { return SamplerParams().temp(0.0f); }
  SamplerParams &temp(float v) noexcept {
    p_.temp = v;
    return *this;
  }
  SamplerParams &seed(std::uint64_t v) noexcept {
    p_.seed = v;
    return *this;
  }
  SamplerParams &top_k(std::int32_t v) noexcept {
    p_.top_k = v;
    return *this;
  }
  SamplerParams &top_p(float v) noexcept {
    p_.top_p = v;
    return *this;
  }
  SamplerParams &min_p(float v) noexcept {
    p_.min_p = v;
    return *this;
  }
  SamplerParams &typical_p(float v) noexcept {
    p_.typical_p = v;
    return *this;
  }
  SamplerParams &penalty_last_n(std::uint32_t v) noexcept {
    p_.penalty_last_n = v;
    return *this;
  }
  SamplerParams &penalty_repeat(float v) noexcept {
    p_.penalty_repeat = v;
    return *this;
  }
  SamplerParams &penalty_freq(float v) noexcept {
    p_.penalty_freq = v;
    return *this;
  }
  SamplerParams &penalty_present(float v) noexcept {
    p_.penalty_present = v;
    return *this;
  }
  SamplerParams &xtc(float probability, float threshold) noexcept {
    p_.xtc_probability = probability;
    p_.xtc_threshold = threshold;
    return *this;
  }
  // 0: off; 2: mirostat v2.
  SamplerParams &mirostat(std::uint32_t version, float tau, float eta) noexcept {
    p_.mirostat = version;
    p_.mirostat_tau = tau;
    p_.mirostat_eta = eta;
    return *this;
  }
  SamplerParams &min_keep(std::uint32_t v) noexcept {
    p_.min_keep = v;
    return *this;
  }
  SamplerParams &logit_bias(span<const nanollama_logit_bias> v) noexcept {
    p_.logit_bias = v.data();
    p_.n_logit_bias = v.size();
    return *this;
  }
  // nanollama_stage values; more than 16 are cut to 16 (the sampler then
  // refuses a chain it does not accept).
  SamplerParams &order(span<const nanollama_stage> stages) noexcept {
    std::size_t n = stages.size() < sizeof p_.order ? stages.size() : sizeof p_.order;
    for (std::size_t i = 0; i < n; i++) p_.order[i] = static_cast<std::uint8_t>(stages[i]);
    p_.n_stages = static_cast<std::uint32_t>(n);
    return *this;
  }
  [[nodiscard]] const nanollama_sampler_params &raw() const noexcept { return p_; }
  [[nodiscard]] nanollama_sampler_params &raw() noexcept { return p_; }

 private:
  nanollama_sampler_params p_{};
};

// -------------------------------------------------------------- Context

// One conversation over a Model, which must outlive it (the Context keeps
// its C handle). One thread at a time.
class Context {
 public:
  Context() noexcept = default;

  [[nodiscard]] static Result<std::size_t> try_size(const Model &model,
                                                    const ContextParams &params = {}) noexcept {
    std::size_t n = 0;
    nanollama_status s = nanollama_context_size(model.get(), &params.raw(), &n);
    if (s != NANOLLAMA_STATUS_OK) return detail::failure(s);
    return n;
  }
  // A context in memory allocated here.
  [[nodiscard]] static Result<Context> try_create(const Model &model,
                                                  const ContextParams &params = {}) noexcept {
    return create_in(model, params, nullptr);
  }
  // A context in the caller's memory (64-byte aligned, try_size bytes).
  [[nodiscard]] static Result<Context> try_create(const Model &model, const ContextParams &params,
                                                  span<std::byte> mem) noexcept {
    Memory m = Memory::borrow(mem);
    return create_in(model, params, &m);
  }
  [[nodiscard]] static Result<Context> try_create(const Model &model, const ContextParams &params,
                                                  void *mem, std::size_t mem_len) noexcept {
    return try_create(model, params, span<std::byte>(static_cast<std::byte *>(mem), mem_len));
  }
#if NANOLLAMA_EXCEPTIONS
  explicit Context(const Model &model, const ContextParams &params = {})
      : Context(unwrap(try_create(model, params))) {}
  Context(const Model &model, const ContextParams &params, span<std::byte> mem)
      : Context(unwrap(try_create(model, params, mem))) {}
  Context(const Model &model, const ContextParams &params, void *mem, std::size_t mem_len)
      : Context(unwrap(try_create(model, params, mem, mem_len))) {}
#endif

  [[nodiscard]] nanollama_context *get() const noexcept { return owner_.get(); }
  explicit operator bool() const noexcept { return get() != nullptr; }
  // The C handle of the model it reads.
  [[nodiscard]] const nanollama_model *model() const noexcept { return model_; }
  // What it chose (n_ctx, n_batch after clamping, ...).
  [[nodiscard]] const nanollama_context_info &info() const noexcept { return info_; }
  [[nodiscard]] std::uint32_t n_vocab() const noexcept { return n_vocab_; }
  [[nodiscard]] const Memory &memory() const noexcept { return owner_.memory(); }

  // Appends the tokens and computes logits.
  [[nodiscard]] Result<void> try_decode(span<const token> tokens) noexcept {
    return detail::check(nanollama_context_decode(get(), tokens.data(), tokens.size()));
  }
  [[nodiscard]] Result<void> try_decode(token t) noexcept {
    return detail::check(nanollama_context_decode(get(), &t, 1));
  }
  // Logits of the last decode: rows of n_vocab floats (one per token with
  // logits_all, else the last token's), empty before the first decode.
  // Valid until the next decode, truncate, reset or state load.
  [[nodiscard]] Result<span<const float>> try_logits() const noexcept {
    const float *l = nullptr;
    std::size_t rows = 0;
    nanollama_status s = nanollama_context_logits(get(), &l, &rows);
    if (s != NANOLLAMA_STATUS_OK) return detail::failure(s);
    return span<const float>(l, rows * n_vocab_);
  }
  // The last row of try_logits (empty before the first decode).
  [[nodiscard]] Result<span<const float>> try_last_logits() const noexcept {
    Result<span<const float>> all = try_logits();
    if (!all || all->empty()) return all;
    return all->last(n_vocab_);
  }
  // Positions filled.
  [[nodiscard]] Result<std::uint32_t> try_pos() const noexcept {
    std::uint32_t p = 0;
    nanollama_status s = nanollama_context_pos(get(), &p);
    if (s != NANOLLAMA_STATUS_OK) return detail::failure(s);
    return p;
  }
  [[nodiscard]] Result<void> try_truncate(std::uint32_t pos) noexcept {
    return detail::check(nanollama_context_truncate(get(), pos));
  }
  [[nodiscard]] Result<void> try_reset() noexcept { return detail::check(nanollama_context_reset(get())); }

  // Saved states: plain bytes, any alignment.
  [[nodiscard]] Result<std::size_t> try_state_size() const noexcept {
    std::size_t n = 0;
    nanollama_status s = nanollama_context_state_size(get(), &n);
    if (s != NANOLLAMA_STATUS_OK) return detail::failure(s);
    return n;
  }
  // No allocation: the bytes written into `out`.
  [[nodiscard]] Result<std::size_t> try_state_save_into(span<std::byte> out) const noexcept {
    std::size_t n = 0;
    nanollama_status s = nanollama_context_state_save(get(), out.data(), out.size(), &n);
    if (s != NANOLLAMA_STATUS_OK) return detail::failure(s);
    return n;
  }
  [[nodiscard]] Result<std::vector<std::byte>> try_state_save() const noexcept {
    Result<std::size_t> need = try_state_size();
    if (!need) return detail::failure(need.error().code());
    std::vector<std::byte> out;
    if (!detail::try_resize(out, *need)) return detail::failure(status_out_of_memory);
    Result<std::size_t> n = try_state_save_into(span<std::byte>(out.data(), out.size()));
    if (!n) return detail::failure(n.error().code());
    out.resize(*n);
    return out;
  }
  [[nodiscard]] Result<void> try_state_load(span<const std::byte> state) noexcept {
    return detail::check(nanollama_context_state_load(get(), state.data(), state.size()));
  }
  [[nodiscard]] Result<void> try_state_load(const void *state, std::size_t len) noexcept {
    return detail::check(nanollama_context_state_load(get(), state, len));
  }

#if NANOLLAMA_EXCEPTIONS
  void decode(span<const token> tokens) { unwrap(try_decode(tokens)); }
  void decode(token t) { unwrap(try_decode(t)); }
  [[nodiscard]] span<const float> logits() const { return unwrap(try_logits()); }
  [[nodiscard]] span<const float> last_logits() const { return unwrap(try_last_logits()); }
  [[nodiscard]] std::uint32_t pos() const { return unwrap(try_pos()); }
  void truncate(std::uint32_t p) { unwrap(try_truncate(p)); }
  void reset() { unwrap(try_reset()); }
  [[nodiscard]] std::vector<std::byte> state_save() const { return unwrap(try_state_save()); }
  void state_load(span<const std::byte> state) { unwrap(try_state_load(state)); }
  void state_load(const void *state, std::size_t len) { unwrap(try_state_load(state, len)); }
#endif

 private:
  static Result<Context> create_in(const Model &model, const ContextParams &params,
                                   const Memory *caller) noexcept {
    std::size_t need = 0;
    nanollama_status s = nanollama_context_size(model.get(), &params.raw(), &need);
    if (s != NANOLLAMA_STATUS_OK) return detail::failure(s);
    Result<Memory> mem = detail::memory_for(need, caller);
    if (!mem) return detail::failure(mem.error().code());
    nanollama_context *h = nullptr;
    s = nanollama_context_init(model.get(), &params.raw(), mem->data(), mem->size(), &h);
    if (s != NANOLLAMA_STATUS_OK) return detail::failure(s);
    Context c;
    c.owner_ = detail::Owner<nanollama_context>(std::move(*mem), h);
    c.model_ = model.get();
    c.n_vocab_ = model.n_vocab();
    s = nanollama_context_get_info(h, &c.info_, sizeof c.info_);
    if (s != NANOLLAMA_STATUS_OK) return detail::failure(s);
    return c;
  }

  detail::Owner<nanollama_context> owner_;
  const nanollama_model *model_ = nullptr;
  std::uint32_t n_vocab_ = 0;
  nanollama_context_info info_{};
};

// ---------------------------------------------------------------- Batch

// Row buffers for stepping many Contexts of one Model with one pass over
// the weights (decode_many). The Model must outlive it. One call at a time.
class Batch {
 public:
  Batch() noexcept = default;

  // Memory for a batch of at most max_tokens tokens per call (0: 64).
  [[nodiscard]] static Result<std::size_t> try_size(const Model &model,
                                                    std::uint32_t max_tokens = 0) noexcept {
    nanollama_batch_params p = params(max_tokens);
    std::size_t n = 0;
    nanollama_status s = nanollama_batch_size(model.get(), &p, &n);
    if (s != NANOLLAMA_STATUS_OK) return detail::failure(s);
    return n;
  }
  // A batch in memory allocated here, or in the caller's (64-byte aligned,
  // try_size bytes).
  [[nodiscard]] static Result<Batch> try_create(const Model &model, std::uint32_t max_tokens = 0,
                                                span<std::byte> mem = {}) noexcept {
    nanollama_batch_params p = params(max_tokens);
    std::size_t need = 0;
    nanollama_status s = nanollama_batch_size(model.get(), &p, &need);
    if (s != NANOLLAMA_STATUS_OK) return detail::failure(s);
    Memory caller = Memory::borrow(mem.data(), mem.size());
    Result<Memory> m = detail::memory_for(need, mem.data() ? &caller : nullptr);
    if (!m) return detail::failure(m.error().code());
    nanollama_batch *h = nullptr;
    s = nanollama_batch_init(model.get(), &p, m->data(), m->size(), &h);
    if (s != NANOLLAMA_STATUS_OK) return detail::failure(s);
    Batch b;
    b.owner_ = detail::Owner<nanollama_batch>(std::move(*m), h);
    return b;
  }
#if NANOLLAMA_EXCEPTIONS
  explicit Batch(const Model &model, std::uint32_t max_tokens = 0)
      : Batch(unwrap(try_create(model, max_tokens))) {}
#endif

  [[nodiscard]] nanollama_batch *get() const noexcept { return owner_.get(); }
  explicit operator bool() const noexcept { return get() != nullptr; }

  // Appends to each context (the C handles, Context::get()) the next
  // counts[i] tokens (one each when counts is empty) with one pass over the
  // weights; each context ends as its own decode of those tokens leaves
  // it. Refused calls change nothing (see nanollama_decode_many).
  [[nodiscard]] Result<void> try_decode_many(span<nanollama_context *const> ctxs,
                                             span<const token> tokens,
                                             span<const std::uint32_t> counts = {}) noexcept {
    if (!counts.empty() && counts.size() != ctxs.size())
      return detail::failure(NANOLLAMA_STATUS_INVALID_ARGUMENT);
    return detail::check(nanollama_decode_many(get(), ctxs.data(), ctxs.size(), tokens.data(),
                                               tokens.size(),
                                               counts.empty() ? nullptr : counts.data()));
  }
#if NANOLLAMA_EXCEPTIONS
  void decode_many(span<nanollama_context *const> ctxs, span<const token> tokens,
                   span<const std::uint32_t> counts = {}) {
    unwrap(try_decode_many(ctxs, tokens, counts));
  }
#endif

 private:
  static nanollama_batch_params params(std::uint32_t max_tokens) noexcept {
    nanollama_batch_params p;
    nanollama_batch_params_default(&p, sizeof p);
    p.max_tokens = max_tokens;
    return p;
  }
  detail::Owner<nanollama_batch> owner_;
};

// -------------------------------------------------------------- Sampler

// A sampler chain for a vocabulary of n_vocab tokens. One thread at a
// time.
class Sampler {
 public:
  Sampler() noexcept = default;

  [[nodiscard]] static Result<std::size_t> try_size(std::uint32_t n_vocab,
                                                    const SamplerParams &params = {}) noexcept {
    std::size_t n = 0;
    nanollama_status s = nanollama_sampler_size(n_vocab, &params.raw(), &n);
    if (s != NANOLLAMA_STATUS_OK) return detail::failure(s);
    return n;
  }
  [[nodiscard]] static Result<Sampler> try_create(std::uint32_t n_vocab,
                                                  const SamplerParams &params = {}) noexcept {
    return create_in(n_vocab, params, nullptr);
  }
  [[nodiscard]] static Result<Sampler> try_create(std::uint32_t n_vocab, const SamplerParams &params,
                                                  span<std::byte> mem) noexcept {
    Memory m = Memory::borrow(mem);
    return create_in(n_vocab, params, &m);
  }
  [[nodiscard]] static Result<Sampler> try_create(std::uint32_t n_vocab, const SamplerParams &params,
                                                  void *mem, std::size_t mem_len) noexcept {
    return try_create(n_vocab, params, span<std::byte>(static_cast<std::byte *>(mem), mem_len));
  }
#if NANOLLAMA_EXCEPTIONS
  explicit Sampler(std::uint32_t n_vocab, const SamplerParams &params = {})
      : Sampler(unwrap(try_create(n_vocab, params))) {}
  Sampler(std::uint32_t n_vocab, const SamplerParams &params, span<std::byte> mem)
      : Sampler(unwrap(try_create(n_vocab, params, mem))) {}
  Sampler(std::uint32_t n_vocab, const SamplerParams &params, void *mem, std::size_t mem_len)
      : Sampler(unwrap(try_create(n_vocab, params, mem, mem_len))) {}
#endif

  [[nodiscard]] nanollama_sampler *get() const noexcept { return owner_.get(); }
  explicit operator bool() const noexcept { return get() != nullptr; }
  [[nodiscard]] std::uint32_t n_vocab() const noexcept { return n_vocab_; }
  [[nodiscard]] const Memory &memory() const noexcept { return owner_.memory(); }

  // Draws a token from n_vocab logits (does not accept it).
  [[nodiscard]] Result<token> try_sample(span<const float> logits) noexcept {
    token t = NANOLLAMA_TOKEN_NULL;
    nanollama_status s = nanollama_sampler_sample(get(), logits.data(), logits.size(), &t);
    if (s != NANOLLAMA_STATUS_OK) return detail::failure(s);
    return t;
  }
  // Draws from the last logits of a context.
  [[nodiscard]] Result<token> try_sample(const Context &ctx) noexcept {
    Result<span<const float>> l = ctx.try_last_logits();
    if (!l) return detail::failure(l.error().code());
    return try_sample(*l);
  }
  // Records a token as generated (for the penalties).
  [[nodiscard]] Result<void> try_accept(token t) noexcept {
    return detail::check(nanollama_sampler_accept(get(), t));
  }
  [[nodiscard]] Result<void> try_reset() noexcept { return detail::check(nanollama_sampler_reset(get())); }

  [[nodiscard]] Result<std::size_t> try_state_size() const noexcept {
    std::size_t n = 0;
    nanollama_status s = nanollama_sampler_state_size(get(), &n);
    if (s != NANOLLAMA_STATUS_OK) return detail::failure(s);
    return n;
  }
  [[nodiscard]] Result<std::size_t> try_state_save_into(span<std::byte> out) const noexcept {
    std::size_t n = 0;
    nanollama_status s = nanollama_sampler_state_save(get(), out.data(), out.size(), &n);
    if (s != NANOLLAMA_STATUS_OK) return detail::failure(s);
    return n;
  }
  [[nodiscard]] Result<std::vector<std::byte>> try_state_save() const noexcept {
    Result<std::size_t> need = try_state_size();
    if (!need) return detail::failure(need.error().code());
    std::vector<std::byte> out;
    if (!detail::try_resize(out, *need)) return detail::failure(status_out_of_memory);
    Result<std::size_t> n = try_state_save_into(span<std::byte>(out.data(), out.size()));
    if (!n) return detail::failure(n.error().code());
    out.resize(*n);
    return out;
  }
  [[nodiscard]] Result<void> try_state_load(span<const std::byte> state) noexcept {
    return detail::check(nanollama_sampler_state_load(get(), state.data(), state.size()));
  }
  [[nodiscard]] Result<void> try_state_load(const void *state, std::size_t len) noexcept {
    return detail::check(nanollama_sampler_state_load(get(), state, len));
  }

#if NANOLLAMA_EXCEPTIONS
  [[nodiscard]] token sample(span<const float> logits) { return unwrap(try_sample(logits)); }
  [[nodiscard]] token sample(const Context &ctx) { return unwrap(try_sample(ctx)); }
  void accept(token t) { unwrap(try_accept(t)); }
  void reset() { unwrap(try_reset()); }
  [[nodiscard]] std::vector<std::byte> state_save() const { return unwrap(try_state_save()); }
  void state_load(span<const std::byte> state) { unwrap(try_state_load(state)); }
  void state_load(const void *state, std::size_t len) { unwrap(try_state_load(state, len)); }
#endif

 private:
  static Result<Sampler> create_in(std::uint32_t n_vocab, const SamplerParams &params,
                                   const Memory *caller) noexcept {
    std::size_t need = 0;
    nanollama_status s = nanollama_sampler_size(n_vocab, &params.raw(), &need);
    if (s != NANOLLAMA_STATUS_OK) return detail::failure(s);
    Result<Memory> mem = detail::memory_for(need, caller);
    if (!mem) return detail::failure(mem.error().code());
    nanollama_sampler *h = nullptr;
    s = nanollama_sampler_init(n_vocab, &params.raw(), mem->data(), mem->size(), &h);
    if (s != NANOLLAMA_STATUS_OK) return detail::failure(s);
    Sampler smp;
    smp.owner_ = detail::Owner<nanollama_sampler>(std::move(*mem), h);
    smp.n_vocab_ = n_vocab;
    return smp;
  }

  detail::Owner<nanollama_sampler> owner_;
  std::uint32_t n_vocab_ = 0;
};

}  // inline namespace (exceptions)
}  // inline namespace (span)
}  // inline namespace (result)
}  // namespace nanollama

#endif  // NANOLLAMA_HPP
