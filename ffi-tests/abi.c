/* The ABI's rule for structs (see "ABI" in nanollama.h): every struct
 * begins with its size; a struct smaller than this ABI's is refused, a
 * larger one (a program built against a later header) is accepted when the
 * fields this library does not know are zero, and the library never reads
 * or writes past the size it is given. Run with one model file. */
#include <stdbool.h>
#include <stddef.h>

#include "common.h"

#define CANARY 0x5Au

/* A struct of an older header: the first fields only, then bytes that
 * must stay untouched. */
typedef struct {
    uint32_t size;
    uint32_t n_ctx;
    uint32_t n_batch;
    uint32_t kv_type;
    uint8_t canary[64];
} old_context_params;

/* A struct of a later header: one field appended. */
typedef struct {
    nanollama_context_params p;
    uint64_t later_field;
    uint8_t canary[64];
} new_context_params;

typedef struct {
    nanollama_sampler_params p;
    uint64_t later_field;
} new_sampler_params;

static bool canary_intact(const uint8_t *c, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (c[i] != CANARY) return false;
    return true;
}

static void version(void) {
    const nanollama_version_info *v = nanollama_version();
    CHECK(v != NULL && v == nanollama_version());
    CHECK(v->size >= sizeof *v);
    CHECK(v->abi == NANOLLAMA_ABI_VERSION);
    CHECK(v->major == NANOLLAMA_VERSION_MAJOR && v->minor == NANOLLAMA_VERSION_MINOR &&
          v->patch == NANOLLAMA_VERSION_PATCH);
    char want[32];
    snprintf(want, sizeof want, "%u.%u.%u", v->major, v->minor, v->patch);
    CHECK(strcmp(v->text, want) == 0);
}

static void older_structs_are_refused(const nanollama_model *m) {
    old_context_params old;
    memset(&old, CANARY, sizeof old);
    /* The older program asks for defaults into its smaller struct. */
    CHECK_STATUS(nanollama_context_params_default((nanollama_context_params *)(void *)&old,
                                                  offsetof(old_context_params, canary)),
                 NANOLLAMA_STATUS_BAD_STRUCT_SIZE);
    CHECK(canary_intact(old.canary, sizeof old.canary));
    /* ...or hands a struct that says it is that small. */
    old.size = offsetof(old_context_params, canary);
    old.n_ctx = 16;
    old.n_batch = 4;
    old.kv_type = NANOLLAMA_KV_TYPE_F32;
    size_t need = 7;
    CHECK_STATUS(nanollama_context_size(m, (const nanollama_context_params *)(const void *)&old, &need),
                 NANOLLAMA_STATUS_BAD_STRUCT_SIZE);
    CHECK(need == 7);
    nanollama_sampler_params sp;
    CHECK_STATUS(nanollama_sampler_params_default(&sp, sizeof sp - 8), NANOLLAMA_STATUS_BAD_STRUCT_SIZE);
    nanollama_sampler_params_default(&sp, sizeof sp);
    sp.size = 12;
    CHECK_STATUS(nanollama_sampler_size(100, &sp, &need), NANOLLAMA_STATUS_BAD_STRUCT_SIZE);
    CHECK(need == 7);
}

static void later_structs_work_when_their_new_fields_are_zero(const nanollama_model *m) {
    new_context_params n;
    memset(&n, CANARY, sizeof n);
    CHECK_OK(nanollama_context_params_default(&n.p, offsetof(new_context_params, canary)));
    CHECK(n.p.size == offsetof(new_context_params, canary));
    CHECK(n.later_field == 0); /* zeroed: the default of a field not known */
    CHECK(canary_intact(n.canary, sizeof n.canary));
    CHECK(n.p.n_threads == 1 && !n.p.logits_all && n.p.parallel_for == NULL);
    n.p.n_ctx = 16;
    size_t need_new = 0, need = 0;
    CHECK_OK(nanollama_context_size(m, &n.p, &need_new));
    nanollama_context_params p;
    CHECK_OK(nanollama_context_params_default(&p, sizeof p));
    CHECK(p.size == sizeof p);
    p.n_ctx = 16;
    CHECK_OK(nanollama_context_size(m, &p, &need));
    CHECK(need == need_new);
    /* A later field this library does not know, set: refused, not ignored. */
    n.later_field = 1;
    CHECK_STATUS(nanollama_context_size(m, &n.p, &need), NANOLLAMA_STATUS_BAD_STRUCT_SIZE);

    new_sampler_params ns;
    memset(&ns, CANARY, sizeof ns);
    CHECK_OK(nanollama_sampler_params_default(&ns.p, sizeof ns));
    CHECK(ns.later_field == 0 && ns.p.size == sizeof ns);
    CHECK_OK(nanollama_sampler_size(100, &ns.p, &need));
    ns.later_field = 3;
    CHECK_STATUS(nanollama_sampler_size(100, &ns.p, &need), NANOLLAMA_STATUS_BAD_STRUCT_SIZE);
}

static void outputs_fill_what_fits(const nanollama_model *m) {
    nanollama_model_info full;
    CHECK_OK(nanollama_model_get_info(m, &full, sizeof full));
    CHECK(full.size == sizeof full && full.n_vocab > 0);
    /* An older struct: the first fields only, nothing past them. */
    struct {
        uint32_t size, n_vocab, dim;
        uint8_t canary[64];
    } old;
    memset(&old, CANARY, sizeof old);
    CHECK_OK(nanollama_model_get_info(m, (nanollama_model_info *)(void *)&old, 12));
    CHECK(old.size == 12 && old.n_vocab == full.n_vocab && old.dim == full.dim);
    CHECK(canary_intact(old.canary, sizeof old.canary));
    /* A later struct: what this library knows, the rest zeroed. */
    struct {
        nanollama_model_info i;
        uint64_t later_field;
        uint8_t canary[64];
    } later;
    memset(&later, CANARY, sizeof later);
    CHECK_OK(nanollama_model_get_info(m, &later.i, offsetof(__typeof__(later), canary)));
    CHECK(later.i.size == sizeof full && later.later_field == 0);
    CHECK(later.i.fingerprint == full.fingerprint);
    CHECK(canary_intact(later.canary, sizeof later.canary));
    /* Sizes that cannot be a struct. */
    CHECK_STATUS(nanollama_model_get_info(m, &full, 3), NANOLLAMA_STATUS_BAD_STRUCT_SIZE);
    CHECK_STATUS(nanollama_model_get_info(m, &full, 4097), NANOLLAMA_STATUS_BAD_STRUCT_SIZE);
}

/* What the context chose, readable back; bools as C writes them. */
static void context_info(const nanollama_model *m) {
    nanollama_context_params p;
    CHECK_OK(nanollama_context_params_default(&p, sizeof p));
    p.n_ctx = 16;
    p.n_batch = 100; /* clamped to n_ctx */
    p.kv_type = NANOLLAMA_KV_TYPE_F32;
    p.logits_all = true;
    p.n_threads = 0;
    size_t need;
    CHECK_OK(nanollama_context_size(m, &p, &need));
    uint8_t *mem = alloc64(need);
    nanollama_context *ctx;
    CHECK_OK(nanollama_context_init(m, &p, mem, need, &ctx));
    nanollama_context_info ci;
    memset(&ci, CANARY, sizeof ci);
    CHECK_OK(nanollama_context_get_info(ctx, &ci, sizeof ci));
    CHECK(ci.size == sizeof ci && ci.n_ctx == 16 && ci.n_batch == 16);
    CHECK(ci.kv_type == NANOLLAMA_KV_TYPE_F32 && ci.logits_all && !ci.f32_activations);
    CHECK(ci.n_threads == 1);
    CHECK_STATUS(nanollama_context_get_info(NULL, &ci, sizeof ci), NANOLLAMA_STATUS_NULL_POINTER);
    CHECK_STATUS(nanollama_context_get_info(ctx, NULL, sizeof ci), NANOLLAMA_STATUS_NULL_POINTER);
    free(mem);

    /* n_batch 0 is min(512, n_ctx). */
    p.n_batch = 0;
    CHECK_OK(nanollama_context_size(m, &p, &need));
    mem = alloc64(need);
    CHECK_OK(nanollama_context_init(m, &p, mem, need, &ctx));
    CHECK_OK(nanollama_context_get_info(ctx, &ci, sizeof ci));
    CHECK(ci.n_batch == 16);
    free(mem);
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: abi MODEL.gguf\n");
        return 2;
    }
    size_t len;
    uint8_t *gguf = read_file(argv[1], &len);
    size_t need;
    CHECK_OK(nanollama_model_size(gguf, len, &need));
    uint8_t *mem = alloc64(need);
    const nanollama_model *m;
    CHECK_OK(nanollama_model_init(gguf, len, mem, need, &m));
    version();
    older_structs_are_refused(m);
    later_structs_work_when_their_new_fields_are_zero(m);
    outputs_fill_what_fits(m);
    context_info(m);
    free(mem);
    free(gguf);
    printf("abi: ok\n");
    return 0;
}
