/* A program built against an installed nanollama (tools/install.sh): loads a
 * GGUF model, prints its shape, then the prompt and the N most likely next
 * tokens one after another (greedy decoding). Exits 1 on any failure.
 *     ./greedy-shared models/kjv-llama.gguf "In the beginning" 16
 */
#include <nanollama.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHECK(call)                                                                      \
    do {                                                                                 \
        nanollama_status s_ = (call);                                                    \
        if (s_ != NANOLLAMA_STATUS_OK) {                                                 \
            fprintf(stderr, "%s: %s\n", #call, nanollama_status_str((uint32_t)s_));       \
            return 1;                                                                    \
        }                                                                                \
    } while (0)

/* n bytes aligned to 64, as every object's memory must be. */
static void *alloc64(size_t n) {
    void *p = aligned_alloc(64, n ? (n + 63) / 64 * 64 : 64);
    if (!p) exit(1);
    return p;
}

int main(int argc, char **argv) {
    if (argc < 2 || argc > 4) {
        fprintf(stderr, "usage: %s MODEL.gguf [PROMPT] [N]\n", argv[0]);
        return 2;
    }
    const char *prompt = argc > 2 ? argv[2] : "In the beginning";
    int n_gen = argc > 3 ? atoi(argv[3]) : 16;

    /* The whole file in memory: the model reads its weights in place. */
    FILE *f = fopen(argv[1], "rb");
    long len = f && fseek(f, 0, SEEK_END) == 0 ? ftell(f) : -1;
    uint8_t *gguf = alloc64(len > 0 ? (size_t)len : 0);
    if (len <= 0 || fseek(f, 0, SEEK_SET) != 0 || fread(gguf, 1, (size_t)len, f) != (size_t)len) {
        fprintf(stderr, "cannot read %s\n", argv[1]);
        return 1;
    }
    fclose(f);

    size_t n;
    const nanollama_model *model;
    const nanollama_vocab *vocab;
    nanollama_model_info mi;
    CHECK(nanollama_model_size(gguf, (size_t)len, &n));
    void *model_mem = alloc64(n);
    CHECK(nanollama_model_init(gguf, (size_t)len, model_mem, n, &model));
    CHECK(nanollama_vocab_size(gguf, (size_t)len, &n));
    void *vocab_mem = alloc64(n);
    CHECK(nanollama_vocab_init(gguf, (size_t)len, vocab_mem, n, &vocab));
    /* The library loaded at run time must implement the ABI of this header. */
    if (nanollama_version()->abi != NANOLLAMA_ABI_VERSION) {
        fprintf(stderr, "built for ABI %d, linked with ABI %u\n", NANOLLAMA_ABI_VERSION,
                (unsigned)nanollama_version()->abi);
        return 1;
    }
    CHECK(nanollama_model_get_info(model, &mi, sizeof mi));
    printf("ABI %d; vocabulary %u tokens, %u layers, dim %u, context %u\n", NANOLLAMA_ABI_VERSION,
           mi.n_vocab, mi.n_layers, mi.dim, mi.n_ctx_train);

    /* The prompt as tokens, with the BOS the file asks for. */
    size_t text_len = strlen(prompt), cap = text_len + 3, n_prompt;
    size_t scratch_len = nanollama_tokenize_scratch_size(text_len);
    void *scratch = alloc64(scratch_len);
    int32_t *tokens = alloc64(cap * sizeof *tokens);
    CHECK(nanollama_tokenize(vocab, (const uint8_t *)prompt, text_len,
                             NANOLLAMA_TOKENIZE_FLAGS_ADD_SPECIAL, scratch, scratch_len, tokens,
                             cap, &n_prompt));

    /* A context for the prompt and the tokens to come; the prompt in one batch. */
    nanollama_context_params cp;
    CHECK(nanollama_context_params_default(&cp, sizeof cp));
    cp.n_ctx = (uint32_t)n_prompt + (uint32_t)(n_gen > 0 ? n_gen : 0);
    cp.n_batch = (uint32_t)n_prompt;
    nanollama_context *ctx;
    CHECK(nanollama_context_size(model, &cp, &n));
    void *ctx_mem = alloc64(n);
    CHECK(nanollama_context_init(model, &cp, ctx_mem, n, &ctx));
    CHECK(nanollama_context_decode(ctx, tokens, n_prompt));

    /* The prompt's text, then the most likely token, fed back, n_gen times. */
    uint8_t piece[300];
    nanollama_detokenizer d;
    nanollama_detokenizer_init(&d);
    for (size_t i = 0; i < n_prompt; i++) {
        CHECK(nanollama_detokenizer_push(&d, vocab, tokens[i], piece, sizeof piece, &n));
        fwrite(piece, 1, n, stdout);
    }
    for (int i = 0; i < n_gen; i++) {
        const float *logits;
        size_t rows;
        int32_t best = 0;
        CHECK(nanollama_context_logits(ctx, &logits, &rows));
        for (uint32_t v = 1; v < mi.n_vocab; v++)
            if (logits[v] > logits[best]) best = (int32_t)v;
        CHECK(nanollama_detokenizer_push(&d, vocab, best, piece, sizeof piece, &n));
        fwrite(piece, 1, n, stdout);
        if (i + 1 < n_gen) CHECK(nanollama_context_decode(ctx, &best, 1));
    }
    CHECK(nanollama_detokenizer_flush(&d, piece, sizeof piece, &n));
    fwrite(piece, 1, n, stdout);
    printf("\n");

    /* No _free: the memory is ours (context before model, model before file). */
    free(ctx_mem);
    free(tokens);
    free(scratch);
    free(vocab_mem);
    free(model_mem);
    free(gguf);
    return fflush(stdout) == 0 && !ferror(stdout) ? 0 : 1;
}
