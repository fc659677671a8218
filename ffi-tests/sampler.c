/* Sampler API: params, size/init, sample, accept, reset, bad arguments,
 * and determinism from a seed. Usage: sampler */
#include <math.h>

#include "common.h"

#define N 64

static nanollama_sampler *make(const nanollama_sampler_params *p, void **mem) {
    size_t need = 0;
    nanollama_sampler *s = NULL;
    CHECK_OK(nanollama_sampler_size(N, p, &need));
    *mem = alloc64(need);
    CHECK_OK(nanollama_sampler_init(N, p, *mem, need, &s));
    CHECK(s != NULL);
    return s;
}

int main(void) {
    float logits[N];
    for (int i = 0; i < N; i++) logits[i] = (float)((i * 37) % 17) * 0.3f;

    nanollama_sampler_params p;
    nanollama_sampler_params_default(&p, sizeof p);
    CHECK(p.top_k == 40 && fabsf(p.temp - 0.8f) < 1e-6f && p.n_stages == 8);
    CHECK(p.order[0] == NANOLLAMA_STAGE_LOGIT_BIAS && p.order[7] == NANOLLAMA_STAGE_TEMPERATURE);
    CHECK_STATUS(nanollama_sampler_params_default(NULL, sizeof(nanollama_sampler_params)), NANOLLAMA_STATUS_NULL_POINTER);
    p.seed = 1234;
    p.penalty_repeat = 1.3f;

    /* Bad arguments. */
    size_t need = 0;
    nanollama_sampler_params bad = p;
    bad.order[2] = 99;
    CHECK_STATUS(nanollama_sampler_size(N, &bad, &need), NANOLLAMA_STATUS_INVALID_ARGUMENT);
    bad = p;
    bad.n_stages = 17;
    CHECK_STATUS(nanollama_sampler_size(N, &bad, &need), NANOLLAMA_STATUS_INVALID_ARGUMENT);
    bad = p;
    bad.temp = NAN;
    CHECK_STATUS(nanollama_sampler_size(N, &bad, &need), NANOLLAMA_STATUS_INVALID_ARGUMENT);
    bad = p;
    bad.n_logit_bias = 1;
    CHECK_STATUS(nanollama_sampler_size(N, &bad, &need), NANOLLAMA_STATUS_NULL_POINTER);
    CHECK_STATUS(nanollama_sampler_size(0, &p, &need), NANOLLAMA_STATUS_INVALID_ARGUMENT);
    CHECK_STATUS(nanollama_sampler_size(N, NULL, &need), NANOLLAMA_STATUS_NULL_POINTER);
    CHECK_STATUS(nanollama_sampler_size(N, &p, NULL), NANOLLAMA_STATUS_NULL_POINTER);
    CHECK_OK(nanollama_sampler_size(N, &p, &need));
    uint8_t *mem = alloc64(need + 64);
    nanollama_sampler *s = (nanollama_sampler *)(uintptr_t)0x80;
    CHECK_STATUS(nanollama_sampler_init(N, &p, mem + 8, need, &s), NANOLLAMA_STATUS_MISALIGNED);
    CHECK_STATUS(nanollama_sampler_init(N, &p, mem, need - 1, &s), NANOLLAMA_STATUS_BUFFER_TOO_SMALL);
    CHECK(s == (nanollama_sampler *)(uintptr_t)0x80);
    CHECK_OK(nanollama_sampler_init(N, &p, mem, need, &s));

    int32_t t = -5;
    CHECK_STATUS(nanollama_sampler_sample(NULL, logits, N, &t), NANOLLAMA_STATUS_NULL_POINTER);
    CHECK_STATUS(nanollama_sampler_sample(s, NULL, N, &t), NANOLLAMA_STATUS_NULL_POINTER);
    CHECK_STATUS(nanollama_sampler_sample(s, logits, N, NULL), NANOLLAMA_STATUS_NULL_POINTER);
    CHECK_STATUS(nanollama_sampler_sample(s, logits, N - 1, &t), NANOLLAMA_STATUS_INVALID_ARGUMENT);
    CHECK_STATUS(nanollama_sampler_accept(s, N), NANOLLAMA_STATUS_TOKEN_OUT_OF_RANGE);
    CHECK_STATUS(nanollama_sampler_accept(s, -1), NANOLLAMA_STATUS_TOKEN_OUT_OF_RANGE);
    float all_nan[N];
    for (int i = 0; i < N; i++) all_nan[i] = NAN;
    CHECK_STATUS(nanollama_sampler_sample(s, all_nan, N, &t), NANOLLAMA_STATUS_NO_CANDIDATES);
    CHECK(t == -5);

    /* Same seed, same sequence; reset starts it again. */
    int32_t first[50], again[50];
    for (int i = 0; i < 50; i++) {
        CHECK_OK(nanollama_sampler_sample(s, logits, N, &first[i]));
        CHECK(first[i] >= 0 && first[i] < N);
        CHECK_OK(nanollama_sampler_accept(s, first[i]));
    }
    CHECK_OK(nanollama_sampler_reset(s));
    for (int i = 0; i < 50; i++) {
        CHECK_OK(nanollama_sampler_sample(s, logits, N, &again[i]));
        CHECK_OK(nanollama_sampler_accept(s, again[i]));
    }
    CHECK(memcmp(first, again, sizeof first) == 0);
    void *mem2 = NULL;
    nanollama_sampler *s2 = make(&p, &mem2);
    for (int i = 0; i < 50; i++) {
        CHECK_OK(nanollama_sampler_sample(s2, logits, N, &again[i]));
        CHECK_OK(nanollama_sampler_accept(s2, again[i]));
    }
    CHECK(memcmp(first, again, sizeof first) == 0);

    /* Greedy, and a logit bias that makes token 3 win. */
    nanollama_sampler_params g = p;
    g.temp = 0.0f;
    nanollama_logit_bias bias = {3, 100.0f};
    g.logit_bias = &bias;
    g.n_logit_bias = 1;
    void *mem3 = NULL;
    nanollama_sampler *s3 = make(&g, &mem3);
    CHECK_OK(nanollama_sampler_sample(s3, logits, N, &t));
    CHECK(t == 3);

    free(mem3);
    free(mem2);
    free(mem);
    printf("sampler: ok\n");
    return 0;
}
