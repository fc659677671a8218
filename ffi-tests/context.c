/* Context API: params, size/init, decode, logits, pos, truncate, reset, and
 * every bad argument. Usage: context MODEL.gguf (the tiny F32 test model:
 * vocab 100, context 64). */
#include <math.h>

#include "common.h"

#define N_VOCAB 100

static const float *logits_of(nanollama_context *ctx, size_t want_rows) {
    const float *l = NULL;
    size_t rows = 999;
    CHECK_OK(nanollama_context_logits(ctx, &l, &rows));
    CHECK(rows == want_rows);
    CHECK(l != NULL);
    return l;
}

static uint32_t pos_of(nanollama_context *ctx) {
    uint32_t p = 12345;
    CHECK_OK(nanollama_context_pos(ctx, &p));
    return p;
}

int main(int argc, char **argv) {
    CHECK(argc == 2);
    loaded_model lm = load_model(argv[1]);
    const nanollama_model *m = lm.model;

    nanollama_context_params p;
    memset(&p, 0xAB, sizeof p);
    nanollama_context_params_default(&p);
    CHECK(p.n_ctx == 0 && p.n_batch == 0 && p.kv_type == NANOLLAMA_KV_TYPE_F16);
    CHECK(p.logits_all == 0 && p.parallel_for == NULL && p.parallel_user_data == NULL);
    CHECK(p.n_threads == 1);
    nanollama_context_params_default(NULL); /* no crash */

    p.n_ctx = 16;
    p.n_batch = 4;
    p.kv_type = NANOLLAMA_KV_TYPE_F32;
    size_t need = 0;
    CHECK_STATUS(nanollama_context_size(NULL, &p, &need), NANOLLAMA_STATUS_NULL_POINTER);
    CHECK_STATUS(nanollama_context_size(m, NULL, &need), NANOLLAMA_STATUS_NULL_POINTER);
    CHECK_STATUS(nanollama_context_size(m, &p, NULL), NANOLLAMA_STATUS_NULL_POINTER);
    nanollama_context_params bad = p;
    bad.kv_type = 2;
    CHECK_STATUS(nanollama_context_size(m, &bad, &need), NANOLLAMA_STATUS_INVALID_ARGUMENT);
    bad = p;
    bad.logits_all = 7;
    CHECK_STATUS(nanollama_context_size(m, &bad, &need), NANOLLAMA_STATUS_INVALID_ARGUMENT);
    CHECK_OK(nanollama_context_size(m, &p, &need));
    uint8_t *mem = alloc64(need + 64);
    nanollama_context *sentinel = (nanollama_context *)(uintptr_t)0x40;
    nanollama_context *ctx = sentinel;
    CHECK_STATUS(nanollama_context_init(m, &p, mem, need - 1, &ctx), NANOLLAMA_STATUS_BUFFER_TOO_SMALL);
    CHECK_STATUS(nanollama_context_init(m, &p, mem + 4, need, &ctx), NANOLLAMA_STATUS_MISALIGNED);
    CHECK_STATUS(nanollama_context_init(m, &p, NULL, need, &ctx), NANOLLAMA_STATUS_NULL_POINTER);
    CHECK_STATUS(nanollama_context_init(m, &p, mem, need, NULL), NANOLLAMA_STATUS_NULL_POINTER);
    CHECK_STATUS(nanollama_context_init(m, &bad, mem, need, &ctx), NANOLLAMA_STATUS_INVALID_ARGUMENT);
    CHECK(ctx == sentinel);
    CHECK_OK(nanollama_context_init(m, &p, mem, need, &ctx));
    CHECK(ctx != sentinel);

    /* Before any decode: position 0, no logits. */
    CHECK(pos_of(ctx) == 0);
    logits_of(ctx, 0);

    int32_t toks[] = {5, 17, 99, 0, 42, 42, 7, 63};
    CHECK_OK(nanollama_context_decode(ctx, toks, 3));
    CHECK(pos_of(ctx) == 3);
    const float *l = logits_of(ctx, 1);
    float first[N_VOCAB];
    memcpy(first, l, sizeof first);
    for (int i = 0; i < N_VOCAB; i++) CHECK(isfinite(first[i]));

    /* Bad decodes: each its own status, nothing changes. */
    int32_t out_of_range[] = {1, N_VOCAB};
    int32_t negative[] = {-1};
    CHECK_STATUS(nanollama_context_decode(NULL, toks, 1), NANOLLAMA_STATUS_NULL_POINTER);
    CHECK_STATUS(nanollama_context_decode(ctx, NULL, 1), NANOLLAMA_STATUS_NULL_POINTER);
    CHECK_STATUS(nanollama_context_decode(ctx, toks, 0), NANOLLAMA_STATUS_INVALID_ARGUMENT);
    CHECK_STATUS(nanollama_context_decode(ctx, out_of_range, 2), NANOLLAMA_STATUS_TOKEN_OUT_OF_RANGE);
    CHECK_STATUS(nanollama_context_decode(ctx, negative, 1), NANOLLAMA_STATUS_TOKEN_OUT_OF_RANGE);
    CHECK_STATUS(nanollama_context_decode(ctx, toks, 5), NANOLLAMA_STATUS_BATCH_TOO_LARGE);
    CHECK_STATUS(nanollama_context_decode(ctx, toks, SIZE_MAX), NANOLLAMA_STATUS_BATCH_TOO_LARGE);
    CHECK(pos_of(ctx) == 3);
    CHECK(memcmp(logits_of(ctx, 1), first, sizeof first) == 0);
    /* Fill to 15 of 16, then a batch of 2 would pass n_ctx. */
    for (int i = 0; i < 3; i++) CHECK_OK(nanollama_context_decode(ctx, toks, 4));
    CHECK(pos_of(ctx) == 15);
    float at15[N_VOCAB];
    memcpy(at15, logits_of(ctx, 1), sizeof at15);
    CHECK_STATUS(nanollama_context_decode(ctx, toks, 2), NANOLLAMA_STATUS_CONTEXT_FULL);
    CHECK(pos_of(ctx) == 15);
    CHECK(memcmp(logits_of(ctx, 1), at15, sizeof at15) == 0);
    CHECK_OK(nanollama_context_decode(ctx, toks, 1));
    CHECK(pos_of(ctx) == 16);
    CHECK_STATUS(nanollama_context_decode(ctx, toks, 1), NANOLLAMA_STATUS_CONTEXT_FULL);

    /* Truncate and reset. */
    CHECK_STATUS(nanollama_context_truncate(ctx, 17), NANOLLAMA_STATUS_INVALID_ARGUMENT);
    CHECK(pos_of(ctx) == 16);
    CHECK_STATUS(nanollama_context_truncate(NULL, 0), NANOLLAMA_STATUS_NULL_POINTER);
    CHECK_OK(nanollama_context_truncate(ctx, 2));
    CHECK(pos_of(ctx) == 2);
    logits_of(ctx, 0);
    CHECK_OK(nanollama_context_decode(ctx, toks + 2, 1));
    CHECK(memcmp(logits_of(ctx, 1), first, sizeof first) == 0);
    CHECK_STATUS(nanollama_context_reset(NULL), NANOLLAMA_STATUS_NULL_POINTER);
    CHECK_OK(nanollama_context_reset(ctx));
    CHECK(pos_of(ctx) == 0);
    /* Token by token equals one batch. */
    for (int i = 0; i < 3; i++) CHECK_OK(nanollama_context_decode(ctx, toks + i, 1));
    CHECK(memcmp(logits_of(ctx, 1), first, sizeof first) == 0);
    {
        const float *lp = NULL;
        size_t rows = 0;
        CHECK_STATUS(nanollama_context_logits(NULL, &lp, &rows), NANOLLAMA_STATUS_NULL_POINTER);
        CHECK_STATUS(nanollama_context_logits(ctx, NULL, &rows), NANOLLAMA_STATUS_NULL_POINTER);
        CHECK_STATUS(nanollama_context_logits(ctx, &lp, NULL), NANOLLAMA_STATUS_NULL_POINTER);
        CHECK_STATUS(nanollama_context_pos(ctx, NULL), NANOLLAMA_STATUS_NULL_POINTER);
    }

    /* A second context over the same model, keeping every row. */
    nanollama_context_params pa = p;
    pa.logits_all = 1;
    void *mem2 = NULL;
    nanollama_context *all = new_context(m, &pa, &mem2);
    CHECK_OK(nanollama_context_decode(all, toks, 3));
    const float *rows = logits_of(all, 3);
    CHECK(memcmp(rows + 2 * N_VOCAB, first, sizeof first) == 0);

    free(mem2);
    free(mem);
    free_model(&lm);
    printf("context: ok\n");
    return 0;
}
