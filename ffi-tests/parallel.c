/* A host thread pool (pthreads) handed to the library as parallel_for: the
 * logits are bit-identical to the inline run, with 2 and 3 threads.
 * Usage: parallel MODEL.gguf */
#include <pthread.h>

#include "common.h"

/* A small fixed pool: workers wait for a job, take task indices from a shared
 * counter, and the caller's thread works too. */
typedef struct {
    pthread_mutex_t mu;
    pthread_cond_t work, done;
    pthread_t threads[8];
    int n_workers;
    unsigned long generation;
    int finished, shutdown;
    nanollama_task_fn fn;
    void *task_data;
    uint32_t n_tasks, next;
    unsigned long calls, tasks_run;
} pool;

static int take(pool *p, uint32_t *i) {
    pthread_mutex_lock(&p->mu);
    int ok = p->next < p->n_tasks;
    if (ok) *i = p->next++;
    pthread_mutex_unlock(&p->mu);
    return ok;
}

static void drain(pool *p) {
    uint32_t i;
    while (take(p, &i)) {
        p->fn(p->task_data, i);
        pthread_mutex_lock(&p->mu);
        p->tasks_run++;
        pthread_mutex_unlock(&p->mu);
    }
}

static void *worker(void *arg) {
    pool *p = arg;
    unsigned long seen = 0;
    for (;;) {
        pthread_mutex_lock(&p->mu);
        while (p->generation == seen && !p->shutdown) pthread_cond_wait(&p->work, &p->mu);
        if (p->shutdown) {
            pthread_mutex_unlock(&p->mu);
            return NULL;
        }
        seen = p->generation;
        pthread_mutex_unlock(&p->mu);
        drain(p);
        pthread_mutex_lock(&p->mu);
        p->finished++;
        pthread_cond_signal(&p->done);
        pthread_mutex_unlock(&p->mu);
    }
}

static void parallel_for(void *user, nanollama_task_fn fn, void *task_data, uint32_t n_tasks) {
    pool *p = user;
    CHECK(fn != NULL);
    pthread_mutex_lock(&p->mu);
    p->calls++;
    p->fn = fn;
    p->task_data = task_data;
    p->n_tasks = n_tasks;
    p->next = 0;
    p->finished = 0;
    p->generation++;
    pthread_cond_broadcast(&p->work);
    pthread_mutex_unlock(&p->mu);
    drain(p);
    pthread_mutex_lock(&p->mu);
    while (p->finished < p->n_workers) pthread_cond_wait(&p->done, &p->mu);
    pthread_mutex_unlock(&p->mu);
}

static void pool_start(pool *p, int threads) {
    memset(p, 0, sizeof *p);
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->work, NULL);
    pthread_cond_init(&p->done, NULL);
    p->n_workers = threads - 1;
    for (int i = 0; i < p->n_workers; i++) CHECK(pthread_create(&p->threads[i], NULL, worker, p) == 0);
}

static void pool_stop(pool *p) {
    pthread_mutex_lock(&p->mu);
    p->shutdown = 1;
    pthread_cond_broadcast(&p->work);
    pthread_mutex_unlock(&p->mu);
    for (int i = 0; i < p->n_workers; i++) pthread_join(p->threads[i], NULL);
}

/* Decodes a fixed prompt in two batches, all logits; returns a copy. */
static float *run(const nanollama_model *m, pool *p, int threads, size_t *n) {
    nanollama_context_params cp;
    nanollama_context_params_default(&cp);
    cp.n_ctx = 32;
    cp.n_batch = 8;
    cp.logits_all = 1;
    if (p) {
        cp.parallel_for = parallel_for;
        cp.parallel_user_data = p;
        cp.n_threads = (uint32_t)threads;
    }
    void *mem = NULL;
    nanollama_context *ctx = new_context(m, &cp, &mem);
    int32_t toks[] = {3, 1, 4, 1, 5, 9, 2, 6, 5, 3, 5, 8};
    CHECK_OK(nanollama_context_decode(ctx, toks, 8));
    CHECK_OK(nanollama_context_decode(ctx, toks + 8, 4));
    const float *l = NULL;
    size_t rows = 0;
    nanollama_model_info info;
    CHECK_OK(nanollama_model_get_info(m, &info));
    CHECK_OK(nanollama_context_logits(ctx, &l, &rows));
    CHECK(rows == 4);
    *n = rows * info.n_vocab;
    float *copy = malloc(*n * sizeof *copy);
    CHECK(copy != NULL);
    memcpy(copy, l, *n * sizeof *copy);
    free(mem);
    return copy;
}

int main(int argc, char **argv) {
    CHECK(argc == 2);
    loaded_model lm = load_model(argv[1]);
    size_t n = 0, n2 = 0;
    float *inline_run = run(lm.model, NULL, 1, &n);
    for (int threads = 2; threads <= 3; threads++) {
        pool p;
        pool_start(&p, threads);
        float *pooled = run(lm.model, &p, threads, &n2);
        pool_stop(&p);
        CHECK(n == n2);
        CHECK(memcmp(inline_run, pooled, n * sizeof *pooled) == 0);
        CHECK(p.calls > 0 && p.tasks_run >= p.calls);
        printf("parallel: %d threads, %lu parallel_for calls, %lu tasks, identical logits\n", threads,
               p.calls, p.tasks_run);
        free(pooled);
    }
    free(inline_run);
    free_model(&lm);
    return 0;
}
