/* c++ -std=c++17 -O2 -Iinclude examples/generate.cpp target/release/libnanollama.a -lpthread -lm -o generate-cpp
 *
 * examples/generate.c through the C++ layer (include/nanollama.hpp):
 *     $ ./generate-cpp -p "And it came to pass" -n 60
 *     $ ./generate-cpp -m models/kjv-llama.gguf -p "In the beginning" -n 40 -t 2 --seed 7 --temp 0.8
 * The same options and the same output as generate.c, except that
 * sampling is greedy (--temp 0) unless a --temp is given: -m MODEL (default
 * models/kjv-llama.gguf), -p PROMPT, -n TOKENS (default 128), --special,
 * -t THREADS (a nanollama::ThreadPool), and --seed --temp --top-k --top-p
 * --min-p --repeat-penalty --penalty-last-n. Prints the prompt and the text
 * as it comes, then the speeds on stderr. Exits 1 on an error (the status
 * message on stderr), 2 on bad options.
 *
 * The file is mapped (POSIX mmap) and borrowed by the model and vocabulary;
 * the objects allocate their own memory and free it when they go out of
 * scope, in the reverse order of their making (a context before its model).
 */
#include "nanollama.hpp"

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

namespace {

// A file mapped read-only, unmapped by the destructor.
class MappedFile {
 public:
  explicit MappedFile(const char *path) {
    int fd = open(path, O_RDONLY);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0) throw std::runtime_error(std::string("cannot open ") + path);
    len_ = static_cast<std::size_t>(st.st_size);
    if (len_ > 0) {
      void *p = mmap(nullptr, len_, PROT_READ, MAP_PRIVATE, fd, 0);
      if (p == MAP_FAILED) {
        close(fd);
        throw std::runtime_error(std::string("cannot map ") + path);
      }
      data_ = p;
    }
    close(fd);
  }
  MappedFile(const MappedFile &) = delete;
  MappedFile &operator=(const MappedFile &) = delete;
  ~MappedFile() {
    if (data_ != nullptr) munmap(data_, len_);
  }
  nanollama::span<const std::byte> bytes() const {
    return {static_cast<const std::byte *>(data_), len_};
  }

 private:
  void *data_ = nullptr;
  std::size_t len_ = 0;
};

double now_seconds() {
  using namespace std::chrono;
  return duration<double>(steady_clock::now().time_since_epoch()).count();
}

// examples/host.h's sampler_flag: stores argv[i + 1] when argv[i] is a
// sampler flag and returns true (i advanced past the value).
bool sampler_flag(int argc, char **argv, int &i, nanollama::SamplerParams &sp) {
  const std::string_view f = argv[i];
  const char *const names[] = {"--seed",  "--temp",           "--top-k",         "--top-p",
                               "--min-p", "--repeat-penalty", "--penalty-last-n"};
  int k = 0;
  while (k < 7 && f != names[k]) k++;
  if (k == 7) return false;
  if (i + 1 >= argc) {
    std::fprintf(stderr, "%s needs a value\n", argv[i]);
    std::exit(2);
  }
  const char *v = argv[++i];
  switch (k) {
    case 0: sp.seed(std::strtoull(v, nullptr, 10)); break;
    case 1: sp.temp(std::strtof(v, nullptr)); break;
    case 2: sp.top_k(static_cast<std::int32_t>(std::strtol(v, nullptr, 10))); break;
    case 3: sp.top_p(std::strtof(v, nullptr)); break;
    case 4: sp.min_p(std::strtof(v, nullptr)); break;
    case 5: sp.penalty_repeat(std::strtof(v, nullptr)); break;
    default: sp.penalty_last_n(static_cast<std::uint32_t>(std::strtoul(v, nullptr, 10))); break;
  }
  return true;
}

void print(std::string_view s) {
  std::fwrite(s.data(), 1, s.size(), stdout);
}

}  // namespace

int main(int argc, char **argv) {
  const char *model_path = "models/kjv-llama.gguf";
  std::string_view prompt;
  int n_predict = 128, n_threads = 1;
  bool special = false;
  nanollama::SamplerParams sp = nanollama::SamplerParams::greedy();
  for (int i = 1; i < argc; i++) {
    if (sampler_flag(argc, argv, i, sp)) continue;
    if (std::strcmp(argv[i], "--special") == 0) {
      special = true;
      continue;
    }
    if (i + 1 >= argc) {
      std::fprintf(stderr, "usage: %s [-m MODEL] [-p PROMPT] [-n N] [-t THREADS] [--special] [sampler flags]\n",
                   argv[0]);
      return 2;
    }
    if (std::strcmp(argv[i], "-m") == 0) model_path = argv[++i];
    else if (std::strcmp(argv[i], "-p") == 0) prompt = argv[++i];
    else if (std::strcmp(argv[i], "-n") == 0) n_predict = std::atoi(argv[++i]);
    else if (std::strcmp(argv[i], "-t") == 0) n_threads = std::atoi(argv[++i]);
    else {
      std::fprintf(stderr, "unknown option %s\n", argv[i]);
      return 2;
    }
  }

  try {
    // The model and its vocabulary, both reading the mapped file in place.
    MappedFile file(model_path);
    nanollama::Model model(file.bytes());
    nanollama::Vocab vocab(file.bytes());

    // The prompt as tokens (BOS and EOS where the file asks for them; BOS
    // alone for an empty prompt).
    nanollama::tokenize_flags flags = NANOLLAMA_TOKENIZE_FLAGS_ADD_SPECIAL;
    if (special) flags |= NANOLLAMA_TOKENIZE_FLAGS_PARSE_SPECIAL;
    std::vector<nanollama::token> tokens = vocab.tokenize(prompt, flags);
    if (tokens.empty() && vocab.info().bos != NANOLLAMA_TOKEN_NULL) tokens.push_back(vocab.info().bos);

    // A context for the whole training window, the prompt in one batch,
    // and a thread pool if asked for (made first: it outlives the context).
    std::optional<nanollama::ThreadPool> pool;
    nanollama::ContextParams cp;
    cp.n_ctx(model.info().n_ctx_train).n_batch(static_cast<std::uint32_t>(tokens.size()));
    if (n_threads > 1) cp.thread_pool(pool.emplace(static_cast<unsigned>(n_threads)));
    if (tokens.size() >= cp.raw().n_ctx) {
      std::fprintf(stderr, "the prompt (%zu tokens) does not fit the context (%u)\n", tokens.size(),
                   cp.raw().n_ctx);
      return 1;
    }
    nanollama::Context ctx(model, cp);
    nanollama::Sampler sampler(model.n_vocab(), sp);

    // Echo the prompt, then read it.
    nanollama::Detokenizer detok(vocab);
    for (nanollama::token t : tokens) {
      print(detok.push(t));
      sampler.accept(t);
    }
    double t0 = now_seconds();
    ctx.decode(tokens);
    double t1 = now_seconds();

    // Sample, show, feed back, until -n tokens, an end-of-generation token
    // or a full context. BOS starts a new verse in the shipped model's
    // training text: it is shown as a line break.
    int n_gen = 0;
    while (n_gen < n_predict) {
      nanollama::token t = sampler.sample(ctx);
      sampler.accept(t);
      n_gen++;
      if (vocab.is_eog(t)) break;
      print(t == vocab.info().bos ? std::string_view("\n") : detok.push(t));
      std::fflush(stdout);
      if (ctx.pos() == ctx.info().n_ctx) break;
      ctx.decode(t);
    }
    print(detok.flush());
    std::printf("\n");
    double t2 = now_seconds();
    std::fprintf(stderr, "prompt: %zu tokens, %.1f tok/s; generation: %d tokens, %.1f tok/s\n", tokens.size(),
                 static_cast<double>(tokens.size()) / (t1 - t0), n_gen, n_gen / (t2 - t1));
  } catch (const nanollama::Exception &e) {
    std::fprintf(stderr, "%s: error %u: %s\n", model_path, e.code(), e.what());
    return 1;
  } catch (const std::exception &e) {
    std::fprintf(stderr, "%s\n", e.what());
    return 1;
  }
  return 0;
}
