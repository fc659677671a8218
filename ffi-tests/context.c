/* Context API: params, size/init, decode, logits, pos, truncate, reset, and
 * every bad argument: each gets its own status and changes nothing.
 * Usage: context MODEL.gguf (a tiny test model: vocab 100, context 64). */
#include <math.h>

#include "common.h"

#define N_VOCAB 100
#define N_CTX_TRAIN 64
/* Batch against token by token, and other runs that may take a different
 * order of arithmetic: 1e-4, relative to max(1, |logit|). Runs that must
 * not differ at all are compared with memcmp. */
#define TOL 1e-4

static const float *logits_of(const nanollama_context *ctx, size_t want_rows) {
    const float *l = NULL;
    size_t rows = 999;
    CHECK_OK(nanollama_context_logits(ctx, &l, &rows));
    CHECK(rows == want_rows);
    CHECK(l != NULL);
    for (size_t i = 0; i < rows * N_VOCAB; i++) CHECK(isfinite(l[i]));
    return l;
}

static uint32_t pos_of(const nanollama_context *ctx) {
    uint32_t p = 12345;
    CHECK_OK(nanollama_context_pos(ctx, &p));
    return p;
}

static nanollama_context_params params(uint32_t n_ctx, uint32_t n_batch, uint32_t kv, bool all) {
    return context_params(n_ctx, n_batch, kv, all);
}

static const int32_t TOKS[] = {5, 17, 99, 0, 42, 42, 7, 63, 1, 2, 3, 4, 5, 6, 7, 8};

static void defaults(void) {
    nanollama_context_params p;
    memset(&p, 0xAB, sizeof p);
    nanollama_context_params_default(&p, sizeof p);
    CHECK(p.n_ctx == 0 && p.n_batch == 0 && p.kv_type == NANOLLAMA_KV_TYPE_F16);
    CHECK(p.logits_all == 0 && p.parallel_for == NULL && p.parallel_user_data == NULL);
    CHECK(p.n_threads == 1);
    CHECK_STATUS(nanollama_context_params_default(NULL, sizeof(nanollama_context_params)), NANOLLAMA_STATUS_NULL_POINTER);
}

/* size/init refuse every bad argument and leave *out_ctx alone. */
static void bad_setup(const nanollama_model *m) {
    nanollama_context_params p = params(16, 4, NANOLLAMA_KV_TYPE_F32, 0);
    size_t need = 0, out = 7;
    CHECK_OK(nanollama_context_size(m, &p, &need));
    CHECK(need > 0);
    CHECK_STATUS(nanollama_context_size(NULL, &p, &out), NANOLLAMA_STATUS_NULL_POINTER);
    CHECK_STATUS(nanollama_context_size(m, NULL, &out), NANOLLAMA_STATUS_NULL_POINTER);
    CHECK_STATUS(nanollama_context_size(m, &p, NULL), NANOLLAMA_STATUS_NULL_POINTER);

    nanollama_context_params bad[5];
    for (int i = 0; i < 5; i++) bad[i] = p;
    bad[0].kv_type = 2;
    bad[1].kv_type = UINT32_MAX;
    bad[2].size = 0;
    bad[3].size = sizeof p - 1; /* smaller than any struct of this ABI */
    bad[4].size = 4097;
    const nanollama_status want[5] = {NANOLLAMA_STATUS_INVALID_ARGUMENT, NANOLLAMA_STATUS_INVALID_ARGUMENT,
                                      NANOLLAMA_STATUS_BAD_STRUCT_SIZE, NANOLLAMA_STATUS_BAD_STRUCT_SIZE,
                                      NANOLLAMA_STATUS_BAD_STRUCT_SIZE};
    uint8_t *mem = alloc64(need + 64);
    nanollama_context *const sentinel = (nanollama_context *)(uintptr_t)0x40;
    nanollama_context *ctx = sentinel;
    for (int i = 0; i < 5; i++) {
        CHECK_STATUS(nanollama_context_size(m, &bad[i], &out), want[i]);
        CHECK_STATUS(nanollama_context_init(m, &bad[i], mem, need, &ctx), want[i]);
    }
    /* A context too large to describe: refused, not overflowed. */
    nanollama_context_params huge = p;
    huge.n_ctx = UINT32_MAX;
    CHECK_STATUS(nanollama_context_size(m, &huge, &out), NANOLLAMA_STATUS_INVALID_ARGUMENT);
    CHECK_STATUS(nanollama_context_init(m, &huge, mem, need, &ctx), NANOLLAMA_STATUS_INVALID_ARGUMENT);
    huge.n_batch = UINT32_MAX;
    huge.logits_all = 1;
    CHECK_STATUS(nanollama_context_size(m, &huge, &out), NANOLLAMA_STATUS_INVALID_ARGUMENT);
    CHECK(out == 7);
    CHECK_STATUS(nanollama_context_init(NULL, &p, mem, need, &ctx), NANOLLAMA_STATUS_NULL_POINTER);
    CHECK_STATUS(nanollama_context_init(m, NULL, mem, need, &ctx), NANOLLAMA_STATUS_NULL_POINTER);
    CHECK_STATUS(nanollama_context_init(m, &p, NULL, need, &ctx), NANOLLAMA_STATUS_NULL_POINTER);
    CHECK_STATUS(nanollama_context_init(m, &p, mem, need, NULL), NANOLLAMA_STATUS_NULL_POINTER);
    size_t small[] = {0, 1, 64, need / 2, need - 1};
    for (size_t i = 0; i < sizeof small / sizeof small[0]; i++)
        CHECK_STATUS(nanollama_context_init(m, &p, mem, small[i], &ctx), NANOLLAMA_STATUS_BUFFER_TOO_SMALL);
    size_t shifts[] = {1, 4, 8, 32};
    for (size_t i = 0; i < sizeof shifts / sizeof shifts[0]; i++)
        CHECK_STATUS(nanollama_context_init(m, &p, mem + shifts[i], need, &ctx), NANOLLAMA_STATUS_MISALIGNED);
    CHECK(ctx == sentinel);
    /* The null checks of the other calls. */
    const float *lp = NULL;
    size_t rows = 0;
    uint32_t pos = 0;
    int32_t t = 1;
    CHECK_STATUS(nanollama_context_decode(NULL, &t, 1), NANOLLAMA_STATUS_NULL_POINTER);
    CHECK_STATUS(nanollama_context_logits(NULL, &lp, &rows), NANOLLAMA_STATUS_NULL_POINTER);
    CHECK_STATUS(nanollama_context_pos(NULL, &pos), NANOLLAMA_STATUS_NULL_POINTER);
    CHECK_STATUS(nanollama_context_truncate(NULL, 0), NANOLLAMA_STATUS_NULL_POINTER);
    CHECK_STATUS(nanollama_context_reset(NULL), NANOLLAMA_STATUS_NULL_POINTER);
    free(mem);
}

/* Decode, bad decodes, n_ctx, truncate and reset on one context (n_ctx 16,
 * n_batch 4), with a control context that only sees the good calls. */
static void lifecycle(const nanollama_model *m, uint32_t kv) {
    nanollama_context_params p = params(16, 4, kv, 0);
    void *mem = NULL, *cmem = NULL;
    nanollama_context *ctx = new_context(m, &p, &mem);
    nanollama_context *control = new_context(m, &p, &cmem);

    /* Fresh: position 0, no logits. */
    CHECK(pos_of(ctx) == 0);
    logits_of(ctx, 0);

    CHECK_OK(nanollama_context_decode(ctx, TOKS, 3));
    CHECK_OK(nanollama_context_decode(control, TOKS, 3));
    CHECK(pos_of(ctx) == 3);
    float first[N_VOCAB];
    memcpy(first, logits_of(ctx, 1), sizeof first);

    /* Bad decodes: each its own status; position, logits and (checked below
     * through the control context) the KV cache are unchanged. */
    const int32_t out_of_range[][3] = {
        {N_VOCAB, 0, 0}, {1, 2, N_VOCAB}, {INT32_MAX, 0, 0}, {-1, 0, 0}, {1, INT32_MIN, 2}, {3, 4, -100},
    };
    for (size_t i = 0; i < sizeof out_of_range / sizeof out_of_range[0]; i++)
        CHECK_STATUS(nanollama_context_decode(ctx, out_of_range[i], 3), NANOLLAMA_STATUS_TOKEN_OUT_OF_RANGE);
    CHECK_STATUS(nanollama_context_decode(ctx, NULL, 1), NANOLLAMA_STATUS_NULL_POINTER);
    CHECK_STATUS(nanollama_context_decode(ctx, TOKS, 0), NANOLLAMA_STATUS_INVALID_ARGUMENT);
    CHECK_STATUS(nanollama_context_decode(ctx, TOKS, 5), NANOLLAMA_STATUS_BATCH_TOO_LARGE);
    CHECK_STATUS(nanollama_context_decode(ctx, TOKS, 16), NANOLLAMA_STATUS_BATCH_TOO_LARGE);
    CHECK_STATUS(nanollama_context_decode(ctx, TOKS, SIZE_MAX), NANOLLAMA_STATUS_BATCH_TOO_LARGE);
    CHECK(pos_of(ctx) == 3);
    CHECK(memcmp(logits_of(ctx, 1), first, sizeof first) == 0);

    /* Fill to 15 of 16; a batch of 2 would pass n_ctx. */
    for (int i = 0; i < 3; i++) {
        CHECK_OK(nanollama_context_decode(ctx, TOKS + 3 + 4 * i, 4));
        CHECK_OK(nanollama_context_decode(control, TOKS + 3 + 4 * i, 4));
    }
    CHECK(pos_of(ctx) == 15);
    CHECK(memcmp(logits_of(ctx, 1), logits_of(control, 1), sizeof first) == 0);
    float at15[N_VOCAB];
    memcpy(at15, logits_of(ctx, 1), sizeof at15);
    CHECK_STATUS(nanollama_context_decode(ctx, TOKS, 2), NANOLLAMA_STATUS_CONTEXT_FULL);
    CHECK_STATUS(nanollama_context_decode(ctx, TOKS, 4), NANOLLAMA_STATUS_CONTEXT_FULL);
    CHECK(pos_of(ctx) == 15);
    CHECK(memcmp(logits_of(ctx, 1), at15, sizeof at15) == 0);
    /* Exactly n_ctx is allowed; then nothing more. */
    CHECK_OK(nanollama_context_decode(ctx, TOKS + 15, 1));
    CHECK_OK(nanollama_context_decode(control, TOKS + 15, 1));
    CHECK(pos_of(ctx) == 16);
    CHECK(memcmp(logits_of(ctx, 1), logits_of(control, 1), sizeof first) == 0);
    float at16[N_VOCAB];
    memcpy(at16, logits_of(ctx, 1), sizeof at16);
    CHECK_STATUS(nanollama_context_decode(ctx, TOKS, 1), NANOLLAMA_STATUS_CONTEXT_FULL);
    CHECK(pos_of(ctx) == 16);
    CHECK(memcmp(logits_of(ctx, 1), at16, sizeof at16) == 0);

    /* Truncate: past the position is refused and changes nothing; to the
     * position itself is allowed and clears the logits. */
    CHECK_STATUS(nanollama_context_truncate(ctx, 17), NANOLLAMA_STATUS_INVALID_ARGUMENT);
    CHECK_STATUS(nanollama_context_truncate(ctx, UINT32_MAX), NANOLLAMA_STATUS_INVALID_ARGUMENT);
    CHECK(pos_of(ctx) == 16);
    CHECK(memcmp(logits_of(ctx, 1), at16, sizeof at16) == 0);
    CHECK_OK(nanollama_context_truncate(ctx, 16));
    CHECK(pos_of(ctx) == 16);
    logits_of(ctx, 0);
    /* Back to 2, then the third token again: its logits are those of the
     * first batch (token by token against a batch). */
    CHECK_OK(nanollama_context_truncate(ctx, 2));
    CHECK(pos_of(ctx) == 2);
    logits_of(ctx, 0);
    CHECK_STATUS(nanollama_context_truncate(ctx, 3), NANOLLAMA_STATUS_INVALID_ARGUMENT);
    CHECK_OK(nanollama_context_decode(ctx, TOKS + 2, 1));
    CHECK(pos_of(ctx) == 3);
    CHECK_CLOSE(logits_of(ctx, 1), first, N_VOCAB, TOL);
    /* The forgotten tokens left nothing behind: continuing gives what the
     * control context gives. */
    CHECK_OK(nanollama_context_truncate(control, 3));
    for (int i = 0; i < 3; i++) {
        CHECK_OK(nanollama_context_decode(ctx, TOKS + 8 + i, 1));
        CHECK_OK(nanollama_context_decode(control, TOKS + 8 + i, 1));
    }
    CHECK_CLOSE(logits_of(ctx, 1), logits_of(control, 1), N_VOCAB, TOL);

    /* Reset, then token by token equals the first batch. */
    CHECK_OK(nanollama_context_reset(ctx));
    CHECK(pos_of(ctx) == 0);
    logits_of(ctx, 0);
    for (int i = 0; i < 3; i++) CHECK_OK(nanollama_context_decode(ctx, TOKS + i, 1));
    CHECK(pos_of(ctx) == 3);
    CHECK_CLOSE(logits_of(ctx, 1), first, N_VOCAB, TOL);
    /* Reset twice is fine; after reset a fresh batch is bit-identical. */
    CHECK_OK(nanollama_context_reset(ctx));
    CHECK_OK(nanollama_context_reset(ctx));
    CHECK_OK(nanollama_context_decode(ctx, TOKS, 3));
    CHECK(memcmp(logits_of(ctx, 1), first, sizeof first) == 0);

    free(cmem);
    free(mem);
}

/* logits_all = 1: one row per token of each batch, each row what token by
 * token decoding gives at that position, the last row what logits_all = 0
 * gives. */
static void all_rows(const nanollama_model *m) {
    nanollama_context_params pl = params(16, 8, NANOLLAMA_KV_TYPE_F16, 0);
    nanollama_context_params pa = pl;
    pa.logits_all = 1;
    void *ml = NULL, *ma = NULL, *ms = NULL;
    nanollama_context *last = new_context(m, &pl, &ml);
    nanollama_context *all = new_context(m, &pa, &ma);
    nanollama_context *step = new_context(m, &pl, &ms);

    size_t batches[] = {5, 1, 8};
    size_t at = 0;
    for (size_t b = 0; b < 3; b++) {
        size_t n = batches[b];
        CHECK_OK(nanollama_context_decode(last, TOKS + at, n));
        CHECK_OK(nanollama_context_decode(all, TOKS + at, n));
        const float *rows = logits_of(all, n);
        for (size_t i = 0; i < n; i++) {
            CHECK_OK(nanollama_context_decode(step, TOKS + at + i, 1));
            CHECK_CLOSE(rows + i * N_VOCAB, logits_of(step, 1), N_VOCAB, TOL);
        }
        CHECK_CLOSE(rows + (n - 1) * N_VOCAB, logits_of(last, 1), N_VOCAB, TOL);
        at += n;
    }
    CHECK(pos_of(all) == 14 && pos_of(last) == 14 && pos_of(step) == 14);
    CHECK_OK(nanollama_context_truncate(all, 4));
    logits_of(all, 0);
    free(ms);
    free(ma);
    free(ml);
}

/* Two contexts over one model, used in turns, give bit-identical logits;
 * so does a context in zeroed memory, and one re-initialized in used memory. */
static void shared_model(const nanollama_model *m) {
    nanollama_context_params p;
    nanollama_context_params_default(&p, sizeof p);
    p.n_ctx = 24;
    size_t need = 0;
    CHECK_OK(nanollama_context_size(m, &p, &need));
    void *m1 = alloc64(need), *m2 = alloc64(need), *m0 = alloc64_filled(need, 0);
    nanollama_context *a = NULL, *b = NULL, *z = NULL;
    CHECK_OK(nanollama_context_init(m, &p, m1, need, &a));
    CHECK_OK(nanollama_context_init(m, &p, m2, need, &b));
    CHECK_OK(nanollama_context_init(m, &p, m0, need, &z));
    for (int i = 0; i < 4; i++) {
        CHECK_OK(nanollama_context_decode(a, TOKS + 3 * i, 3));
        CHECK_OK(nanollama_context_decode(b, TOKS + 3 * i, 3));
        CHECK_OK(nanollama_context_decode(z, TOKS + 3 * i, 3));
        CHECK(memcmp(logits_of(a, 1), logits_of(b, 1), N_VOCAB * sizeof(float)) == 0);
        CHECK(memcmp(logits_of(a, 1), logits_of(z, 1), N_VOCAB * sizeof(float)) == 0);
    }
    float want[N_VOCAB];
    memcpy(want, logits_of(a, 1), sizeof want);
    /* Re-init b's memory (after use) and replay. */
    nanollama_context *b2 = NULL;
    CHECK_OK(nanollama_context_init(m, &p, m2, need, &b2));
    CHECK(pos_of(b2) == 0);
    logits_of(b2, 0);
    for (int i = 0; i < 4; i++) CHECK_OK(nanollama_context_decode(b2, TOKS + 3 * i, 3));
    CHECK(memcmp(logits_of(b2, 1), want, sizeof want) == 0);
    free(m0);
    free(m2);
    free(m1);
}

/* n_batch above n_ctx: a batch filling the context works; one more token
 * is refused (too large or past n_ctx) and changes nothing. */
static void batch_above_ctx(const nanollama_model *m) {
    nanollama_context_params p = params(8, 100, NANOLLAMA_KV_TYPE_F16, 1);
    void *mem = NULL;
    nanollama_context *ctx = new_context(m, &p, &mem);
    nanollama_status s = nanollama_context_decode(ctx, TOKS, 9);
    CHECK(s == NANOLLAMA_STATUS_BATCH_TOO_LARGE || s == NANOLLAMA_STATUS_CONTEXT_FULL);
    CHECK(pos_of(ctx) == 0);
    logits_of(ctx, 0);
    CHECK_OK(nanollama_context_decode(ctx, TOKS, 8));
    CHECK(pos_of(ctx) == 8);
    logits_of(ctx, 8);
    free(mem);
}

/* n_ctx 0 is the model's training length and n_batch 0 is min(512, n_ctx). */
static void default_lengths(const nanollama_model *m) {
    nanollama_context_params p;
    nanollama_context_params_default(&p, sizeof p);
    void *mem = NULL;
    nanollama_context *ctx = new_context(m, &p, &mem);
    int32_t toks[N_CTX_TRAIN + 1];
    for (int i = 0; i <= N_CTX_TRAIN; i++) toks[i] = (i * 7) % N_VOCAB;
    CHECK_STATUS(nanollama_context_decode(ctx, toks, N_CTX_TRAIN + 1), NANOLLAMA_STATUS_BATCH_TOO_LARGE);
    CHECK(pos_of(ctx) == 0);
    CHECK_OK(nanollama_context_decode(ctx, toks, N_CTX_TRAIN));
    CHECK(pos_of(ctx) == N_CTX_TRAIN);
    logits_of(ctx, 1);
    CHECK_STATUS(nanollama_context_decode(ctx, toks, 1), NANOLLAMA_STATUS_CONTEXT_FULL);
    free(mem);
}

int main(int argc, char **argv) {
    CHECK(argc == 2);
    loaded_model lm = load_model(argv[1]);
    nanollama_model_info info;
    CHECK_OK(nanollama_model_get_info(lm.model, &info, sizeof info));
    CHECK(info.n_vocab == N_VOCAB && info.n_ctx_train == N_CTX_TRAIN);

    defaults();
    bad_setup(lm.model);
    lifecycle(lm.model, NANOLLAMA_KV_TYPE_F32);
    lifecycle(lm.model, NANOLLAMA_KV_TYPE_F16);
    all_rows(lm.model);
    shared_model(lm.model);
    default_lengths(lm.model);
    batch_above_ctx(lm.model);

    free_model(&lm);
    printf("context: ok\n");
    return 0;
}
