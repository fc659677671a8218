/* A host thread pool (pthreads) handed to the library as parallel_for: the
 * logits are bit-identical to the inline run with 2 and 3 threads, whatever
 * n_threads says; the callback is really called, never re-entered, and
 * contexts sharing one model run at once on different threads.
 * Usage: parallel MODEL.gguf... */
#include <pthread.h>

#include "common.h"

/* A small fixed pool: workers sleep on a condition variable until a job is
 * posted, take task indices from a shared counter, and the caller's thread
 * works too. One job at a time. */
typedef struct {
    pthread_mutex_t mu;
    pthread_cond_t work, done;
    pthread_t threads[8];
    int n_workers;
    unsigned long generation;
    int finished, shutdown, busy;
    nanollama_task_fn fn;
    void *task_data;
    uint32_t n_tasks, next;
    unsigned long calls, tasks_run, tasks_by_workers, nested, max_tasks;
    unsigned char *ran; /* per task of the current job: times run */
} pool;

static void run_tasks(pool *p, int is_worker) {
    for (;;) {
        pthread_mutex_lock(&p->mu);
        if (p->next >= p->n_tasks) {
            pthread_mutex_unlock(&p->mu);
            return;
        }
        uint32_t i = p->next++;
        pthread_mutex_unlock(&p->mu);
        p->fn(p->task_data, i);
        pthread_mutex_lock(&p->mu);
        p->ran[i]++;
        p->tasks_run++;
        if (is_worker) p->tasks_by_workers++;
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
        run_tasks(p, 1);
        pthread_mutex_lock(&p->mu);
        p->finished++;
        pthread_cond_signal(&p->done);
        pthread_mutex_unlock(&p->mu);
    }
}

/* The nanollama_parallel_for_fn. */
static void parallel_for(void *user, nanollama_task_fn fn, void *task_data, uint32_t n_tasks) {
    pool *p = user;
    CHECK(fn != NULL);
    pthread_mutex_lock(&p->mu);
    if (p->busy) {
        /* Called from inside a task: a real pool would deadlock. */
        p->nested++;
        pthread_mutex_unlock(&p->mu);
        for (uint32_t i = 0; i < n_tasks; i++) fn(task_data, i);
        return;
    }
    p->busy = 1;
    p->calls++;
    if (n_tasks > p->max_tasks) p->max_tasks = n_tasks;
    p->ran = calloc(n_tasks ? n_tasks : 1, 1);
    CHECK(p->ran != NULL);
    p->fn = fn;
    p->task_data = task_data;
    p->n_tasks = n_tasks;
    p->next = 0;
    p->finished = 0;
    p->generation++;
    pthread_cond_broadcast(&p->work);
    pthread_mutex_unlock(&p->mu);
    run_tasks(p, 0);
    pthread_mutex_lock(&p->mu);
    while (p->finished < p->n_workers) pthread_cond_wait(&p->done, &p->mu);
    for (uint32_t i = 0; i < n_tasks; i++) CHECK(p->ran[i] == 1);
    free(p->ran);
    p->ran = NULL;
    p->busy = 0;
    pthread_mutex_unlock(&p->mu);
}

static void pool_start(pool *p, int threads) {
    memset(p, 0, sizeof *p);
    CHECK(threads >= 1 && threads <= 9);
    CHECK(pthread_mutex_init(&p->mu, NULL) == 0);
    CHECK(pthread_cond_init(&p->work, NULL) == 0);
    CHECK(pthread_cond_init(&p->done, NULL) == 0);
    p->n_workers = threads - 1;
    for (int i = 0; i < p->n_workers; i++) CHECK(pthread_create(&p->threads[i], NULL, worker, p) == 0);
}

static void pool_stop(pool *p) {
    pthread_mutex_lock(&p->mu);
    p->shutdown = 1;
    pthread_cond_broadcast(&p->work);
    pthread_mutex_unlock(&p->mu);
    for (int i = 0; i < p->n_workers; i++) CHECK(pthread_join(p->threads[i], NULL) == 0);
    pthread_cond_destroy(&p->done);
    pthread_cond_destroy(&p->work);
    pthread_mutex_destroy(&p->mu);
}

/* One run: decode a fixed prompt in two batches with every logit kept (KV
 * F32) or only the last (KV F16); returns a malloc'd copy of the logits. */
typedef struct {
    const nanollama_model *model;
    pool *pool;           /* NULL: inline */
    uint32_t n_threads;   /* the hint in the params */
    int keep_all;
    float *out;
    size_t n;
} job;

static void *run(void *arg) {
    job *j = arg;
    nanollama_context_params cp;
    nanollama_context_params_default(&cp, sizeof cp);
    cp.n_ctx = 32;
    cp.n_batch = 8;
    cp.logits_all = j->keep_all ? 1 : 0;
    cp.kv_type = j->keep_all ? NANOLLAMA_KV_TYPE_F32 : NANOLLAMA_KV_TYPE_F16;
    cp.n_threads = j->n_threads;
    if (j->pool) {
        cp.parallel_for = parallel_for;
        cp.parallel_user_data = j->pool;
    }
    void *mem = NULL;
    nanollama_context *ctx = new_context(j->model, &cp, &mem);
    static const int32_t toks[] = {3, 1, 4, 1, 5, 9, 2, 6, 5, 3, 5, 8};
    CHECK_OK(nanollama_context_decode(ctx, toks, 8));
    CHECK_OK(nanollama_context_decode(ctx, toks + 8, 4));
    nanollama_model_info info;
    CHECK_OK(nanollama_model_get_info(j->model, &info, sizeof info));
    const float *l = NULL;
    size_t rows = 0;
    CHECK_OK(nanollama_context_logits(ctx, &l, &rows));
    CHECK(rows == (j->keep_all ? 4u : 1u));
    j->n = rows * info.n_vocab;
    j->out = malloc(j->n * sizeof *j->out);
    CHECK(j->out != NULL);
    memcpy(j->out, l, j->n * sizeof *j->out);
    free(mem);
    return NULL;
}

static float *run_inline(const nanollama_model *m, uint32_t n_threads, int keep_all, size_t *n) {
    job j = {m, NULL, n_threads, keep_all, NULL, 0};
    run(&j);
    *n = j.n;
    return j.out;
}

static void same(const float *a, const float *b, size_t n) {
    CHECK(memcmp(a, b, n * sizeof *a) == 0);
}

static void one_model(const char *path) {
    loaded_model lm = load_model(path);
    for (int keep_all = 0; keep_all <= 1; keep_all++) {
        size_t n = 0, n2 = 0;
        float *want = run_inline(lm.model, 1, keep_all, &n);
        /* No parallel_for: n_threads only changes how work is cut. */
        float *hinted = run_inline(lm.model, 4, keep_all, &n2);
        CHECK(n2 == n);
        same(want, hinted, n);
        free(hinted);

        /* {pool threads, n_threads hint}: matching, more, fewer, 0 (= 1). */
        const int cases[][2] = {{2, 2}, {3, 3}, {3, 8}, {2, 1}, {3, 0}};
        for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
            pool p;
            pool_start(&p, cases[c][0]);
            job j = {lm.model, &p, (uint32_t)cases[c][1], keep_all, NULL, 0};
            run(&j);
            pool_stop(&p);
            CHECK(j.n == n);
            same(want, j.out, n);
            CHECK(p.nested == 0);
            if (cases[c][1] > 1) CHECK(p.calls > 0 && p.tasks_run > 0);
            if (c < 2)
                printf("parallel: %s, %s, %d threads: %lu parallel_for calls, %lu tasks "
                       "(%lu on workers, at most %lu per call), identical logits\n",
                       strrchr(path, '/') ? strrchr(path, '/') + 1 : path,
                       keep_all ? "all logits" : "last logits", cases[c][0], p.calls, p.tasks_run,
                       p.tasks_by_workers, p.max_tasks);
            free(j.out);
        }

        /* Three contexts over the one model at once on three threads: two
         * with a pool each, one inline. */
        pool pa, pb;
        pool_start(&pa, 2);
        pool_start(&pb, 3);
        job jobs[3] = {
            {lm.model, &pa, 2, keep_all, NULL, 0},
            {lm.model, &pb, 3, keep_all, NULL, 0},
            {lm.model, NULL, 1, keep_all, NULL, 0},
        };
        pthread_t t[3];
        for (int i = 0; i < 3; i++) CHECK(pthread_create(&t[i], NULL, run, &jobs[i]) == 0);
        for (int i = 0; i < 3; i++) CHECK(pthread_join(t[i], NULL) == 0);
        pool_stop(&pa);
        pool_stop(&pb);
        for (int i = 0; i < 3; i++) {
            CHECK(jobs[i].n == n);
            same(want, jobs[i].out, n);
            free(jobs[i].out);
        }
        free(want);
    }
    free_model(&lm);
}

int main(int argc, char **argv) {
    CHECK(argc >= 2);
    for (int i = 1; i < argc; i++) one_model(argv[i]);
    printf("parallel: ok, %d models\n", argc - 1);
    return 0;
}
