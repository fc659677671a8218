/* What a host brings to nanollama, in one header the C examples share and a
 * host can copy: the file mapped into memory, 64-byte aligned allocations, a
 * pthread pool handed to the library as its parallel_for, and the sampler
 * flags the examples take. POSIX (mmap, pthreads), C11.
 */
#ifndef NANOLLAMA_EXAMPLE_HOST_H
#define NANOLLAMA_EXAMPLE_HOST_H

#define _POSIX_C_SOURCE 200809L
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "nanollama.h"

/* Prints the status message and exits 1 unless the call succeeded. */
#define CHECK_OK(call)                                                              \
    do {                                                                            \
        nanollama_status s_ = (call);                                               \
        if (s_ != NANOLLAMA_STATUS_OK) {                                            \
            fprintf(stderr, "%s:%d: %s: %s\n", __FILE__, __LINE__, #call,           \
                    nanollama_status_str(s_));                                      \
            exit(1);                                                                \
        }                                                                           \
    } while (0)

/* n bytes aligned to 64 (aligned_alloc wants a multiple of the alignment). */
static inline void *alloc64(size_t n) {
    void *p = aligned_alloc(64, n ? (n + 63) / 64 * 64 : 64);
    if (!p) {
        fprintf(stderr, "out of memory (%zu bytes)\n", n);
        exit(1);
    }
    return p;
}

/* The whole file, mapped read-only: the model reads its weights in place. */
typedef struct {
    const uint8_t *bytes;
    size_t len;
} mapped_file;

static inline mapped_file map_file(const char *path) {
    mapped_file f = {NULL, 0};
    int fd = open(path, O_RDONLY);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0) {
        fprintf(stderr, "cannot open %s\n", path);
        exit(1);
    }
    f.len = (size_t)st.st_size;
    if (f.len > 0) {
        void *p = mmap(NULL, f.len, PROT_READ, MAP_PRIVATE, fd, 0);
        if (p == MAP_FAILED) {
            fprintf(stderr, "cannot map %s\n", path);
            exit(1);
        }
        f.bytes = p;
    } else {
        f.bytes = (const uint8_t *)"";
    }
    close(fd);
    return f;
}

static inline void unmap_file(mapped_file f) {
    if (f.len > 0) munmap((void *)f.bytes, f.len);
}

/* A model and its vocabulary, both reading the mapped file in place, with
 * their descriptions. */
typedef struct {
    mapped_file file;
    void *model_mem, *vocab_mem;
    const nanollama_model *model;
    const nanollama_vocab *vocab;
    nanollama_model_info info;
    nanollama_vocab_info vocab_info;
} host_model;

static inline host_model host_model_load(const char *path) {
    host_model m;
    size_t size;
    m.file = map_file(path);
    CHECK_OK(nanollama_model_size(m.file.bytes, m.file.len, &size));
    m.model_mem = alloc64(size);
    CHECK_OK(nanollama_model_init(m.file.bytes, m.file.len, m.model_mem, size, &m.model));
    CHECK_OK(nanollama_vocab_size(m.file.bytes, m.file.len, &size));
    m.vocab_mem = alloc64(size);
    CHECK_OK(nanollama_vocab_init(m.file.bytes, m.file.len, m.vocab_mem, size, &m.vocab));
    CHECK_OK(nanollama_model_get_info(m.model, &m.info, sizeof m.info));
    CHECK_OK(nanollama_vocab_get_info(m.vocab, &m.vocab_info, sizeof m.vocab_info));
    return m;
}

/* Frees what host_model_load allocated (every context of the model first). */
static inline void host_model_free(host_model *m) {
    free(m->vocab_mem);
    free(m->model_mem);
    unmap_file(m->file);
}

/* `text` as tokens (BOS and EOS where the file asks for them; BOS alone for
 * an empty text) into tokens[0..cap]; returns the count. `special`: read
 * special-token text such as "<|im_start|>" as those tokens. */
static inline size_t host_tokenize(const host_model *m, const char *text, int special,
                                   int32_t *tokens, size_t cap) {
    size_t len = strlen(text), n = 0;
    size_t scratch_len = nanollama_tokenize_scratch_size(len);
    void *scratch = alloc64(scratch_len);
    uint32_t flags = NANOLLAMA_TOKENIZE_FLAGS_ADD_SPECIAL;
    if (special) flags |= NANOLLAMA_TOKENIZE_FLAGS_PARSE_SPECIAL;
    CHECK_OK(nanollama_tokenize(m->vocab, (const uint8_t *)text, len, flags, scratch, scratch_len,
                                tokens, cap, &n));
    free(scratch);
    if (n == 0 && cap > 0 && m->vocab_info.bos != NANOLLAMA_TOKEN_NULL) tokens[n++] = m->vocab_info.bos;
    return n;
}

/* A fixed pool of worker threads. parallel_for posts a job (a task function
 * and a count), everyone including the calling thread takes task indices
 * from an atomic counter, and it returns when all tasks have run. One job at
 * a time: the library calls it from the thread that runs decode, never from
 * inside a task. */
typedef struct {
    pthread_mutex_t mu;
    pthread_cond_t wake, done;
    pthread_t threads[63];
    int n_workers;
    unsigned long generation;
    int stop, active;
    nanollama_task_fn fn;
    void *task_data;
    uint32_t n_tasks;
    atomic_uint next;
} host_pool;

static inline void host_pool_work(host_pool *p) {
    for (;;) {
        uint32_t i = atomic_fetch_add(&p->next, 1);
        if (i >= p->n_tasks) return;
        p->fn(p->task_data, i);
    }
}

static inline void *host_pool_worker(void *arg) {
    host_pool *p = arg;
    unsigned long seen = 0;
    for (;;) {
        pthread_mutex_lock(&p->mu);
        while (p->generation == seen && !p->stop) pthread_cond_wait(&p->wake, &p->mu);
        if (p->stop) {
            pthread_mutex_unlock(&p->mu);
            return NULL;
        }
        seen = p->generation;
        pthread_mutex_unlock(&p->mu);
        host_pool_work(p);
        pthread_mutex_lock(&p->mu);
        if (--p->active == 0) pthread_cond_signal(&p->done);
        pthread_mutex_unlock(&p->mu);
    }
}

/* The nanollama_parallel_for_fn: user_data is the pool. */
static inline void host_pool_parallel_for(void *user_data, nanollama_task_fn fn, void *task_data,
                                          uint32_t n_tasks) {
    host_pool *p = user_data;
    pthread_mutex_lock(&p->mu);
    p->fn = fn;
    p->task_data = task_data;
    p->n_tasks = n_tasks;
    atomic_store(&p->next, 0);
    p->active = p->n_workers;
    p->generation++;
    pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->mu);
    host_pool_work(p);
    pthread_mutex_lock(&p->mu);
    while (p->active > 0) pthread_cond_wait(&p->done, &p->mu);
    pthread_mutex_unlock(&p->mu);
}

/* Starts n_threads - 1 workers (the caller of parallel_for is the last). */
static inline void host_pool_start(host_pool *p, int n_threads) {
    memset(p, 0, sizeof *p);
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->wake, NULL);
    pthread_cond_init(&p->done, NULL);
    atomic_init(&p->next, 0);
    if (n_threads > 64) n_threads = 64;
    for (int i = 0; i < n_threads - 1; i++) {
        if (pthread_create(&p->threads[i], NULL, host_pool_worker, p) != 0) break;
        p->n_workers++;
    }
}

static inline void host_pool_stop(host_pool *p) {
    pthread_mutex_lock(&p->mu);
    p->stop = 1;
    pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->mu);
    for (int i = 0; i < p->n_workers; i++) pthread_join(p->threads[i], NULL);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->wake);
    pthread_cond_destroy(&p->done);
}

/* Hands the pool to a context: its decode runs tasks on n threads. */
static inline void host_pool_attach(host_pool *p, nanollama_context_params *cp) {
    cp->parallel_for = host_pool_parallel_for;
    cp->parallel_user_data = p;
    cp->n_threads = (uint32_t)p->n_workers + 1;
}

/* If argv[*i] is a sampler flag (--seed, --temp, --top-k, --top-p, --min-p,
 * --repeat-penalty, --penalty-last-n), stores its value (argv[*i + 1]) in sp,
 * advances *i past the value and returns 1; else returns 0. */
static inline int sampler_flag(int argc, char **argv, int *i, nanollama_sampler_params *sp) {
    const char *f = argv[*i];
    const char *names[] = {"--seed",  "--temp",           "--top-k",          "--top-p",
                           "--min-p", "--repeat-penalty", "--penalty-last-n", NULL};
    int k = 0;
    while (names[k] && strcmp(f, names[k]) != 0) k++;
    if (!names[k]) return 0;
    if (*i + 1 >= argc) {
        fprintf(stderr, "%s needs a value\n", f);
        exit(2);
    }
    const char *v = argv[++*i];
    switch (k) {
        case 0: sp->seed = strtoull(v, NULL, 10); break;
        case 1: sp->temp = strtof(v, NULL); break;
        case 2: sp->top_k = (int32_t)strtol(v, NULL, 10); break;
        case 3: sp->top_p = strtof(v, NULL); break;
        case 4: sp->min_p = strtof(v, NULL); break;
        case 5: sp->penalty_repeat = strtof(v, NULL); break;
        default: sp->penalty_last_n = (uint32_t)strtoul(v, NULL, 10); break;
    }
    return 1;
}

/* Whether generation ends at `token` (EOS, end of turn, ...). */
static inline int host_is_eog(const nanollama_vocab *vocab, int32_t token) {
    bool eog = false;
    CHECK_OK(nanollama_vocab_is_eog(vocab, token, &eog));
    return eog;
}

/* The text a generated token adds, through a streaming detokenizer (bytes of
 * a character split across tokens come out together); written to buf (room
 * for 300 bytes), its length returned. BOS starts a new verse in the
 * shipped model's training text, so it is shown as a line break. */
static inline size_t token_text(const nanollama_vocab *vocab, const nanollama_vocab_info *vi,
                                nanollama_detokenizer *d, int32_t token, uint8_t *buf) {
    if (token == vi->bos) {
        buf[0] = '\n';
        return 1;
    }
    size_t n = 0;
    CHECK_OK(nanollama_detokenizer_push(d, vocab, token, buf, 300, &n));
    return n;
}

static inline double now_seconds(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

#endif /* NANOLLAMA_EXAMPLE_HOST_H */
