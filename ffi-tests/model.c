/* Model API: status strings, size/init/info, and every bad input through C.
 * Usage: model VALID.gguf [bad-NN-what.gguf ...] (NN: the expected status). */
#include "common.h"

static void status_strings(void) {
    for (uint32_t i = 0; i <= NANOLLAMA_STATUS_UNSUPPORTED_TOKENIZER; i++) {
        const char *s = nanollama_status_str(i);
        CHECK(s != NULL && strlen(s) > 0);
        CHECK(strcmp(s, "unknown status") != 0);
        for (uint32_t j = 0; j < i; j++) CHECK(strcmp(s, nanollama_status_str(j)) != 0);
    }
    CHECK(strcmp(nanollama_status_str(999), "unknown status") == 0);
    CHECK(strcmp(nanollama_status_str(UINT32_MAX), "unknown status") == 0);
}

static void valid_model(const char *path) {
    size_t len = 0, need = 0;
    uint8_t *file = read_file(path, &len);
    CHECK_OK(nanollama_model_size(file, len, &need));
    CHECK(need > 0);
    uint8_t *mem = alloc64(need + 128);
    const nanollama_model *sentinel = (const nanollama_model *)(uintptr_t)0x1234;
    const nanollama_model *m = sentinel;

    /* NULL pointers, each argument in turn; the out-pointer stays as it was. */
    CHECK_STATUS(nanollama_model_size(NULL, len, &need), NANOLLAMA_STATUS_NULL_POINTER);
    CHECK_STATUS(nanollama_model_size(file, len, NULL), NANOLLAMA_STATUS_NULL_POINTER);
    CHECK_STATUS(nanollama_model_init(NULL, len, mem, need, &m), NANOLLAMA_STATUS_NULL_POINTER);
    CHECK_STATUS(nanollama_model_init(file, len, NULL, need, &m), NANOLLAMA_STATUS_NULL_POINTER);
    CHECK_STATUS(nanollama_model_init(file, len, mem, need, NULL), NANOLLAMA_STATUS_NULL_POINTER);
    CHECK(m == sentinel);
    /* Buffers too small or misaligned. */
    CHECK_STATUS(nanollama_model_init(file, len, mem, need - 1, &m), NANOLLAMA_STATUS_BUFFER_TOO_SMALL);
    CHECK_STATUS(nanollama_model_init(file, len, mem, 8, &m), NANOLLAMA_STATUS_BUFFER_TOO_SMALL);
    CHECK_STATUS(nanollama_model_init(file, len, mem + 1, need, &m), NANOLLAMA_STATUS_MISALIGNED);
    CHECK_STATUS(nanollama_model_init(file, len, mem + 32, need, &m), NANOLLAMA_STATUS_MISALIGNED);
    CHECK(m == sentinel);
    /* Truncations and a wrong magic. */
    size_t cuts[] = {0, 3, 4, 7, 16, 23, 24, 40, 100, len / 2, len - 1};
    for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++) {
        size_t n = 1;
        nanollama_status s = nanollama_model_size(file, cuts[i], &n);
        CHECK(s != NANOLLAMA_STATUS_OK && n == 1);
        CHECK(s == NANOLLAMA_STATUS_GGUF_TRUNCATED || s == NANOLLAMA_STATUS_GGUF_STRING_PAST_END ||
              s == NANOLLAMA_STATUS_GGUF_COUNT_TOO_LARGE || s == NANOLLAMA_STATUS_GGUF_TENSOR_PAST_END);
        CHECK(nanollama_model_init(file, cuts[i], mem, need, &m) == s);
        CHECK(m == sentinel);
    }
    CHECK_STATUS(nanollama_model_size(file, len - 1, &need), NANOLLAMA_STATUS_GGUF_TENSOR_PAST_END);
    file[0] = 'X';
    CHECK_STATUS(nanollama_model_size(file, len, &need), NANOLLAMA_STATUS_GGUF_BAD_MAGIC);
    file[0] = 'G';

    CHECK_OK(nanollama_model_init(file, len, mem, need, &m));
    CHECK(m != sentinel && m != NULL);
    nanollama_model_info info;
    CHECK_STATUS(nanollama_model_get_info(NULL, &info), NANOLLAMA_STATUS_NULL_POINTER);
    CHECK_STATUS(nanollama_model_get_info(m, NULL), NANOLLAMA_STATUS_NULL_POINTER);
    CHECK_OK(nanollama_model_get_info(m, &info));
    /* tests/common TinyConfig defaults. */
    CHECK(info.n_vocab == 100 && info.dim == 64 && info.n_layers == 2);
    CHECK(info.n_heads == 4 && info.n_kv_heads == 2 && info.head_dim == 16);
    CHECK(info.ffn_dim == 96 && info.n_ctx_train == 64 && info.rope_dim == 16);
    CHECK(info.rope_base == 10000.0f && info.rms_eps > 0.0f && info.tied_output == 0);
    CHECK(info.embd_type == 0 && info.output_type == 0 && info.weight_types == 1);
    CHECK(info.n_params > 0 && info.weight_bytes == 4 * info.n_params);
    free(mem);
    free(file);
}

static void hostile(const char *path) {
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    int want = -1;
    CHECK(sscanf(base, "bad-%d-", &want) == 1);
    size_t len = 0, need = 7;
    uint8_t *file = read_file(path, &len);
    nanollama_status s = nanollama_model_size(file, len, &need);
    if (s == NANOLLAMA_STATUS_OK) {
        /* Some lies only show when the tensors are checked, at init. */
        uint8_t *mem = alloc64(need);
        const nanollama_model *m = NULL;
        s = nanollama_model_init(file, len, mem, need, &m);
        CHECK(s != NANOLLAMA_STATUS_OK || m != NULL);
        if (s != NANOLLAMA_STATUS_OK) CHECK(m == NULL);
        free(mem);
    } else {
        CHECK(need == 7);
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
    for (int i = 2; i < argc; i++) hostile(argv[i]);
    printf("model: ok, %d hostile files refused\n", argc - 2);
    return 0;
}
