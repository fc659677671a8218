/* Model API: status strings, size/init/info, and every bad input through C.
 *
 * Usage: model TINY-F32.gguf [FILE...]
 *   TINY-F32.gguf       the tiny F32 test model (tests/common TinyConfig
 *                       defaults: dim 64, 2 layers, 4 heads, 2 KV heads,
 *                       ffn 96, vocab 100, context 64, untied output)
 *   tiny-TT-what.gguf   the same shape with its matrices in ggml type TT
 *   bad-NN-what.gguf    a hostile file that must be refused with status NN
 *
 * Every file is read into a buffer of exactly its size, so that under
 * AddressSanitizer a read past the end is caught. */
#include "common.h"

/* tests/common TinyConfig defaults. */
enum { DIM = 64, LAYERS = 2, HEADS = 4, KV_HEADS = 2, FFN = 96, VOCAB = 100, CTX = 64 };
#define HEAD_DIM (DIM / HEADS)
#define KV_DIM (KV_HEADS * HEAD_DIM)
/* Parameters of the 2-D tensors (embedding, output, per layer q k v o gate
 * up down) and of the 1-D F32 norms. */
#define N_MATRIX ((uint64_t)2 * VOCAB * DIM + (uint64_t)LAYERS * (2 * DIM * DIM + 2 * KV_DIM * DIM + 3 * FFN * DIM))
#define N_NORM ((uint64_t)DIM * (2 * LAYERS + 1))

#define LAST_STATUS NANOLLAMA_STATUS_GRAMMAR_LIMIT

static const nanollama_model *const SENTINEL = (const nanollama_model *)(uintptr_t)0x1234;

static const char *basename_of(const char *path) {
    const char *b = strrchr(path, '/');
    return b ? b + 1 : path;
}

static void status_strings(void) {
    for (uint32_t i = 0; i <= LAST_STATUS; i++) {
        const char *s = nanollama_status_str(i);
        CHECK(s != NULL && strlen(s) > 0);
        CHECK(strcmp(s, "unknown status") != 0);
        CHECK(s == nanollama_status_str(i)); /* static */
        for (uint32_t j = 0; j < i; j++) CHECK(strcmp(s, nanollama_status_str(j)) != 0);
    }
    /* A status appended to the enum must be added above (LAST_STATUS). */
    uint32_t unknown[] = {LAST_STATUS + 1, LAST_STATUS + 2, 255, 999, 0x80000000u, UINT32_MAX};
    for (size_t i = 0; i < sizeof unknown / sizeof unknown[0]; i++) {
        const char *s = nanollama_status_str(unknown[i]);
        CHECK(s != NULL && strcmp(s, "unknown status") == 0);
    }
}

/* A copy of bytes[0..n] in a buffer of exactly n bytes (1 when n is 0). */
static uint8_t *exact_copy(const uint8_t *bytes, size_t n) {
    uint8_t *p = malloc(n ? n : 1);
    CHECK(p != NULL);
    if (n) memcpy(p, bytes, n);
    return p;
}

/* Size and init of bytes[0..n] must both fail with the same status, leaving
 * their out-pointers as they were; returns that status. */
static nanollama_status refused(const uint8_t *bytes, size_t n, void *mem, size_t mem_len) {
    size_t need = 7;
    nanollama_status s = nanollama_model_size(bytes, n, &need);
    CHECK(s != NANOLLAMA_STATUS_OK);
    CHECK(need == 7);
    const nanollama_model *m = SENTINEL;
    CHECK_STATUS(nanollama_model_init(bytes, n, mem, mem_len, &m), s);
    CHECK(m == SENTINEL);
    return s;
}

static int is_truncation(nanollama_status s) {
    return s == NANOLLAMA_STATUS_GGUF_TRUNCATED || s == NANOLLAMA_STATUS_GGUF_STRING_PAST_END ||
           s == NANOLLAMA_STATUS_GGUF_COUNT_TOO_LARGE || s == NANOLLAMA_STATUS_GGUF_TENSOR_PAST_END;
}

static void check_info(const nanollama_model_info *info, uint32_t type) {
    CHECK(info->n_vocab == VOCAB && info->dim == DIM && info->n_layers == LAYERS);
    CHECK(info->n_heads == HEADS && info->n_kv_heads == KV_HEADS && info->head_dim == HEAD_DIM);
    CHECK(info->ffn_dim == FFN && info->n_ctx_train == CTX && info->rope_dim == HEAD_DIM);
    CHECK(info->rope_base == 10000.0f && info->rms_eps == 1e-5f && info->tied_output == 0);
    CHECK(info->embd_type == type && info->output_type == type);
    /* The norms are F32 whatever the matrices are. */
    CHECK(info->weight_types == ((UINT64_C(1) << type) | 1));
    CHECK(info->n_params == N_MATRIX + N_NORM);
    uint64_t matrix_bytes = 0;
    switch (type) {
    case 0: matrix_bytes = 4 * N_MATRIX; break;              /* F32 */
    case 1: case 30: matrix_bytes = 2 * N_MATRIX; break;     /* F16, BF16 */
    case 8: matrix_bytes = N_MATRIX / 32 * 34; break;        /* Q8_0: f16 scale + 32 int8 */
    default: CHECK(!"a weight type this test knows");
    }
    CHECK(info->weight_bytes == matrix_bytes + 4 * N_NORM);
}

static void valid_model(const char *path) {
    size_t len = 0, need = 0;
    uint8_t *file = read_file(path, &len);
    CHECK(len > 64);
    CHECK_OK(nanollama_model_size(file, len, &need));
    CHECK(need > 0);
    size_t again = 0;
    CHECK_OK(nanollama_model_size(file, len, &again));
    CHECK(again == need);
    uint8_t *mem = alloc64(need + 128);
    const nanollama_model *m = SENTINEL;

    /* NULL pointers, each argument in turn (NULL bytes even for length 0);
     * out-pointers stay as they were. */
    size_t out = 7;
    CHECK_STATUS(nanollama_model_size(NULL, len, &out), NANOLLAMA_STATUS_NULL_POINTER);
    CHECK_STATUS(nanollama_model_size(NULL, 0, &out), NANOLLAMA_STATUS_NULL_POINTER);
    CHECK_STATUS(nanollama_model_size(file, len, NULL), NANOLLAMA_STATUS_NULL_POINTER);
    CHECK(out == 7);
    CHECK_STATUS(nanollama_model_init(NULL, len, mem, need, &m), NANOLLAMA_STATUS_NULL_POINTER);
    CHECK_STATUS(nanollama_model_init(NULL, 0, mem, need, &m), NANOLLAMA_STATUS_NULL_POINTER);
    CHECK_STATUS(nanollama_model_init(file, len, NULL, need, &m), NANOLLAMA_STATUS_NULL_POINTER);
    CHECK_STATUS(nanollama_model_init(file, len, NULL, 0, &m), NANOLLAMA_STATUS_NULL_POINTER);
    CHECK_STATUS(nanollama_model_init(file, len, mem, need, NULL), NANOLLAMA_STATUS_NULL_POINTER);
    CHECK(m == SENTINEL);

    /* Buffers too small or misaligned. */
    size_t small[] = {0, 1, 8, 63, 64, need / 2, need - 1};
    for (size_t i = 0; i < sizeof small / sizeof small[0]; i++)
        CHECK_STATUS(nanollama_model_init(file, len, mem, small[i], &m), NANOLLAMA_STATUS_BUFFER_TOO_SMALL);
    size_t shifts[] = {1, 2, 4, 8, 16, 32, 63};
    for (size_t i = 0; i < sizeof shifts / sizeof shifts[0]; i++)
        CHECK_STATUS(nanollama_model_init(file, len, mem + shifts[i], need, &m), NANOLLAMA_STATUS_MISALIGNED);
    CHECK(m == SENTINEL);

    /* Every cut in the first 4 KiB (header, metadata, tensor table, start of
     * the data) and a spread of cuts after it, each in a buffer of exactly
     * the cut length: refused with a truncation status, by size and init. */
    int seen_tensor_past_end = 0;
    for (size_t cut = 0; cut < len; cut += (cut < 4096 ? 1 : 997)) {
        uint8_t *part = exact_copy(file, cut);
        nanollama_status s = refused(part, cut, mem, need);
        if (!is_truncation(s)) {
            fprintf(stderr, "cut %zu: %d (%s)\n", cut, (int)s, nanollama_status_str((uint32_t)s));
            CHECK(is_truncation(s));
        }
        if (cut < 4) CHECK(s == NANOLLAMA_STATUS_GGUF_TRUNCATED);
        seen_tensor_past_end |= s == NANOLLAMA_STATUS_GGUF_TENSOR_PAST_END;
        free(part);
    }
    CHECK(seen_tensor_past_end);
    {
        uint8_t *part = exact_copy(file, len - 1);
        CHECK(refused(part, len - 1, mem, need) == NANOLLAMA_STATUS_GGUF_TENSOR_PAST_END);
        free(part);
    }

    /* Wrong magic. */
    const char *magics[] = {"GGML", "XGUF", "gguf", "FUGG"};
    for (size_t i = 0; i < sizeof magics / sizeof magics[0]; i++) {
        uint8_t *bad = exact_copy(file, len);
        memcpy(bad, magics[i], 4);
        CHECK(refused(bad, len, mem, need) == NANOLLAMA_STATUS_GGUF_BAD_MAGIC);
        free(bad);
    }
    CHECK(m == SENTINEL);

    /* Success with exactly the size asked for, and with more. */
    CHECK_OK(nanollama_model_init(file, len, mem, need, &m));
    CHECK(m != SENTINEL && m != NULL);
    nanollama_model_info info, untouched;
    memset(&info, 0xAB, sizeof info);
    memset(&untouched, 0xAB, sizeof untouched);
    CHECK_STATUS(nanollama_model_get_info(NULL, &info, sizeof info), NANOLLAMA_STATUS_NULL_POINTER);
    CHECK_STATUS(nanollama_model_get_info(m, NULL, sizeof(nanollama_model_info)), NANOLLAMA_STATUS_NULL_POINTER);
    CHECK(memcmp(&info, &untouched, sizeof info) == 0);
    CHECK_OK(nanollama_model_get_info(m, &info, sizeof info));
    check_info(&info, 0);

    /* A second model over the same bytes, in a larger buffer. */
    uint8_t *mem2 = alloc64(need + 4096);
    const nanollama_model *m2 = NULL;
    CHECK_OK(nanollama_model_init(file, len, mem2, need + 4096, &m2));
    CHECK(m2 != NULL && m2 != m);
    nanollama_model_info info2;
    CHECK_OK(nanollama_model_get_info(m2, &info2, sizeof info2));
    check_info(&info2, 0);
    CHECK_OK(nanollama_model_get_info(m, &info, sizeof info));
    check_info(&info, 0);

    free(mem2);
    free(mem);
    free(file);
}

/* The last logits of three tokens, decoded by a fresh context. */
static void three_tokens(const nanollama_model *m, float out[VOCAB]) {
    nanollama_context_params p;
    nanollama_context_params_default(&p, sizeof p);
    p.n_ctx = 4;
    void *mem = NULL;
    nanollama_context *ctx = new_context(m, &p, &mem);
    const int32_t toks[] = {1, 50, 99};
    CHECK_OK(nanollama_context_decode(ctx, toks, 3));
    const float *l = NULL;
    size_t rows = 0;
    CHECK_OK(nanollama_context_logits(ctx, &l, &rows));
    CHECK(rows == 1);
    memcpy(out, l, VOCAB * sizeof *out);
    free(mem);
}

/* The GGUF bytes need no alignment (an `xxd -i` array has none) and may be
 * followed by other bytes: the same model, the same logits. Each copy ends
 * where its allocation ends, for AddressSanitizer. */
static void anywhere(const uint8_t *file, size_t len, const float want[VOCAB]) {
    for (size_t shift = 1; shift < 8; shift++) {
        for (size_t extra = 0; extra <= 100; extra += 100) {
            uint8_t *buf = malloc(shift + len + extra);
            CHECK(buf != NULL);
            memset(buf, 0x5A, shift + len + extra);
            memcpy(buf + shift, file, len);
            size_t need = 0;
            CHECK_OK(nanollama_model_size(buf + shift, len + extra, &need));
            void *mem = alloc64(need);
            const nanollama_model *m = NULL;
            CHECK_OK(nanollama_model_init(buf + shift, len + extra, mem, need, &m));
            float got[VOCAB];
            three_tokens(m, got);
            CHECK(memcmp(got, want, sizeof got) == 0);
            free(mem);
            free(buf);
        }
    }
}

/* tiny-TT-what.gguf: loads, and its info names type TT. */
static void typed_model(const char *path) {
    unsigned type = 0;
    CHECK(sscanf(basename_of(path), "tiny-%u-", &type) == 1);
    loaded_model lm = load_model(path);
    nanollama_model_info info;
    CHECK_OK(nanollama_model_get_info(lm.model, &info, sizeof info));
    check_info(&info, type);
    float want[VOCAB];
    three_tokens(lm.model, want);
    anywhere(lm.file, lm.file_len, want);
    free_model(&lm);
}

/* bad-NN-what.gguf: refused with status NN by size, or (lies only visible
 * in the tensors) by init, with the out-pointers untouched. */
static void hostile(const char *path) {
    const char *base = basename_of(path);
    int want = -1;
    CHECK(sscanf(base, "bad-%d-", &want) == 1);
    CHECK(want > 0 && (uint32_t)want <= LAST_STATUS);
    size_t len = 0, need = 7;
    uint8_t *file = read_file(path, &len);
    nanollama_status s = nanollama_model_size(file, len, &need);
    if (s == NANOLLAMA_STATUS_OK) {
        uint8_t *mem = alloc64(need);
        const nanollama_model *m = SENTINEL;
        s = nanollama_model_init(file, len, mem, need, &m);
        if (s != NANOLLAMA_STATUS_OK) CHECK(m == SENTINEL);
        free(mem);
    } else {
        CHECK(need == 7);
        uint8_t *mem = alloc64(4096);
        const nanollama_model *m = SENTINEL;
        CHECK_STATUS(nanollama_model_init(file, len, mem, 4096, &m), s);
        CHECK(m == SENTINEL);
        free(mem);
    }
    if ((int)s != want) {
        fprintf(stderr, "%s: got %d (%s), wanted %d (%s)\n", base, (int)s,
                nanollama_status_str((uint32_t)s), want, nanollama_status_str((uint32_t)want));
        exit(1);
    }
    free(file);
}

int main(int argc, char **argv) {
    CHECK(argc >= 2);
    status_strings();
    valid_model(argv[1]);
    int typed = 0, bad = 0;
    for (int i = 2; i < argc; i++) {
        const char *base = basename_of(argv[i]);
        if (strncmp(base, "tiny-", 5) == 0) {
            typed_model(argv[i]);
            typed++;
        } else if (strncmp(base, "bad-", 4) == 0) {
            hostile(argv[i]);
            bad++;
        } else {
            fprintf(stderr, "%s: neither tiny-TT-*.gguf nor bad-NN-*.gguf\n", argv[i]);
            return 1;
        }
    }
    printf("model: ok, %d typed models loaded, %d hostile files refused\n", typed, bad);
    return 0;
}
