/* cc -std=c11 -O2 -Iinclude examples/argmax.c target/release/libnanollama.a -lm -o argmax
 *
 * Loads a GGUF model, evaluates the given tokens in one batch and prints, for
 * each position, the token and the most likely next token:
 *     ./argmax MODEL.gguf 1 15043 3186
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "nanollama.h"

static void *alloc64(size_t n) { return aligned_alloc(64, (n + 63) / 64 * 64); }

static int fail(const char *what, nanollama_status s) {
    fprintf(stderr, "argmax: %s: %s\n", what, nanollama_status_str((uint32_t)s));
    return 1;
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: argmax MODEL.gguf TOKEN...\n");
        return 2;
    }
    /* The host owns every byte: read the file (an mmap works as well). */
    FILE *f = fopen(argv[1], "rb");
    if (!f) { perror(argv[1]); return 1; }
    fseek(f, 0, SEEK_END);
    size_t len = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *gguf = malloc(len);
    if (!gguf || fread(gguf, 1, len, f) != len) { perror(argv[1]); return 1; }
    fclose(f);

    size_t need;
    nanollama_status s = nanollama_model_size(gguf, len, &need);
    if (s) return fail(argv[1], s);
    void *model_mem = alloc64(need);
    const nanollama_model *model;
    if ((s = nanollama_model_init(gguf, len, model_mem, need, &model))) return fail(argv[1], s);

    int n = argc - 2;
    int32_t *tokens = malloc((size_t)n * sizeof *tokens);
    for (int i = 0; i < n; i++) tokens[i] = (int32_t)strtol(argv[i + 2], NULL, 10);

    nanollama_context_params p;
    nanollama_context_params_default(&p);
    p.n_ctx = (uint32_t)n;
    p.n_batch = (uint32_t)n;
    p.logits_all = 1;
    if ((s = nanollama_context_size(model, &p, &need))) return fail("context", s);
    void *ctx_mem = alloc64(need);
    nanollama_context *ctx;
    if ((s = nanollama_context_init(model, &p, ctx_mem, need, &ctx))) return fail("context", s);
    if ((s = nanollama_context_decode(ctx, tokens, (size_t)n))) return fail("decode", s);

    nanollama_model_info info;
    nanollama_model_get_info(model, &info);
    const float *logits;
    size_t rows;
    nanollama_context_logits(ctx, &logits, &rows);
    for (size_t r = 0; r < rows; r++) {
        const float *row = logits + r * info.n_vocab;
        uint32_t best = 0;
        for (uint32_t v = 1; v < info.n_vocab; v++)
            if (row[v] > row[best]) best = v;
        printf("%zu %d -> %u (logit %.4f)\n", r, tokens[r], best, row[best]);
    }
    /* No _free: the memory is ours. */
    free(ctx_mem);
    free(tokens);
    free(model_mem);
    free(gguf);
    return 0;
}
