/* Helpers shared by the C tests: a CHECK that survives -DNDEBUG, file
 * reading, and 64-byte-aligned allocation (the host allocates, never the
 * library). */
#ifndef NANOLLAMA_TEST_COMMON_H
#define NANOLLAMA_TEST_COMMON_H

#define _POSIX_C_SOURCE 200809L
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nanollama.h"

#define CHECK(cond)                                                      \
    do {                                                                 \
        if (!(cond)) {                                                   \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__,       \
                    __LINE__, #cond);                                    \
            exit(1);                                                     \
        }                                                                \
    } while (0)

#define CHECK_STATUS(call, want)                                         \
    do {                                                                 \
        nanollama_status s_ = (call);                                    \
        if (s_ != (want)) {                                              \
            fprintf(stderr, "%s:%d: %s gave %d (%s), wanted %d\n",       \
                    __FILE__, __LINE__, #call, (int)s_,                  \
                    nanollama_status_str((uint32_t)s_), (int)(want));    \
            exit(1);                                                     \
        }                                                                \
    } while (0)

#define CHECK_OK(call) CHECK_STATUS(call, NANOLLAMA_STATUS_OK)

/* Largest |a[i] - b[i]| relative to max(1, |b[i]|); NaN counts as a
 * difference of infinity. */
static inline double max_rel_diff(const float *a, const float *b, size_t n) {
    double worst = 0.0;
    for (size_t i = 0; i < n; i++) {
        double x = a[i], y = b[i];
        double scale = y < 0 ? -y : y;
        if (scale < 1.0) scale = 1.0;
        double d = (x > y ? x - y : y - x) / scale;
        if (!(d <= worst)) worst = (d == d) ? d : 1e300;
    }
    return worst;
}

#define CHECK_CLOSE(a, b, n, tol)                                        \
    do {                                                                 \
        double d_ = max_rel_diff((a), (b), (n));                         \
        if (!(d_ <= (tol))) {                                            \
            fprintf(stderr, "%s:%d: %s vs %s differ by %g (> %g)\n",     \
                    __FILE__, __LINE__, #a, #b, d_, (double)(tol));      \
            exit(1);                                                     \
        }                                                                \
    } while (0)

static inline uint8_t *read_file(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    CHECK(f != NULL);
    CHECK(fseek(f, 0, SEEK_END) == 0);
    long n = ftell(f);
    CHECK(n >= 0);
    CHECK(fseek(f, 0, SEEK_SET) == 0);
    /* Exactly n bytes (1 for an empty file): under AddressSanitizer a read
     * past the end of the file is a heap-buffer-overflow. */
    uint8_t *buf = malloc(n > 0 ? (size_t)n : 1);
    CHECK(buf != NULL);
    CHECK(fread(buf, 1, (size_t)n, f) == (size_t)n);
    fclose(f);
    *len = (size_t)n;
    return buf;
}

/* n bytes (rounded up to 64) aligned to 64, every byte set to `fill`. */
static inline void *alloc64_filled(size_t n, int fill) {
    size_t r = (n + 63) / 64 * 64;
    void *p = aligned_alloc(64, r ? r : 64);
    CHECK(p != NULL);
    memset(p, fill, r ? r : 64);
    return p;
}

/* n bytes (rounded up to 64) aligned to 64, filled with 0xFF (a NaN in every
 * float lane), as uninitialized host memory may be: the library must not
 * read what it has not written. */
static inline void *alloc64(size_t n) { return alloc64_filled(n, 0xFF); }

typedef struct {
    uint8_t *file;
    size_t file_len;
    void *mem;
    const nanollama_model *model;
} loaded_model;

static inline loaded_model load_model(const char *path) {
    loaded_model m;
    size_t need = 0;
    m.file = read_file(path, &m.file_len);
    CHECK_OK(nanollama_model_size(m.file, m.file_len, &need));
    m.mem = alloc64(need);
    m.model = NULL;
    CHECK_OK(nanollama_model_init(m.file, m.file_len, m.mem, need, &m.model));
    CHECK(m.model != NULL);
    return m;
}

static inline void free_model(loaded_model *m) {
    free(m->mem);
    free(m->file);
}

/* Default context params with these four set. */
static inline nanollama_context_params context_params(uint32_t n_ctx, uint32_t n_batch,
                                                      uint32_t kv, bool all) {
    nanollama_context_params p;
    nanollama_context_params_default(&p, sizeof p);
    p.n_ctx = n_ctx;
    p.n_batch = n_batch;
    p.kv_type = kv;
    p.logits_all = all;
    return p;
}

static inline nanollama_context *new_context(const nanollama_model *model,
                                             const nanollama_context_params *p,
                                             void **mem) {
    size_t need = 0;
    nanollama_context *ctx = NULL;
    CHECK_OK(nanollama_context_size(model, p, &need));
    *mem = alloc64(need);
    CHECK_OK(nanollama_context_init(model, p, *mem, need, &ctx));
    CHECK(ctx != NULL);
    return ctx;
}

#endif
