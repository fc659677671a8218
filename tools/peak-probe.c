/* The machine's arithmetic peak for prompt processing: multiply-adds per
 * second of the best instruction for each kind of matrix product, with 1 and
 * with 2 threads, each thread running 12 independent accumulator chains (more
 * than latency x throughput on any core, so only throughput counts):
 *   int8-avx512  vpdpbusd zmm (VNNI): 64 u8 x s8 multiply-adds each
 *   f32-avx512   vfmadd231ps zmm: 16
 *   int8-avx2    vpmaddubsw + vpmaddwd + vpaddd ymm (no VNNI): 32 per three
 *                (six chains of its own inputs, twice the iterations)
 *   f32-avx2     vfmadd231ps ymm: 8
 *   bf16-avx512  vdpbf16ps zmm (AVX512_BF16): 32 bf16 multiply-adds
 * A matrix product at share S of this peak cannot be sped up more than 1/S.
 * The AVX-512 kinds are compiled for their functions only and run only on a
 * CPU that has them (cpuid): elsewhere their lines are left out.
 * Run:  gcc -O2 -pthread tools/peak-probe.c -o /tmp/peak-probe && /tmp/peak-probe
 * Prints one line per kind and thread count: KIND THREADS GMAC/s. */
#include <immintrin.h>
#include <pthread.h>
#include <stdio.h>
#include <time.h>

#define ITERS 20000000L
static int kind, n_threads;
static pthread_barrier_t start;
static double t_begin[2], t_end[2];
static volatile float sinkf;
static volatile int sinki;

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

#define R12(X) X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7) X(8) X(9) X(10) X(11)

#define AVX512 __attribute__((target("avx512f,avx512bw,avx512vnni,avx512bf16,fma,avx2")))
#define AVX2 __attribute__((target("fma,avx2")))

AVX512 static void int8_avx512(void) {
    __m512i a = _mm512_set1_epi8(1), b = _mm512_set1_epi8(2);
#define D(i) __m512i s##i = _mm512_set1_epi32(i);
    R12(D)
#undef D
    for (long n = 0; n < ITERS; n++) {
#define D(i) s##i = _mm512_dpbusd_epi32(s##i, a, b); __asm__ volatile("" : "+v"(s##i));
        R12(D)
#undef D
    }
#define D(i) s0 = _mm512_add_epi32(s0, s##i);
    R12(D)
#undef D
    sinki = _mm512_reduce_add_epi32(s0);
}

AVX512 static void f32_avx512(void) {
    __m512 a = _mm512_set1_ps(1.0f), b = _mm512_set1_ps(1e-9f);
#define D(i) __m512 s##i = _mm512_set1_ps(i);
    R12(D)
#undef D
    for (long n = 0; n < ITERS; n++) {
#define D(i) s##i = _mm512_fmadd_ps(a, b, s##i); __asm__ volatile("" : "+v"(s##i));
        R12(D)
#undef D
    }
#define D(i) s0 = _mm512_add_ps(s0, s##i);
    R12(D)
#undef D
    sinkf = _mm512_reduce_add_ps(s0);
}

/* vdpbf16ps zmm: 32 bf16 pairs into 16 f32 lanes, 32 multiply-adds. */
AVX512 static void bf16_avx512(void) {
    __m512bh a = (__m512bh)_mm512_set1_epi16(0x3f80), b = (__m512bh)_mm512_set1_epi16(0x3000);
#define D(i) __m512 s##i = _mm512_set1_ps(i);
    R12(D)
#undef D
    for (long n = 0; n < ITERS; n++) {
#define D(i) s##i = _mm512_dpbf16_ps(s##i, a, b); __asm__ volatile("" : "+v"(s##i));
        R12(D)
#undef D
    }
#define D(i) s0 = _mm512_add_ps(s0, s##i);
    R12(D)
#undef D
    sinkf = _mm512_reduce_add_ps(s0);
}

/* Six chains, each with its own input (asm keeps the compiler from hoisting
 * the products out of the loop): 6 + 6 + 2 of the 16 ymm. */
AVX2 static void int8_avx2(void) {
    __m256i a = _mm256_set1_epi8(1), one = _mm256_set1_epi16(1);
#define R6(X) X(0) X(1) X(2) X(3) X(4) X(5)
#define D(i) __m256i s##i = _mm256_set1_epi32(i), b##i = _mm256_set1_epi8(i);
    R6(D)
#undef D
    for (long n = 0; n < 2 * ITERS; n++) {
#define D(i) __asm__ volatile("" : "+x"(b##i)); \
         s##i = _mm256_add_epi32(s##i, _mm256_madd_epi16(_mm256_maddubs_epi16(a, b##i), one));
        R6(D)
#undef D
    }
#define D(i) s0 = _mm256_add_epi32(s0, s##i);
    R6(D)
#undef D
    int t[8];
    _mm256_storeu_si256((__m256i *)t, s0);
    sinki = t[0];
}

AVX2 static void f32_avx2(void) {
    __m256 a = _mm256_set1_ps(1.0f), b = _mm256_set1_ps(1e-9f);
#define D(i) __m256 s##i = _mm256_set1_ps(i);
    R12(D)
#undef D
    for (long n = 0; n < ITERS; n++) {
#define D(i) s##i = _mm256_fmadd_ps(a, b, s##i); __asm__ volatile("" : "+x"(s##i));
        R12(D)
#undef D
    }
#define D(i) s0 = _mm256_add_ps(s0, s##i);
    R12(D)
#undef D
    float t[8];
    _mm256_storeu_ps(t, s0);
    sinkf = t[0];
}

static void (*const kernels[])(void) = {int8_avx512, f32_avx512, int8_avx2, f32_avx2, bf16_avx512};

static void *run(void *arg) {
    long id = (long)arg;
    pthread_barrier_wait(&start);
    t_begin[id] = now();
    kernels[kind]();
    t_end[id] = now();
    return NULL;
}

int main(void) {
    static const char *names[] = {"int8-avx512", "f32-avx512", "int8-avx2", "f32-avx2", "bf16-avx512"};
    static const double macs[] = {64, 16, 32, 8, 32};
    __builtin_cpu_init();
    int avx512 = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                 __builtin_cpu_supports("avx512vnni");
    int bf16 = avx512 && __builtin_cpu_supports("avx512bf16");
    for (kind = 0; kind < 5; kind++) {
        /* Kinds the CPU lacks are left out (their line is not printed). */
        if ((kind == 0 || kind == 1) && !avx512) continue;
        if (kind == 4 && !bf16) continue;
        for (n_threads = 1; n_threads <= 2; n_threads++) {
            double best = 0;
            for (int rep = 0; rep < 3; rep++) {
                pthread_t th[2];
                pthread_barrier_init(&start, NULL, n_threads);
                for (long i = 0; i < n_threads; i++) pthread_create(&th[i], NULL, run, (void *)i);
                for (int i = 0; i < n_threads; i++) pthread_join(th[i], NULL);
                pthread_barrier_destroy(&start);
                double t0 = t_begin[0], t1 = t_end[0];
                for (int i = 1; i < n_threads; i++) {
                    if (t_begin[i] < t0) t0 = t_begin[i];
                    if (t_end[i] > t1) t1 = t_end[i];
                }
                double r = n_threads * (double)ITERS * 12 * macs[kind] / (t1 - t0); /* kind 2: 2 x ITERS x 6 */
                if (r > best) best = r;
            }
            printf("%s %d %.1f\n", names[kind], n_threads, best / 1e9);
            fflush(stdout);
        }
    }
    return 0;
}
