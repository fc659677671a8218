/* cc -std=c11 -O2 -Iinclude examples/generate.c target/release/libnanollama.a -lpthread -lm -o generate
 *
 * Writes text with the shipped model (or another LLaMA GGUF file):
 *     $ ./generate -p "And it came to pass" -n 60
 *     $ ./generate -m models/kjv-llama.gguf -p "In the beginning" -n 40 -t 2 --seed 7 --temp 0.8
 * Options: -m MODEL (default models/kjv-llama.gguf), -p PROMPT, -n TOKENS
 * (default 128), --special (read special-token text in the prompt, such as
 * "<|im_start|>", as those tokens), -t THREADS (a pthread pool of that size runs the library's
 * tasks; the text is the same for any number), and the sampler flags --seed
 * --temp --top-k --top-p --min-p --repeat-penalty --penalty-last-n (llama.cpp's
 * defaults otherwise; --temp 0 is greedy). Prints the prompt and the text as
 * it comes, then the speeds on stderr.
 *
 * The host owns every byte: it maps the file, asks each object how much
 * memory it needs and allocates it (64-byte aligned). Nothing to free but
 * that memory.
 */
#include "host.h"

int main(int argc, char **argv) {
    const char *model_path = "models/kjv-llama.gguf";
    const char *prompt = "";
    int n_predict = 128, n_threads = 1;
    nanollama_sampler_params sp;
    nanollama_sampler_params_default(&sp, sizeof sp);
    int special = 0;
    for (int i = 1; i < argc; i++) {
        if (sampler_flag(argc, argv, &i, &sp)) continue;
        if (!strcmp(argv[i], "--special")) {
            special = 1;
            continue;
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "usage: %s [-m MODEL] [-p PROMPT] [-n N] [-t THREADS] [--special] [sampler flags]\n",
                    argv[0]);
            return 2;
        }
        if (!strcmp(argv[i], "-m")) model_path = argv[++i];
        else if (!strcmp(argv[i], "-p")) prompt = argv[++i];
        else if (!strcmp(argv[i], "-n")) n_predict = atoi(argv[++i]);
        else if (!strcmp(argv[i], "-t")) n_threads = atoi(argv[++i]);
        else {
            fprintf(stderr, "unknown option %s\n", argv[i]);
            return 2;
        }
    }

    /* The model and its vocabulary, both reading the mapped file in place. */
    host_model hm = host_model_load(model_path);
    const nanollama_model *model = hm.model;
    const nanollama_vocab *vocab = hm.vocab;
    const nanollama_model_info mi = hm.info;
    const nanollama_vocab_info vi = hm.vocab_info;
    size_t size;

    /* The prompt as tokens (BOS and EOS where the file asks for them). */
    size_t cap = strlen(prompt) + 3;
    int32_t *tokens = malloc(cap * sizeof *tokens);
    size_t n_prompt = host_tokenize(&hm, prompt, special, tokens, cap);

    /* A context for the whole training window, the prompt in one batch, and
     * the host's threads if asked for. */
    host_pool pool;
    nanollama_context_params cp;
    nanollama_context_params_default(&cp, sizeof cp);
    cp.n_ctx = mi.n_ctx_train;
    cp.n_batch = (uint32_t)n_prompt;
    if (n_threads > 1) {
        host_pool_start(&pool, n_threads);
        host_pool_attach(&pool, &cp);
    }
    if (n_prompt >= cp.n_ctx) {
        fprintf(stderr, "the prompt (%zu tokens) does not fit the context (%u)\n", n_prompt, cp.n_ctx);
        return 1;
    }
    CHECK_OK(nanollama_context_size(model, &cp, &size));
    void *ctx_mem = alloc64(size);
    nanollama_context *ctx;
    CHECK_OK(nanollama_context_init(model, &cp, ctx_mem, size, &ctx));
    CHECK_OK(nanollama_sampler_size(mi.n_vocab, &sp, &size));
    void *sampler_mem = alloc64(size);
    nanollama_sampler *sampler;
    CHECK_OK(nanollama_sampler_init(mi.n_vocab, &sp, sampler_mem, size, &sampler));

    /* Echo the prompt, then read it. */
    uint8_t piece[300];
    nanollama_detokenizer d;
    nanollama_detokenizer_init(&d);
    for (size_t i = 0; i < n_prompt; i++) {
        size_t n;
        CHECK_OK(nanollama_detokenizer_push(&d, vocab, tokens[i], piece, sizeof piece, &n));
        fwrite(piece, 1, n, stdout);
        CHECK_OK(nanollama_sampler_accept(sampler, tokens[i]));
    }
    double t0 = now_seconds();
    CHECK_OK(nanollama_context_decode(ctx, tokens, n_prompt));
    double t1 = now_seconds();

    /* Sample, show, feed back, until -n tokens, an end-of-generation token
     * (EOS, end of turn, ...) or a full context. */
    int n_gen = 0;
    uint32_t pos = (uint32_t)n_prompt;
    while (n_gen < n_predict) {
        const float *logits;
        size_t rows;
        int32_t tok;
        CHECK_OK(nanollama_context_logits(ctx, &logits, &rows));
        CHECK_OK(nanollama_sampler_sample(sampler, logits, mi.n_vocab, &tok));
        CHECK_OK(nanollama_sampler_accept(sampler, tok));
        n_gen++;
        if (host_is_eog(vocab, tok)) break;
        size_t n = token_text(vocab, &vi, &d, tok, piece);
        fwrite(piece, 1, n, stdout);
        fflush(stdout);
        if (pos == cp.n_ctx) break;
        CHECK_OK(nanollama_context_decode(ctx, &tok, 1));
        pos++;
    }
    size_t n;
    CHECK_OK(nanollama_detokenizer_flush(&d, piece, sizeof piece, &n));
    fwrite(piece, 1, n, stdout);
    printf("\n");
    double t2 = now_seconds();
    fprintf(stderr, "prompt: %zu tokens, %.1f tok/s; generation: %d tokens, %.1f tok/s\n", n_prompt,
            (double)n_prompt / (t1 - t0), n_gen, (double)n_gen / (t2 - t1));

    if (n_threads > 1) host_pool_stop(&pool);
    free(sampler_mem);
    free(ctx_mem);
    free(tokens);
    host_model_free(&hm);
    return 0;
}
