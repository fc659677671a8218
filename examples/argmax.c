/* cc -std=c11 -O2 -Iinclude examples/argmax.c target/release/libnanollama.a -lm -o argmax
 *
 * Loads a GGUF model, evaluates the given tokens in one batch and prints, for
 * each position, the token and the most likely next token:
 *     $ ./argmax MODEL.gguf 1 15043 3186
 *     0 1 -> 450 (logit 9.1234)
 *     ...
 * The host owns every byte: it reads the file, asks each object how much
 * memory it needs, and allocates it (64-byte aligned). The library allocates
 * nothing and has no _free. Errors print the status message and exit 1.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "nanollama.h"

/* n bytes aligned to 64 (aligned_alloc wants a multiple of the alignment). */
static void *alloc64(size_t n) { return aligned_alloc(64, n ? (n + 63) / 64 * 64 : 64); }

static int fail(const char *what, nanollama_status s) {
    fprintf(stderr, "argmax: %s: %s\n", what, nanollama_status_str((uint32_t)s));
    return 1;
}

static int out_of_memory(void) {
    fprintf(stderr, "argmax: out of memory\n");
    return 1;
}

/* The whole file in a malloc'd buffer (an mmap works as well). */
static uint8_t *read_file(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    uint8_t *buf = NULL;
    long n = fseek(f, 0, SEEK_END) == 0 ? ftell(f) : -1;
    if (n > 0 && fseek(f, 0, SEEK_SET) == 0 && (buf = malloc((size_t)n)) != NULL &&
        fread(buf, 1, (size_t)n, f) != (size_t)n) {
        free(buf);
        buf = NULL;
    }
    fclose(f);
    *len = n > 0 ? (size_t)n : 0;
    return buf;
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: argmax MODEL.gguf TOKEN...\n");
        return 2;
    }
    size_t len = 0;
    uint8_t *gguf = read_file(argv[1], &len);
    if (!gguf) {
        fprintf(stderr, "argmax: cannot read %s\n", argv[1]);
        return 1;
    }

    /* The model: weights are read in place from `gguf`, which must outlive it. */
    size_t need;
    nanollama_status s = nanollama_model_size(gguf, len, &need);
    if (s) return fail(argv[1], s);
    void *model_mem = alloc64(need);
    if (!model_mem) return out_of_memory();
    const nanollama_model *model;
    if ((s = nanollama_model_init(gguf, len, model_mem, need, &model))) return fail(argv[1], s);
    nanollama_model_info info;
    if ((s = nanollama_model_get_info(model, &info, sizeof info))) return fail("model", s);

    int n = argc - 2;
    int32_t *tokens = malloc((size_t)n * sizeof *tokens);
    if (!tokens) return out_of_memory();
    for (int i = 0; i < n; i++) {
        char *end;
        long t = strtol(argv[i + 2], &end, 10);
        if (*argv[i + 2] == '\0' || *end != '\0' || t < INT32_MIN || t > INT32_MAX) {
            fprintf(stderr, "argmax: not a token id: %s\n", argv[i + 2]);
            return 1;
        }
        tokens[i] = (int32_t)t; /* the library checks the range */
    }

    /* A context just big enough for one batch, keeping every row of logits. */
    nanollama_context_params p;
    nanollama_context_params_default(&p, sizeof p);
    p.n_ctx = (uint32_t)n;
    p.n_batch = (uint32_t)n;
    p.logits_all = 1;
    if ((s = nanollama_context_size(model, &p, &need))) return fail("context", s);
    void *ctx_mem = alloc64(need);
    if (!ctx_mem) return out_of_memory();
    nanollama_context *ctx;
    if ((s = nanollama_context_init(model, &p, ctx_mem, need, &ctx))) return fail("context", s);
    if ((s = nanollama_context_decode(ctx, tokens, (size_t)n))) return fail("decode", s);

    const float *logits;
    size_t rows;
    if ((s = nanollama_context_logits(ctx, &logits, &rows))) return fail("logits", s);
    for (size_t r = 0; r < rows; r++) {
        const float *row = logits + r * info.n_vocab;
        uint32_t best = 0;
        for (uint32_t v = 1; v < info.n_vocab; v++)
            if (row[v] > row[best]) best = v;
        printf("%zu %d -> %u (logit %.4f)\n", r, tokens[r], best, row[best]);
    }

    /* No _free: the memory is ours. The context goes before the model, the
     * model before the file bytes. */
    free(ctx_mem);
    free(tokens);
    free(model_mem);
    free(gguf);
    return 0;
}
