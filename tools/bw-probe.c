/* The machine's streaming read ceiling: the best rate of a plain sequential
 * AVX-512 load loop over 1 GiB of 2 MiB pages, with 1 and with 2 threads
 * (each thread one contiguous half). No decode can read its weights faster
 * than this, so it bounds tg: tokens/s <= ceiling / bytes of weights.
 * Run:  gcc -O2 -mavx512f -pthread tools/bw-probe.c -o /tmp/bw-probe && /tmp/bw-probe
 * A cross-check of the numpy probe in tools/bench-vs-llama.cpp (they agree
 * within a few per cent: 26-29 GB/s with 1 thread, 34-35 with 2). */
#include <immintrin.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#define N (1ull << 30)
static char *buf;
static int n_threads;
static pthread_barrier_t start;
static double t_begin[2], t_end[2];
static volatile long long sink;

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

static void *reader(void *arg) {
    long id = (long)arg;
    size_t per = N / n_threads;
    const char *p = buf + id * per;
    __m512i s[8];
    for (int k = 0; k < 8; k++) s[k] = _mm512_setzero_si512();
    pthread_barrier_wait(&start);
    t_begin[id] = now();
    for (size_t i = 0; i < per; i += 512)
        for (int k = 0; k < 8; k++) s[k] = _mm512_add_epi64(s[k], _mm512_load_si512(p + i + 64 * k));
    t_end[id] = now();
    for (int k = 1; k < 8; k++) s[0] = _mm512_add_epi64(s[0], s[k]);
    sink = _mm512_reduce_add_epi64(s[0]);
    return NULL;
}

int main(void) {
    buf = aligned_alloc(1 << 21, N);
    madvise(buf, N, MADV_HUGEPAGE);
    memset(buf, 1, N);
    for (n_threads = 1; n_threads <= 2; n_threads++) {
        double best = 0;
        pthread_barrier_init(&start, NULL, n_threads);
        for (int rep = 0; rep < 15; rep++) {
            pthread_t th[2];
            for (long i = 0; i < n_threads; i++) pthread_create(&th[i], NULL, reader, (void *)i);
            for (int i = 0; i < n_threads; i++) pthread_join(th[i], NULL);
            double a = t_begin[0], b = t_end[0];
            for (int i = 1; i < n_threads; i++) {
                if (t_begin[i] < a) a = t_begin[i];
                if (t_end[i] > b) b = t_end[i];
            }
            if (N / (b - a) > best) best = N / (b - a);
        }
        pthread_barrier_destroy(&start);
        printf("streaming read ceiling, %d thread%s: %.1f GB/s\n", n_threads, n_threads > 1 ? "s" : "", best / 1e9);
    }
    return 0;
}
