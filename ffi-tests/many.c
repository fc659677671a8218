/* nanollama_decode_many: many contexts of one model, one pass over the
 * weights. Each context ends bit for bit as its own decode leaves it; every
 * bad call gets its own status and changes no context; the tasks run
 * through the first context's parallel_for.
 * Usage: many MODEL.gguf (a tiny test model: vocab 100, context 64). */
#include "common.h"

#define N_VOCAB 100
#define N 4

/* A parallel_for that runs the tasks in reverse order, and counts calls. */
static int pf_calls;
static void reverse_for(void *user, nanollama_task_fn fn, void *data, uint32_t n) {
    CHECK(user == &pf_calls);
    pf_calls++;
    for (uint32_t i = n; i-- > 0;) fn(data, i);
}

static nanollama_context_params params(uint32_t n_ctx, uint32_t n_batch, uint32_t kv, bool all,
                                       bool par) {
    nanollama_context_params p = context_params(n_ctx, n_batch, kv, all);
    if (par) {
        p.n_threads = 3;
        p.parallel_for = reverse_for;
        p.parallel_user_data = &pf_calls;
    }
    return p;
}

static const float *logits_of(const nanollama_context *ctx, size_t *rows) {
    const float *l = NULL;
    CHECK_OK(nanollama_context_logits(ctx, &l, rows));
    return l;
}

static uint32_t pos_of(const nanollama_context *ctx) {
    uint32_t p = 12345;
    CHECK_OK(nanollama_context_pos(ctx, &p));
    return p;
}

/* Every context and its twin agree: position, rows, logits bits. */
static void same(nanollama_context **a, nanollama_context **b) {
    for (int i = 0; i < N; i++) {
        size_t ra = 0, rb = 0;
        const float *la = logits_of(a[i], &ra), *lb = logits_of(b[i], &rb);
        CHECK(pos_of(a[i]) == pos_of(b[i]));
        CHECK(ra == rb && ra > 0);
        CHECK(memcmp(la, lb, ra * N_VOCAB * sizeof(float)) == 0);
    }
}

/* A snapshot of what a refused call must not change. */
typedef struct {
    uint32_t pos[N];
    size_t rows[N];
    float logits[N][4 * N_VOCAB];
} snapshot;

static void snap(nanollama_context **c, snapshot *s) {
    for (int i = 0; i < N; i++) {
        s->pos[i] = pos_of(c[i]);
        const float *l = logits_of(c[i], &s->rows[i]);
        CHECK(s->rows[i] <= 4);
        memcpy(s->logits[i], l, s->rows[i] * N_VOCAB * sizeof(float));
    }
}

static void unchanged(nanollama_context **c, const snapshot *s) {
    for (int i = 0; i < N; i++) {
        size_t rows = 0;
        const float *l = logits_of(c[i], &rows);
        CHECK(pos_of(c[i]) == s->pos[i]);
        CHECK(rows == s->rows[i]);
        CHECK(memcmp(l, s->logits[i], rows * N_VOCAB * sizeof(float)) == 0);
    }
}

static void batch_setup(const nanollama_model *m) {
    nanollama_batch_params p;
    memset(&p, 0xAB, sizeof p);
    CHECK_OK(nanollama_batch_params_default(&p, sizeof p));
    CHECK(p.size == sizeof p && p.max_tokens == 0);
    CHECK_STATUS(nanollama_batch_params_default(NULL, sizeof p), NANOLLAMA_STATUS_NULL_POINTER);
    CHECK_STATUS(nanollama_batch_params_default(&p, 2), NANOLLAMA_STATUS_BAD_STRUCT_SIZE);
    size_t need = 0, out = 7;
    CHECK_OK(nanollama_batch_size(m, &p, &need));
    CHECK(need > 0);
    CHECK_STATUS(nanollama_batch_size(NULL, &p, &out), NANOLLAMA_STATUS_NULL_POINTER);
    CHECK_STATUS(nanollama_batch_size(m, NULL, &out), NANOLLAMA_STATUS_NULL_POINTER);
    CHECK_STATUS(nanollama_batch_size(m, &p, NULL), NANOLLAMA_STATUS_NULL_POINTER);
    nanollama_batch_params bad = p;
    bad.size = 3;
    CHECK_STATUS(nanollama_batch_size(m, &bad, &out), NANOLLAMA_STATUS_BAD_STRUCT_SIZE);
    CHECK(out == 7);
    uint8_t *mem = alloc64(need + 64);
    nanollama_batch *b = (nanollama_batch *)&out;
    CHECK_STATUS(nanollama_batch_init(m, &p, mem, need - 1, &b), NANOLLAMA_STATUS_BUFFER_TOO_SMALL);
    CHECK_STATUS(nanollama_batch_init(m, &p, mem + 1, need, &b), NANOLLAMA_STATUS_MISALIGNED);
    CHECK_STATUS(nanollama_batch_init(m, &p, NULL, need, &b), NANOLLAMA_STATUS_NULL_POINTER);
    CHECK_STATUS(nanollama_batch_init(m, &p, mem, need, NULL), NANOLLAMA_STATUS_NULL_POINTER);
    CHECK(b == (nanollama_batch *)&out);
    CHECK_OK(nanollama_batch_init(m, &p, mem, need, &b));
    CHECK(b != NULL && b != (nanollama_batch *)&out);
    free(mem);
}

int main(int argc, char **argv) {
    CHECK(argc == 2);
    loaded_model lm = load_model(argv[1]);
    loaded_model other = load_model(argv[1]);
    const nanollama_model *m = lm.model;
    batch_setup(m);

    /* Contexts that differ in everything a context can: n_ctx, n_batch,
     * KV type, logits of every row; the first one's parallel_for runs the
     * tasks. Twins decode alone. */
    nanollama_context_params ps[N] = {
        params(16, 4, NANOLLAMA_KV_TYPE_F16, 0, 1),
        params(24, 3, NANOLLAMA_KV_TYPE_F32, 1, 0),
        params(32, 4, NANOLLAMA_KV_TYPE_F16, 1, 0),
        params(12, 4, NANOLLAMA_KV_TYPE_F32, 0, 0),
    };
    nanollama_context *a[N], *b[N];
    void *ma[N], *mb[N];
    for (int i = 0; i < N; i++) {
        a[i] = new_context(m, &ps[i], &ma[i]);
        b[i] = new_context(m, &ps[i], &mb[i]);
    }
    nanollama_batch_params bp;
    nanollama_batch_params_default(&bp, sizeof bp);
    bp.max_tokens = 8;
    size_t need = 0;
    CHECK_OK(nanollama_batch_size(m, &bp, &need));
    void *bmem = alloc64(need);
    nanollama_batch *batch = NULL;
    CHECK_OK(nanollama_batch_init(m, &bp, bmem, need, &batch));

    /* Prompts of different lengths in one call, then steps. */
    int32_t toks[8] = {5, 17, 99, 0, 42, 42, 7, 63};
    uint32_t counts[N] = {3, 1, 2, 2};
    pf_calls = 0;
    CHECK_OK(nanollama_decode_many(batch, a, N, toks, 8, counts));
    CHECK(pf_calls > 0);
    int t0 = 0;
    for (int i = 0; i < N; i++) {
        CHECK_OK(nanollama_context_decode(b[i], toks + t0, counts[i]));
        t0 += (int)counts[i];
    }
    same(a, b);
    for (int step = 0; step < 5; step++) {
        int32_t one[N];
        for (int i = 0; i < N; i++) one[i] = (step * 31 + i * 7) % N_VOCAB;
        /* In reverse order, one token each (counts NULL). */
        nanollama_context *rev[N] = {a[3], a[2], a[1], a[0]};
        int32_t rone[N] = {one[3], one[2], one[1], one[0]};
        CHECK_OK(nanollama_decode_many(batch, rev, N, rone, N, NULL));
        for (int i = 0; i < N; i++) CHECK_OK(nanollama_context_decode(b[i], &one[i], 1));
        same(a, b);
    }

    /* Refusals: each its status, no context changed. a[3] has 12 - 7 = 5
     * positions left; a[1] takes at most 3 tokens a call. */
    snapshot s;
    snap(a, &s);
    int32_t t4[N] = {1, 2, 3, 4};
    uint32_t zero[N] = {1, 0, 2, 1};
    uint32_t big[N] = {1, 4, 1, 1};
    int32_t t8[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    CHECK_STATUS(nanollama_decode_many(NULL, a, N, t4, N, NULL), NANOLLAMA_STATUS_NULL_POINTER);
    CHECK_STATUS(nanollama_decode_many(batch, NULL, N, t4, N, NULL), NANOLLAMA_STATUS_NULL_POINTER);
    CHECK_STATUS(nanollama_decode_many(batch, a, N, NULL, N, NULL), NANOLLAMA_STATUS_NULL_POINTER);
    nanollama_context *with_null[N] = {a[0], a[1], NULL, a[3]};
    CHECK_STATUS(nanollama_decode_many(batch, with_null, N, t4, N, NULL), NANOLLAMA_STATUS_NULL_POINTER);
    CHECK_STATUS(nanollama_decode_many(batch, a, 0, t4, 0, NULL), NANOLLAMA_STATUS_INVALID_ARGUMENT);
    CHECK_STATUS(nanollama_decode_many(batch, a, N, t4, 3, NULL), NANOLLAMA_STATUS_INVALID_ARGUMENT);
    CHECK_STATUS(nanollama_decode_many(batch, a, N, t4, N, zero), NANOLLAMA_STATUS_INVALID_ARGUMENT);
    uint32_t nine[N] = {3, 2, 2, 2};
    int32_t t9[9] = {1, 2, 3, 4, 5, 6, 7, 8, 9};
    CHECK_STATUS(nanollama_decode_many(batch, a, N, t9, 9, nine), NANOLLAMA_STATUS_BATCH_TOO_LARGE);
    CHECK_STATUS(nanollama_decode_many(batch, a, N, t8, 7, big), NANOLLAMA_STATUS_BATCH_TOO_LARGE);
    nanollama_context *dup[N] = {a[0], a[1], a[2], a[1]};
    CHECK_STATUS(nanollama_decode_many(batch, dup, N, t4, N, NULL), NANOLLAMA_STATUS_DUPLICATE_CONTEXT);
    nanollama_context_params op = params(16, 4, NANOLLAMA_KV_TYPE_F16, 0, 0);
    void *omem = NULL;
    nanollama_context *foreign = new_context(other.model, &op, &omem);
    nanollama_context *mixed[N] = {a[0], a[1], foreign, a[3]};
    CHECK_STATUS(nanollama_decode_many(batch, mixed, N, t4, N, NULL), NANOLLAMA_STATUS_MODEL_MISMATCH);
    nanollama_context_params fp = params(16, 4, NANOLLAMA_KV_TYPE_F16, 0, 0);
    fp.f32_activations = 1;
    void *fmem = NULL;
    nanollama_context *f32ctx = new_context(m, &fp, &fmem);
    nanollama_context *f32mix[N] = {a[0], a[1], a[2], f32ctx};
    CHECK_STATUS(nanollama_decode_many(batch, f32mix, N, t4, N, NULL), NANOLLAMA_STATUS_INVALID_ARGUMENT);
    int32_t bad_tok[N] = {1, 2, 3, N_VOCAB};
    CHECK_STATUS(nanollama_decode_many(batch, a, N, bad_tok, N, NULL), NANOLLAMA_STATUS_TOKEN_OUT_OF_RANGE);
    int32_t neg_tok[N] = {-1, 2, 3, 4};
    CHECK_STATUS(nanollama_decode_many(batch, a, N, neg_tok, N, NULL), NANOLLAMA_STATUS_TOKEN_OUT_OF_RANGE);
    unchanged(a, &s);
    CHECK(pos_of(foreign) == 0 && pos_of(f32ctx) == 0);

    /* After the refusals (the duplicate among them), the same contexts
     * step fine, with what each alone gives. */
    uint32_t fill[N] = {1, 1, 1, 3};
    int32_t t6[6] = {9, 8, 7, 6, 5, 4};
    CHECK_OK(nanollama_decode_many(batch, a, N, t6, 6, fill));
    for (int i = 0, t = 0; i < N; t += (int)fill[i], i++)
        CHECK_OK(nanollama_context_decode(b[i], t6 + t, fill[i]));
    same(a, b);
    /* Now a[3] has 2 positions left: 3 more is CONTEXT_FULL, nothing moves. */
    snap(a, &s);
    uint32_t over[N] = {1, 1, 1, 3};
    CHECK_STATUS(nanollama_decode_many(batch, a, N, t6, 6, over), NANOLLAMA_STATUS_CONTEXT_FULL);
    unchanged(a, &s);
    /* Exactly full works. */
    uint32_t exact[N] = {1, 1, 1, 2};
    CHECK_OK(nanollama_decode_many(batch, a, N, t6, 5, exact));
    for (int i = 0, t = 0; i < N; t += (int)exact[i], i++)
        CHECK_OK(nanollama_context_decode(b[i], t6 + t, exact[i]));
    same(a, b);
    CHECK(pos_of(a[3]) == 12);

    free(fmem);
    free(omem);
    free(bmem);
    for (int i = 0; i < N; i++) {
        free(ma[i]);
        free(mb[i]);
    }
    free_model(&other);
    free_model(&lm);
    printf("many: ok\n");
    return 0;
}
