// The C++ layer (include/nanollama.hpp): RAII and moves, the Result type
// and the exceptions, caller-provided buffers, the thread pool, states, and
// a greedy generation printed exactly as examples/generate.c prints it.
// Usage: api MODEL.gguf PROMPT N (the shipped model). Failures go to stderr
// with exit status 1; stdout is the generated text only. Built by
// tests/cpp.rs as C++17 and C++20, with and without exceptions.
#include "nanollama.hpp"

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <type_traits>
#include <vector>

#define CHECK(cond)                                                               \
  do {                                                                            \
    if (!(cond)) {                                                                \
      std::fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
      std::exit(1);                                                               \
    }                                                                             \
  } while (0)

// A Result that must have failed with `want`.
#define CHECK_ERR(result, want)                                                          \
  do {                                                                                   \
    auto &&r_ = (result);                                                                \
    if (r_.has_value() || r_.error().code() != (want)) {                                 \
      std::fprintf(stderr, "%s:%d: %s gave %s, wanted %s\n", __FILE__, __LINE__, #result, \
                   r_.has_value() ? "a value" : r_.error().message(),                    \
                   nanollama_status_str(want));                                          \
      std::exit(1);                                                                      \
    }                                                                                    \
  } while (0)

// The value of a Result that must have succeeded.
template <class T>
T ok(nanollama::Result<T> &&r, int line) {
  if (!r.has_value()) {
    std::fprintf(stderr, "api.cpp:%d: failed: %s\n", line, r.error().message());
    std::exit(1);
  }
  return std::move(*r);
}
inline void ok(nanollama::Result<void> &&r, int line) {
  if (!r.has_value()) {
    std::fprintf(stderr, "api.cpp:%d: failed: %s\n", line, r.error().message());
    std::exit(1);
  }
}
#define OK(result) ok((result), __LINE__)

// ---------------------------------------------------------------------
// Every 64-byte-aligned allocation the header makes, counted: the owners
// must free what they allocate, and the caller-buffer paths allocate none.
static long g_live = 0, g_total = 0;

void *operator new(std::size_t n, std::align_val_t a, const std::nothrow_t &) noexcept {
  std::size_t al = static_cast<std::size_t>(a);
  void *p = std::aligned_alloc(al, (n + al - 1) / al * al);
  if (p != nullptr) {
    g_live++;
    g_total++;
  }
  return p;
}
void *operator new(std::size_t n, std::align_val_t a) {
  void *p = operator new(n, a, std::nothrow);
  if (p == nullptr) std::abort();
  return p;
}
void operator delete(void *p, std::align_val_t) noexcept {
  if (p != nullptr) g_live--;
  std::free(p);
}
void operator delete(void *p, std::size_t, std::align_val_t a) noexcept { operator delete(p, a); }
void operator delete(void *p, std::align_val_t a, const std::nothrow_t &) noexcept {
  operator delete(p, a);
}

// ---------------------------------------------------------------------
using nanollama::Batch;
using nanollama::Context;
using nanollama::ContextParams;
using nanollama::Detokenizer;
using nanollama::Error;
using nanollama::Memory;
using nanollama::Model;
using nanollama::Result;
using nanollama::Sampler;
using nanollama::SamplerParams;
using nanollama::span;
using nanollama::ThreadPool;
using nanollama::token;
using nanollama::Vocab;

template <class T>
constexpr bool owner_like = std::is_nothrow_move_constructible_v<T> && std::is_nothrow_move_assignable_v<T> &&
                            !std::is_copy_constructible_v<T> && !std::is_copy_assignable_v<T> &&
                            std::is_nothrow_default_constructible_v<T>;
static_assert(owner_like<Model>);
static_assert(owner_like<Context>);
static_assert(owner_like<Sampler>);
static_assert(owner_like<Vocab>);
static_assert(owner_like<Memory>);
static_assert(!std::is_move_constructible_v<ThreadPool>);
static_assert(std::is_nothrow_move_constructible_v<Result<Model>>);

static std::vector<std::byte> read_file(const char *path) {
  std::FILE *f = std::fopen(path, "rb");
  CHECK(f != nullptr);
  std::vector<std::byte> out;
  std::byte buf[1 << 16];
  for (std::size_t n; (n = std::fread(buf, 1, sizeof buf, f)) > 0;) out.insert(out.end(), buf, buf + n);
  std::fclose(f);
  return out;
}

// 64-byte-aligned memory the "host" owns (not counted: std::aligned_alloc).
struct HostBuffer {
  explicit HostBuffer(std::size_t n) : size((n + 63) / 64 * 64 + 64) {
    data = static_cast<std::byte *>(std::aligned_alloc(64, size));
    CHECK(data != nullptr);
  }
  HostBuffer(const HostBuffer &) = delete;
  HostBuffer &operator=(const HostBuffer &) = delete;
  ~HostBuffer() { std::free(data); }
  span<std::byte> all() const { return span<std::byte>(data, size); }
  std::byte *data;
  std::size_t size;
};

static span<const std::byte> bytes(const std::vector<std::byte> &v) {
  return span<const std::byte>(v.data(), v.size());
}

static bool same(span<const float> a, span<const float> b) {
  return a.size() == b.size() && a.size() > 0 && std::memcmp(a.data(), b.data(), a.size_bytes()) == 0;
}

static token argmax(span<const float> l) {
  std::size_t best = 0;
  for (std::size_t i = 1; i < l.size(); i++)
    if (l[i] > l[best]) best = i;
  return static_cast<token>(best);
}

// ------------------------------------------------------------- errors
static void errors(const std::vector<std::byte> &gguf) {
  // Not a GGUF file: the status of the C call, its message.
  std::vector<std::byte> bad(64, std::byte{0});
  std::memcpy(bad.data(), "NOPE", 4);
  CHECK_ERR(Model::try_load(bytes(bad)), NANOLLAMA_STATUS_GGUF_BAD_MAGIC);
  CHECK_ERR(Model::try_size(bytes(bad)), NANOLLAMA_STATUS_GGUF_BAD_MAGIC);
  CHECK_ERR(Vocab::try_load(bad.data(), bad.size()), NANOLLAMA_STATUS_GGUF_BAD_MAGIC);
  Result<Model> r = Model::try_load(bytes(bad));
  CHECK(!r && !r.has_value());
  CHECK(r.error() == Error(NANOLLAMA_STATUS_GGUF_BAD_MAGIC));
  CHECK(r.error() != Error(NANOLLAMA_STATUS_GGUF_TRUNCATED));
  CHECK(std::strcmp(r.error().message(), nanollama_status_str(NANOLLAMA_STATUS_GGUF_BAD_MAGIC)) == 0);
  // A file cut inside its header.
  CHECK_ERR(Model::try_load(bytes(gguf).first(16)), NANOLLAMA_STATUS_GGUF_TRUNCATED);
  CHECK_ERR(Vocab::try_load(bytes(gguf).first(16)), NANOLLAMA_STATUS_GGUF_TRUNCATED);
  // Nothing was left allocated by the failures.
  CHECK(g_live == 0);

  // The header's own code.
  Error oom(nanollama::status_out_of_memory);
  CHECK(std::strstr(oom.message(), "out of memory") != nullptr);
  CHECK(!Memory::try_allocate(static_cast<std::size_t>(-1)).has_value());
  CHECK_ERR(Memory::try_allocate(static_cast<std::size_t>(-1) - 200), nanollama::status_out_of_memory);

  // Empty (default or moved-from) objects refuse every call.
  Context empty;
  CHECK(!empty && empty.get() == nullptr);
  CHECK_ERR(empty.try_decode(token{1}), NANOLLAMA_STATUS_NULL_POINTER);
  CHECK_ERR(empty.try_logits(), NANOLLAMA_STATUS_NULL_POINTER);
  CHECK_ERR(empty.try_pos(), NANOLLAMA_STATUS_NULL_POINTER);
  Sampler no_sampler;
  const float l[2] = {1.0f, 2.0f};
  CHECK_ERR(no_sampler.try_sample(span<const float>(l, 2)), NANOLLAMA_STATUS_NULL_POINTER);
  Vocab no_vocab;
  CHECK_ERR(no_vocab.try_is_eog(0), NANOLLAMA_STATUS_NULL_POINTER);
  CHECK_ERR(no_vocab.try_tokenize("x"), NANOLLAMA_STATUS_NULL_POINTER);
  Detokenizer no_detok(no_vocab);
  CHECK_ERR(no_detok.try_push(0), NANOLLAMA_STATUS_NULL_POINTER);
  Model no_model;
  CHECK_ERR(Context::try_create(no_model), NANOLLAMA_STATUS_NULL_POINTER);

#if !defined(__cpp_lib_expected) && defined(__cpp_exceptions) && !defined(NANOLLAMA_NO_EXCEPTIONS)
  // This header's Result: value() on an error throws the Exception.
  bool threw = false;
  try {
    (void)r.value();
  } catch (const nanollama::Exception &e) {
    threw = e.code() == NANOLLAMA_STATUS_GGUF_BAD_MAGIC;
  }
  CHECK(threw);
#endif
  CHECK(Model::try_load(bytes(bad)).value_or(Model()).get() == nullptr);
  std::size_t fallback = Model::try_size(bytes(bad)).value_or(7);
  CHECK(fallback == 7);
}

#if NANOLLAMA_EXCEPTIONS
// The throwing API: the same statuses, as nanollama::Exception.
static void exceptions(const std::vector<std::byte> &gguf) {
  std::vector<std::byte> bad(64, std::byte{0});
  std::memcpy(bad.data(), "NOPE", 4);
  nanollama_status got = NANOLLAMA_STATUS_OK;
  try {
    Model m(bytes(bad));
    std::fprintf(stderr, "no exception\n");
    std::exit(1);
  } catch (const nanollama::Exception &e) {
    got = e.code();
    CHECK(e.error() == Error(NANOLLAMA_STATUS_GGUF_BAD_MAGIC));
    CHECK(std::strcmp(e.what(), nanollama_status_str(NANOLLAMA_STATUS_GGUF_BAD_MAGIC)) == 0);
  }
  CHECK(got == NANOLLAMA_STATUS_GGUF_BAD_MAGIC);
  // A std::runtime_error for hosts that catch those.
  got = NANOLLAMA_STATUS_OK;
  try {
    Vocab v(bytes(gguf).first(16));
  } catch (const std::runtime_error &e) {
    got = dynamic_cast<const nanollama::Exception &>(e).code();
  }
  CHECK(got == NANOLLAMA_STATUS_GGUF_TRUNCATED);

  // Calls on a good model: a token past the vocabulary, a position past
  // the end, a batch past n_batch.
  Model model(bytes(gguf));
  Context ctx(model, ContextParams().n_ctx(16).n_batch(4));
  got = NANOLLAMA_STATUS_OK;
  try {
    ctx.decode(static_cast<token>(model.n_vocab()));
  } catch (const nanollama::Exception &e) {
    got = e.code();
  }
  CHECK(got == NANOLLAMA_STATUS_TOKEN_OUT_OF_RANGE);
  const token five[5] = {1, 2, 3, 4, 5};
  got = NANOLLAMA_STATUS_OK;
  try {
    ctx.decode(five);
  } catch (const nanollama::Exception &e) {
    got = e.code();
  }
  CHECK(got == NANOLLAMA_STATUS_BATCH_TOO_LARGE);
  CHECK(ctx.pos() == 0);  // refused calls change nothing
  got = NANOLLAMA_STATUS_OK;
  try {
    ctx.truncate(3);
  } catch (const nanollama::Exception &e) {
    got = e.code();
  }
  CHECK(got == NANOLLAMA_STATUS_INVALID_ARGUMENT);
  got = NANOLLAMA_STATUS_OK;
  try {
    (void)nanollama::unwrap(Model::try_size(bytes(bad)));
  } catch (const nanollama::Exception &e) {
    got = e.code();
  }
  CHECK(got == NANOLLAMA_STATUS_GGUF_BAD_MAGIC);
}
#endif

// ----------------------------------------------------- RAII and moves
static void raii(const std::vector<std::byte> &gguf) {
  CHECK(g_live == 0);
  {
    Model a = OK(Model::try_load(bytes(gguf)));
    CHECK(g_live == 1 && a && a.memory().owned());
    CHECK(a.memory().size() == OK(Model::try_size(bytes(gguf))));
    CHECK(reinterpret_cast<std::uintptr_t>(a.memory().data()) % 64 == 0);
    CHECK(a.info().n_vocab == 2048 && a.n_vocab() == 2048 && a.info().n_ctx_train == 256);
    const nanollama_model *h = a.get();

    // A context made before the model object moves keeps working: it holds
    // the C handle, and moving never moves the memory.
    Context ctx = OK(Context::try_create(a, ContextParams().n_ctx(32)));
    CHECK(g_live == 2 && ctx.model() == h && ctx.info().n_ctx == 32);
    Model b(std::move(a));
    CHECK(!a && a.get() == nullptr && b.get() == h && b.n_vocab() == 2048);
    CHECK(!a.memory().owned() && a.memory().data() == nullptr);
    Model c;
    c = std::move(b);
    CHECK(!b && c.get() == h && g_live == 2);
    OK(ctx.try_decode(token{1}));
    CHECK(OK(ctx.try_pos()) == 1);

    // Moving a context moves its ownership; assigning over one frees it.
    nanollama_context *ch = ctx.get();
    Context d(std::move(ctx));
    CHECK(!ctx && d.get() == ch && OK(d.try_pos()) == 1);
    CHECK_ERR(ctx.try_pos(), NANOLLAMA_STATUS_NULL_POINTER);
    Context e = OK(Context::try_create(c, ContextParams().n_ctx(8)));
    CHECK(g_live == 3);
    e = std::move(d);
    CHECK(g_live == 2 && e.get() == ch && OK(e.try_pos()) == 1);
    e = Context();
    CHECK(g_live == 1);

    // Owners in a vector (moved around as it grows).
    std::vector<Sampler> samplers;
    for (int i = 0; i < 5; i++) samplers.push_back(OK(Sampler::try_create(c.n_vocab(), SamplerParams().seed(static_cast<std::uint64_t>(i)))));
    CHECK(g_live == 6);
    for (Sampler &s : samplers) OK(s.try_accept(3));
    samplers.erase(samplers.begin(), samplers.begin() + 2);
    CHECK(g_live == 4);

    Vocab v = OK(Vocab::try_load(bytes(gguf)));
    Vocab w = std::move(v);
    CHECK(!v && w && w.n_vocab() == 2048 && g_live == 5);
  }
  CHECK(g_live == 0);  // every owner freed its memory
}

// ---------------------------------------------------------- decode_many
// Two contexts stepped together give each one's own bits; a refused call
// changes nothing; the batch is an owner like the others.
static void many(const std::vector<std::byte> &gguf) {
  Model model = OK(Model::try_load(bytes(gguf)));
  const ContextParams p = ContextParams().n_ctx(16).n_batch(4);
  Context a = OK(Context::try_create(model, p)), b = OK(Context::try_create(model, p));
  Context a1 = OK(Context::try_create(model, p)), b1 = OK(Context::try_create(model, p));
  Batch batch = OK(Batch::try_create(model, 4));
  CHECK(batch && OK(Batch::try_size(model, 4)) > 0);
  nanollama_context *both[] = {a.get(), b.get()};
  const token prompt[] = {5, 6, 7};
  const std::uint32_t counts[] = {1, 2};
  OK(batch.try_decode_many(both, prompt, counts));
  OK(a1.try_decode(prompt[0]));
  OK(b1.try_decode(span<const token>(prompt + 1, 2)));
  for (int step = 0; step < 3; step++) {
    const token t[] = {static_cast<token>(10 + step), static_cast<token>(20 + step)};
    OK(batch.try_decode_many(both, t));
    OK(a1.try_decode(t[0]));
    OK(b1.try_decode(t[1]));
    span<const float> la = OK(a.try_logits()), la1 = OK(a1.try_logits());
    span<const float> lb = OK(b.try_logits()), lb1 = OK(b1.try_logits());
    CHECK(la.size() == la1.size() && std::memcmp(la.data(), la1.data(), la.size_bytes()) == 0);
    CHECK(lb.size() == lb1.size() && std::memcmp(lb.data(), lb1.data(), lb.size_bytes()) == 0);
  }
  const std::uint32_t wrong[] = {1, 1, 1};
  const token two[] = {1, 2};
  CHECK_ERR(batch.try_decode_many(both, two, wrong), NANOLLAMA_STATUS_INVALID_ARGUMENT);
  nanollama_context *twice[] = {a.get(), a.get()};
  CHECK_ERR(batch.try_decode_many(twice, two), NANOLLAMA_STATUS_DUPLICATE_CONTEXT);
  CHECK(OK(a.try_pos()) == 4 && OK(b.try_pos()) == 5);
  CHECK_ERR(Batch().try_decode_many(both, two), NANOLLAMA_STATUS_NULL_POINTER);
}

// ---------------------------------------------------- caller's buffers
static void caller_buffers(const std::vector<std::byte> &gguf) {
  long before = g_total;
  std::size_t need = OK(Model::try_size(bytes(gguf)));
  HostBuffer mm(need), vm(OK(Vocab::try_size(bytes(gguf))));
  {
    // Misaligned and short memory are refused.
    CHECK_ERR(Model::try_load(bytes(gguf), mm.all().subspan(1)), NANOLLAMA_STATUS_MISALIGNED);
    CHECK_ERR(Model::try_load(bytes(gguf), mm.all().first(need - 1)), NANOLLAMA_STATUS_BUFFER_TOO_SMALL);
    Model m = OK(Model::try_load(bytes(gguf), mm.all()));
    CHECK(m && !m.memory().owned() && m.memory().data() == mm.data);
    Model m2 = OK(Model::try_load(gguf.data(), gguf.size(), mm.data, mm.size));  // pointer + size
    Vocab v = OK(Vocab::try_load(bytes(gguf), vm.all()));
    CHECK(!v.memory().owned());

    ContextParams cp = ContextParams().n_ctx(64).n_batch(8);
    HostBuffer cm(OK(Context::try_size(m, cp)));
    Context ctx = OK(Context::try_create(m, cp, cm.all()));
    CHECK(!ctx.memory().owned() && ctx.memory().data() == cm.data);
    CHECK(ctx.info().n_ctx == 64 && ctx.info().n_batch == 8);
    CHECK_ERR(Context::try_create(m, cp, cm.data + 32, cm.size - 64), NANOLLAMA_STATUS_MISALIGNED);

    SamplerParams sp = SamplerParams::greedy();
    HostBuffer sm(OK(Sampler::try_size(m.n_vocab(), sp)));
    Sampler smp = OK(Sampler::try_create(m.n_vocab(), sp, sm.data, sm.size));
    CHECK(!smp.memory().owned());

    // Tokenize into the caller's token array with the caller's scratch.
    const std::string_view text = "And it came to pass";
    HostBuffer scratch(Vocab::scratch_size(text.size()));
    token toks[64];
    std::size_t n = OK(v.try_tokenize_into(text, toks, scratch.all()));
    CHECK(n > 1 && n < 64 && toks[0] == v.info().bos);
    CHECK(OK(v.try_count(text, scratch.all())) == n);
    CHECK_ERR(v.try_tokenize_into(text, span<token>(toks, n - 1), scratch.all()), NANOLLAMA_STATUS_BUFFER_TOO_SMALL);
    CHECK_ERR(v.try_tokenize_into(text, toks, scratch.all().subspan(1)), NANOLLAMA_STATUS_MISALIGNED);
    std::size_t plain = OK(v.try_tokenize_into(text, toks, scratch.all(), 0));
    CHECK(plain == n - 1);  // no BOS without ADD_SPECIAL (the file asks for BOS only)

    // Pieces and the detokenizer into the caller's char arrays.
    n = OK(v.try_tokenize_into(text, toks, scratch.all()));
    std::string joined;
    char piece[64];
    Detokenizer d(v);
    char out[Detokenizer::max_push];
    std::string streamed;
    for (std::size_t i = 0; i < n; i++) {
      std::size_t k = OK(v.try_token_to_piece_into(toks[i], piece));
      joined.append(piece, k);
      std::size_t j = OK(d.try_push_into(toks[i], out));
      streamed.append(out, j);
    }
    CHECK(joined == " And it came to pass");
    CHECK(streamed == joined);
    CHECK_ERR(v.try_token_to_piece_into(toks[1], span<char>(piece, 0)), NANOLLAMA_STATUS_BUFFER_TOO_SMALL);

    // Decode and sample: nothing allocated by the layer on the whole path.
    OK(ctx.try_decode(span<const token>(toks, n)));
    span<const float> logits = OK(ctx.try_last_logits());
    CHECK(logits.size() == m.n_vocab());
    token t = OK(smp.try_sample(logits));
    CHECK(t == argmax(logits));
    CHECK(OK(smp.try_sample(ctx)) == t);

    // A state saved into the caller's buffer, loaded into another context.
    std::vector<std::byte> state(OK(ctx.try_state_size()));
    CHECK_ERR(ctx.try_state_save_into(span<std::byte>(state.data(), state.size() - 1)), NANOLLAMA_STATUS_BUFFER_TOO_SMALL);
    std::size_t written = OK(ctx.try_state_save_into(span<std::byte>(state.data(), state.size())));
    HostBuffer cm2(OK(Context::try_size(m2, cp)));
    Context other = OK(Context::try_create(m2, cp, cm2.all()));
    OK(other.try_state_load(state.data(), written));
    CHECK(OK(other.try_pos()) == n);
    CHECK(same(OK(other.try_last_logits()), logits));
    CHECK_ERR(other.try_state_load(state.data(), written - 1), NANOLLAMA_STATUS_STATE_CORRUPT);
    CHECK(OK(other.try_pos()) == n);
  }
  CHECK(g_total == before);  // the caller-buffer paths allocate nothing here
}

// ---------------------------------------- allocating helpers, threads
static void helpers(const std::vector<std::byte> &gguf) {
  Model m = OK(Model::try_load(bytes(gguf)));
  Vocab v = OK(Vocab::try_load(bytes(gguf)));
  std::vector<token> toks = OK(v.try_tokenize("In the beginning God created"));
  CHECK(toks.size() > 2 && toks[0] == v.info().bos);
  std::vector<token> bos_eos = OK(v.try_tokenize("In", NANOLLAMA_TOKENIZE_FLAGS_ADD_BOS | NANOLLAMA_TOKENIZE_FLAGS_ADD_EOS));
  CHECK(bos_eos.front() == v.info().bos && bos_eos.back() == v.info().eos);
  CHECK(OK(v.try_is_eog(v.info().eos)) && !OK(v.try_is_eog(toks[1])));
  CHECK_ERR(v.try_is_eog(-5), NANOLLAMA_STATUS_TOKEN_OUT_OF_RANGE);
  CHECK(OK(v.try_detokenize(toks)) == " In the beginning God created");
  std::string pieces;
  for (token t : toks) pieces += OK(v.try_token_to_piece(t));
  CHECK(pieces == " In the beginning God created");
  CHECK(OK(v.try_token_to_piece(v.info().bos)).empty());  // a control token
  CHECK(!OK(v.try_token_to_piece(v.info().bos, true)).empty());
  // Long texts get room from a second call (more tokens than bytes + 4
  // cannot happen here, but a long text goes through the same path).
  std::string long_text;
  for (int i = 0; i < 50; i++) long_text += "and the earth was without form, and void; ";
  std::vector<token> many = OK(v.try_tokenize(long_text));
  CHECK(OK(v.try_detokenize(many)) == " " + long_text);
  // Split UTF-8: byte tokens of one character come out together.
  std::vector<token> utf = OK(v.try_tokenize("é€😀"));
  CHECK(OK(v.try_detokenize(utf)) == " é€😀");

  // The same logits inline, on a ThreadPool and on a raw parallel_for.
  ContextParams cp = ContextParams().n_ctx(64).logits_all(true);
  Context inline_ctx = OK(Context::try_create(m, cp));
  ThreadPool pool(3);
  CHECK(pool.n_threads() == 3);
  Context pooled = OK(Context::try_create(m, ContextParams(cp).thread_pool(pool)));
  CHECK(pooled.info().n_threads == 3);
  struct Counting {
    static void run(void *user, nanollama_task_fn fn, void *data, std::uint32_t n) {
      *static_cast<int *>(user) += 1;
      for (std::uint32_t i = n; i-- > 0;) fn(data, i);  // any order
    }
  };
  int calls = 0;
  Context reversed = OK(Context::try_create(m, ContextParams(cp).parallel_for(&Counting::run, &calls, 4)));
  OK(inline_ctx.try_decode(toks));
  OK(pooled.try_decode(toks));
  OK(reversed.try_decode(toks));
  CHECK(calls > 0);
  span<const float> all = OK(inline_ctx.try_logits());
  CHECK(all.size() == toks.size() * m.n_vocab());
  CHECK(same(all, OK(pooled.try_logits())));
  CHECK(same(all, OK(reversed.try_logits())));
  for (int step = 0; step < 3; step++) {
    token t = argmax(OK(inline_ctx.try_last_logits()));
    OK(inline_ctx.try_decode(t));
    OK(pooled.try_decode(t));
    CHECK(same(OK(inline_ctx.try_logits()), OK(pooled.try_logits())));
  }
  OK(pooled.try_truncate(2));
  CHECK(OK(pooled.try_pos()) == 2 && OK(pooled.try_logits()).empty());
  OK(pooled.try_reset());
  CHECK(OK(pooled.try_pos()) == 0);

  // States as vectors.
  std::vector<std::byte> st = OK(inline_ctx.try_state_save());
  Context fresh = OK(Context::try_create(m, cp));
  OK(fresh.try_state_load(span<const std::byte>(st.data(), st.size())));
  CHECK(same(OK(fresh.try_last_logits()), OK(inline_ctx.try_last_logits())));

  // Sampler: a logit bias moves the greedy choice; a state replays a draw.
  span<const float> last = OK(fresh.try_last_logits());
  token best = argmax(last);
  const nanollama_logit_bias ban[1] = {{best, -1e30f}};  // biases must be finite
  Sampler biased = OK(Sampler::try_create(m.n_vocab(), SamplerParams::greedy().logit_bias(ban)));
  token second = OK(biased.try_sample(last));
  CHECK(second != best);
  Sampler s = OK(Sampler::try_create(m.n_vocab(), SamplerParams().seed(9).temp(1.0f).penalty_repeat(1.3f)));
  OK(s.try_accept(best));
  std::vector<std::byte> ss = OK(s.try_state_save());
  token d1 = OK(s.try_sample(last));
  OK(s.try_state_load(span<const std::byte>(ss.data(), ss.size())));
  CHECK(OK(s.try_sample(last)) == d1);
  OK(s.try_reset());
  CHECK_ERR(s.try_accept(-1), NANOLLAMA_STATUS_TOKEN_OUT_OF_RANGE);
  CHECK_ERR(s.try_sample(last.first(10)), NANOLLAMA_STATUS_INVALID_ARGUMENT);
  const std::uint32_t order[2] = {NANOLLAMA_STAGE_TOP_K, NANOLLAMA_STAGE_TEMPERATURE};
  Sampler top1 = OK(Sampler::try_create(m.n_vocab(), SamplerParams().order(order).top_k(1).temp(5.0f)));
  CHECK(OK(top1.try_sample(last)) == best);
}

// ------------------------------------------------------------ generate
// examples/generate.c's loop (with --temp 0), through the try_ API.
static std::string generate_try(const std::vector<std::byte> &gguf, std::string_view prompt, int n_predict,
                                ThreadPool *pool) {
  Model model = OK(Model::try_load(bytes(gguf)));
  Vocab vocab = OK(Vocab::try_load(bytes(gguf)));
  std::vector<token> tokens = OK(vocab.try_tokenize(prompt));
  if (tokens.empty() && vocab.info().bos != NANOLLAMA_TOKEN_NULL) tokens.push_back(vocab.info().bos);
  ContextParams cp = ContextParams().n_ctx(model.info().n_ctx_train).n_batch(static_cast<std::uint32_t>(tokens.size()));
  if (pool != nullptr) cp.thread_pool(*pool);
  Context ctx = OK(Context::try_create(model, cp));
  Sampler smp = OK(Sampler::try_create(model.n_vocab(), SamplerParams::greedy()));
  std::string text;
  Detokenizer d(vocab);
  for (token t : tokens) {
    text += OK(d.try_push(t));
    OK(smp.try_accept(t));
  }
  OK(ctx.try_decode(tokens));
  std::uint32_t pos = static_cast<std::uint32_t>(tokens.size());
  for (int n_gen = 0; n_gen < n_predict;) {
    token t = OK(smp.try_sample(ctx));
    OK(smp.try_accept(t));
    n_gen++;
    if (OK(vocab.try_is_eog(t))) break;
    if (t == vocab.info().bos)
      text += '\n';
    else
      text += OK(d.try_push(t));
    if (pos == ctx.info().n_ctx) break;
    OK(ctx.try_decode(t));
    pos++;
  }
  text += OK(d.try_flush());
  return text + "\n";
}

#if NANOLLAMA_EXCEPTIONS
// The same through the throwing API.
static std::string generate_throwing(const std::vector<std::byte> &gguf, std::string_view prompt,
                                     int n_predict) {
  Model model(bytes(gguf));
  Vocab vocab(gguf.data(), gguf.size());
  std::vector<token> tokens = vocab.tokenize(prompt);
  if (tokens.empty()) tokens.push_back(vocab.info().bos);
  Context ctx(model, ContextParams().n_ctx(model.info().n_ctx_train).n_batch(static_cast<std::uint32_t>(tokens.size())));
  Sampler smp(model.n_vocab(), SamplerParams::greedy());
  std::string text;
  Detokenizer d(vocab);
  for (token t : tokens) {
    text += d.push(t);
    smp.accept(t);
  }
  ctx.decode(tokens);
  for (int n_gen = 0; n_gen < n_predict;) {
    token t = smp.sample(ctx.last_logits());
    smp.accept(t);
    n_gen++;
    if (vocab.is_eog(t)) break;
    text += t == vocab.info().bos ? std::string_view("\n") : d.push(t);
    if (ctx.pos() == ctx.info().n_ctx) break;
    ctx.decode(t);
  }
  text += d.flush();
  return text + "\n";
}
#endif

int main(int argc, char **argv) {
  if (argc != 4) {
    std::fprintf(stderr, "usage: %s MODEL PROMPT N\n", argv[0]);
    return 2;
  }
  CHECK(nanollama::abi_compatible());
  CHECK(nanollama::version().abi == NANOLLAMA_ABI_VERSION && nanollama::version().text != nullptr);
  const std::vector<std::byte> gguf = read_file(argv[1]);
  int n = std::atoi(argv[3]);
  errors(gguf);
  raii(gguf);
  many(gguf);
  caller_buffers(gguf);
  helpers(gguf);
  std::string text = generate_try(gguf, argv[2], n, nullptr);
  {
    ThreadPool pool(2);
    CHECK(generate_try(gguf, argv[2], n, &pool) == text);
  }
#if NANOLLAMA_EXCEPTIONS
  exceptions(gguf);
  CHECK(generate_throwing(gguf, argv[2], n) == text);
#endif
  CHECK(g_live == 0);
  std::fwrite(text.data(), 1, text.size(), stdout);
  return 0;
}
