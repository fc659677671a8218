// What one core's AVX-512 VNNI units do with the instruction mixes of the
// batched Q4_0 tiles (src/simd/avx512/pair.rs), in nanoseconds: the figures
// behind BENCHMARKS.md's "Why eight conversations are not five times one".
// Run: gcc -O2 -mavx512f -mavx512vnni tools/vnni-probe.c -o /tmp/vnni-probe
//      && /tmp/vnni-probe  (x86-64 with AVX512_VNNI; an idle machine, ~10 s).
//
// Each probe is an inline-asm block run 5 x N times; the best of 5 is kept.
// "64 products" is one eight-block group of two rows against eight inputs
// (4,096 multiply-adds): the pair tile's unit of work.
#include <stdio.h>
#include <time.h>

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

static char buf[1 << 18] __attribute__((aligned(64)));

#define CLOB "memory", "r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15", "k1", \
    "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8",       \
    "xmm9", "xmm10", "xmm11", "xmm12", "xmm13", "xmm14", "xmm15", "xmm16",        \
    "xmm17", "xmm18", "xmm19", "xmm20", "xmm21", "xmm22", "xmm23", "xmm24",       \
    "xmm25", "xmm26", "xmm27", "xmm28", "xmm29", "xmm30", "xmm31"
// Eight input pointers 4,160 bytes apart (as eight inputs' records).
#define PTRS                                                                  \
    "mov %0,%%r8\n\tlea 4160(%0),%%r9\n\tlea 8320(%0),%%r10\n\t"             \
    "lea 12480(%0),%%r11\n\tlea 16640(%0),%%r12\n\tlea 20800(%0),%%r13\n\t" \
    "lea 24960(%0),%%r14\n\tlea 29120(%0),%%r15\n\t"
#define PROBE(name, per, body)                                                \
    do {                                                                      \
        long n = 2000000;                                                     \
        double best = 1e9;                                                    \
        for (int k = 0; k < 5; k++) {                                         \
            double t = now();                                                 \
            for (long i = 0; i < n; i++)                                      \
                __asm__ volatile(PTRS body ::"r"(buf + (i & 7) * 576) : CLOB); \
            double e = (now() - t) / n;                                       \
            if (e < best) best = e;                                           \
        }                                                                     \
        printf("%-58s %7.2f ns  (%.2f per ns)\n", name, best * 1e9,           \
               (per) / (best * 1e9));                                         \
    } while (0)

// vpdpbusd into accumulator a (zmm0-15) from weights w (zmm16-23) and
// inputs x: a register (zmm24-31), {1to16} (4 bytes broadcast inside the
// instruction), or 64 bytes of memory.
#define DR(a, w, x) "vpdpbusd %%zmm" #x ",%%zmm" #w ",%%zmm" #a "\n\t"
#define DB(a, w, o, r) "vpdpbusd " #o "(%%" #r ")%{1to16%},%%zmm" #w ",%%zmm" #a "\n\t"
#define DM(a, w, o, r) "vpdpbusd " #o "(%%" #r "),%%zmm" #w ",%%zmm" #a "\n\t"
#define BC(x, o, r) "vbroadcasti64x4 " #o "(%%" #r "),%%zmm" #x "\n\t"

// One step k of eight inputs, two chains an input (even k: zmm0-7, odd:
// zmm8-15; the step's accumulators named by E or O): sixteen chains, so
// that the ports count, not the latency (the tile itself keeps one chain an
// input at eight inputs; the 8-chain line above is that latency).
#define REG8E(k) DR(0, k, 24) DR(1, k, 25) DR(2, k, 26) DR(3, k, 27) \
    DR(4, k, 28) DR(5, k, 29) DR(6, k, 30) DR(7, k, 31)
#define REG8O(k) DR(8, k, 24) DR(9, k, 25) DR(10, k, 26) DR(11, k, 27) \
    DR(12, k, 28) DR(13, k, 29) DR(14, k, 30) DR(15, k, 31)
#define BC8(o) BC(24, o, r8) BC(25, o, r9) BC(26, o, r10) BC(27, o, r11) \
    BC(28, o, r12) BC(29, o, r13) BC(30, o, r14) BC(31, o, r15)
#define ON8(D, k, o, a0, a1, a2, a3, a4, a5, a6, a7)                        \
    D(a0, k, o, r8) D(a1, k, o, r9) D(a2, k, o, r10) D(a3, k, o, r11)       \
    D(a4, k, o, r12) D(a5, k, o, r13) D(a6, k, o, r14) D(a7, k, o, r15)
#define B8E(k, o) ON8(DB, k, o, 0, 1, 2, 3, 4, 5, 6, 7)
#define B8O(k, o) ON8(DB, k, o, 8, 9, 10, 11, 12, 13, 14, 15)
#define M8E(k, o) ON8(DM, k, o, 0, 1, 2, 3, 4, 5, 6, 7)
#define M8O(k, o) ON8(DM, k, o, 8, 9, 10, 11, 12, 13, 14, 15)

int main(void) {
    if (!__builtin_cpu_supports("avx512vnni")) {
        fprintf(stderr, "vnni-probe: this CPU has no AVX512_VNNI\n");
        return 1;
    }
    for (size_t i = 0; i < sizeof buf; i++) buf[i] = (char)(i * 7 + 1);
    // A chain of vpaddd (one cycle each): the clock.
#define ADD "vpaddd %%zmm30,%%zmm0,%%zmm0\n\t"
#define ADD8 ADD ADD ADD ADD ADD ADD ADD ADD
    PROBE("clock: 32 dependent vpaddd (1 cycle each)", 32, ADD8 ADD8 ADD8 ADD8);
#define D1 DR(0, 16, 24)
#define D8 D1 D1 D1 D1 D1 D1 D1 D1
    PROBE("vpdpbusd latency: 32 dependent", 32, D8 D8 D8 D8);
#define CH8 DR(0, 16, 24) DR(1, 16, 24) DR(2, 16, 24) DR(3, 16, 24) \
    DR(4, 16, 24) DR(5, 16, 24) DR(6, 16, 24) DR(7, 16, 24)
#define CH4 DR(8, 16, 24) DR(9, 16, 24) DR(10, 16, 24) DR(11, 16, 24)
#define CH4B DR(12, 16, 24) DR(13, 16, 24) DR(14, 16, 24) DR(15, 16, 24)
    PROBE("vpdpbusd, 8 independent chains: 64", 64, CH8 CH8 CH8 CH8 CH8 CH8 CH8 CH8);
    PROBE("vpdpbusd, 12 independent chains: 60", 60,
          CH8 CH4 CH8 CH4 CH8 CH4 CH8 CH4 CH8 CH4);
    PROBE("vpdpbusd, 16 independent chains: 64", 64,
          CH8 CH4 CH4B CH8 CH4 CH4B CH8 CH4 CH4B CH8 CH4 CH4B);
    // The pair tile: every product's input a 32-byte broadcast load.
    PROBE("64 products, each input a vbroadcasti64x4 (pair tile)", 64,
          BC8(0) REG8E(16) BC8(32) REG8O(17) BC8(64) REG8E(18) BC8(96) REG8O(19)
          BC8(128) REG8E(20) BC8(160) REG8O(21) BC8(192) REG8E(22) BC8(224) REG8O(23));
    PROBE("64 products, inputs in registers", 64,
          REG8E(16) REG8O(17) REG8E(18) REG8O(19) REG8E(20) REG8O(21) REG8E(22) REG8O(23));
    PROBE("64 products, input {1to16} in the instruction", 64,
          B8E(16, 0) B8O(17, 4) B8E(18, 8) B8O(19, 12)
          B8E(20, 16) B8O(21, 20) B8E(22, 24) B8O(23, 28));
    PROBE("64 products, input 64 bytes of memory in the instruction", 64,
          M8E(16, 0) M8O(17, 64) M8E(18, 128) M8O(19, 192)
          M8E(20, 256) M8O(21, 320) M8E(22, 384) M8O(23, 448));
    PROBE("72 vbroadcasti64x4 alone", 72,
          BC8(0) BC8(32) BC8(64) BC8(96) BC8(128) BC8(160) BC8(192) BC8(224) BC8(256));
    // Sixteen rows a register (one row a lane) would need the rows' quants
    // gathered: one gather of 16 dwords.
#define G "kxnorw %%k0,%%k0,%%k1\n\tvpgatherdd (%%r8,%%zmm29,1),%%zmm28%{%%k1%}\n\t"
    PROBE("8 vpgatherdd of 16 dwords", 8,
          "vpxord %%zmm29,%%zmm29,%%zmm29\n\t" G G G G G G G G);
    return 0;
}
