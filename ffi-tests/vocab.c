/* Tokenizer API: vocab size/init/info, tokenize (flags, buffer sizes),
 * token_to_piece, the streaming detokenizer. Usage: vocab SPM.gguf BPE.gguf */
#include "common.h"

static const nanollama_vocab *load(const char *path, void **mem, uint8_t **file) {
    size_t len = 0, need = 0;
    const nanollama_vocab *v = NULL;
    *file = read_file(path, &len);
    CHECK_OK(nanollama_vocab_size(*file, len, &need));
    *mem = alloc64(need);
    CHECK_STATUS(nanollama_vocab_init(*file, len, (uint8_t *)*mem + 1, need, &v), NANOLLAMA_STATUS_MISALIGNED);
    CHECK_STATUS(nanollama_vocab_init(*file, len, *mem, need - 1, &v), NANOLLAMA_STATUS_BUFFER_TOO_SMALL);
    CHECK_STATUS(nanollama_vocab_init(*file, len, *mem, need, NULL), NANOLLAMA_STATUS_NULL_POINTER);
    CHECK(v == NULL);
    CHECK_OK(nanollama_vocab_init(*file, len, *mem, need, &v));
    return v;
}

int main(int argc, char **argv) {
    CHECK(argc == 3);
    void *smem, *bmem;
    uint8_t *sfile, *bfile;
    const nanollama_vocab *spm = load(argv[1], &smem, &sfile);
    const nanollama_vocab *bpe = load(argv[2], &bmem, &bfile);
    nanollama_vocab_info si, bi;
    CHECK_OK(nanollama_vocab_get_info(spm, &si, sizeof si));
    CHECK_OK(nanollama_vocab_get_info(bpe, &bi, sizeof bi));
    CHECK(si.n_vocab == 32000 && si.bos == 1 && si.eos == 2 && si.kind == 0);
    CHECK(bi.n_vocab == 128256 && bi.bos == 128000 && bi.kind == 1);
    /* LLaMA 3 asks for BOS (llama.cpp's default for llama-bpe), not EOS;
     * <|eot_id|> (128009) is its end of turn, found by its text. */
    CHECK(bi.add_bos && !bi.add_eos && bi.eot == 128009 && bi.eom == NANOLLAMA_TOKEN_NULL);
    CHECK(si.add_bos && !si.add_eos && si.unk == 0 && si.eot == NANOLLAMA_TOKEN_NULL);
    CHECK(bi.n_eog == 2 && si.n_eog == 1); /* llama.cpp: {128001, 128009} and {2} */
    CHECK_STATUS(nanollama_vocab_get_info(NULL, &si, sizeof si), NANOLLAMA_STATUS_NULL_POINTER);
    bool eog = true;
    CHECK_OK(nanollama_vocab_is_eog(bpe, 128009, &eog));
    CHECK(eog);
    CHECK_OK(nanollama_vocab_is_eog(bpe, 128001, &eog));
    CHECK(eog);
    CHECK_OK(nanollama_vocab_is_eog(bpe, 9906, &eog));
    CHECK(!eog);
    CHECK_OK(nanollama_vocab_is_eog(spm, 2, &eog));
    CHECK(eog);
    CHECK_STATUS(nanollama_vocab_is_eog(NULL, 2, &eog), NANOLLAMA_STATUS_NULL_POINTER);
    CHECK_STATUS(nanollama_vocab_is_eog(spm, 2, NULL), NANOLLAMA_STATUS_NULL_POINTER);
    CHECK_STATUS(nanollama_vocab_is_eog(spm, 32000, &eog), NANOLLAMA_STATUS_TOKEN_OUT_OF_RANGE);
    CHECK_STATUS(nanollama_vocab_is_eog(spm, -1, &eog), NANOLLAMA_STATUS_TOKEN_OUT_OF_RANGE);

    /* llama.cpp's ids for " Hello world" (from its test vectors). */
    const char *text = " Hello world";
    size_t tl = strlen(text);
    size_t sc_len = nanollama_tokenize_scratch_size(tl);
    CHECK(sc_len > 0);
    CHECK(nanollama_tokenize_scratch_size(SIZE_MAX) == 0);
    void *scratch = alloc64(sc_len);
    int32_t toks[16];
    size_t n = 0;
    CHECK_OK(nanollama_tokenize(spm, (const uint8_t *)text, tl, 0, scratch, sc_len, toks, 16, &n));
    CHECK(n == 3 && toks[0] == 29871 && toks[1] == 15043 && toks[2] == 3186);
    CHECK_OK(nanollama_tokenize(bpe, (const uint8_t *)text, tl, NANOLLAMA_TOKENIZE_FLAGS_ADD_BOS, scratch, sc_len,
                                toks, 16, &n));
    CHECK(n == 3 && toks[0] == 128000 && toks[1] == 22691 && toks[2] == 1917);
    /* Too small an output: the count needed. */
    n = 0;
    CHECK_STATUS(nanollama_tokenize(bpe, (const uint8_t *)text, tl, 1, scratch, sc_len, toks, 1, &n),
                 NANOLLAMA_STATUS_BUFFER_TOO_SMALL);
    CHECK(n == 3);
    CHECK_STATUS(nanollama_tokenize(bpe, (const uint8_t *)text, tl, 0, scratch, sc_len, NULL, 0, &n),
                 NANOLLAMA_STATUS_BUFFER_TOO_SMALL);
    CHECK(n == 2);
    /* ADD_SPECIAL: BOS and EOS as the file asks (LLaMA 3: BOS only); with
     * ADD_EOS, EOS as well. */
    CHECK_OK(nanollama_tokenize(bpe, (const uint8_t *)text, tl, NANOLLAMA_TOKENIZE_FLAGS_ADD_SPECIAL, scratch,
                                sc_len, toks, 16, &n));
    CHECK(n == 3 && toks[0] == 128000 && toks[1] == 22691 && toks[2] == 1917);
    CHECK_OK(nanollama_tokenize(bpe, (const uint8_t *)text, tl,
                                NANOLLAMA_TOKENIZE_FLAGS_ADD_SPECIAL | NANOLLAMA_TOKENIZE_FLAGS_ADD_EOS, scratch,
                                sc_len, toks, 16, &n));
    CHECK(n == 4 && toks[0] == 128000 && toks[3] == 128001);
    /* Bad arguments. */
    CHECK_STATUS(nanollama_tokenize(bpe, (const uint8_t *)text, tl, 16, scratch, sc_len, toks, 16, &n),
                 NANOLLAMA_STATUS_INVALID_ARGUMENT);
    CHECK_STATUS(nanollama_tokenize(bpe, (const uint8_t *)text, tl, 0, scratch, 64, toks, 16, &n),
                 NANOLLAMA_STATUS_BUFFER_TOO_SMALL);
    CHECK_STATUS(nanollama_tokenize(bpe, NULL, tl, 0, scratch, sc_len, toks, 16, &n), NANOLLAMA_STATUS_NULL_POINTER);
    CHECK_OK(nanollama_tokenize(bpe, NULL, 0, 0, scratch, sc_len, toks, 16, &n));
    CHECK(n == 0);
    /* Special tokens only when asked. */
    const char *sp = "a<|eot_id|>";
    size_t sl = strlen(sp);
    void *scratch2 = alloc64(nanollama_tokenize_scratch_size(sl));
    CHECK_OK(nanollama_tokenize(bpe, (const uint8_t *)sp, sl, NANOLLAMA_TOKENIZE_FLAGS_PARSE_SPECIAL, scratch2,
                                nanollama_tokenize_scratch_size(sl), toks, 16, &n));
    CHECK(n == 2 && toks[1] == 128009);
    CHECK_OK(nanollama_tokenize(bpe, (const uint8_t *)sp, sl, 0, scratch2, nanollama_tokenize_scratch_size(sl),
                                toks, 16, &n));
    CHECK(n > 2);

    /* Pieces. */
    char buf[300];
    size_t len = 0;
    CHECK_OK(nanollama_token_to_piece(spm, 15043, 0, (uint8_t *)buf, sizeof buf, &len));
    CHECK(len == 6 && memcmp(buf, " Hello", 6) == 0);
    CHECK_STATUS(nanollama_token_to_piece(spm, 15043, 0, (uint8_t *)buf, 2, &len), NANOLLAMA_STATUS_BUFFER_TOO_SMALL);
    CHECK(len == 6);
    CHECK_OK(nanollama_token_to_piece(bpe, 128009, 0, (uint8_t *)buf, sizeof buf, &len));
    CHECK(len == 0);
    CHECK_OK(nanollama_token_to_piece(bpe, 128009, 1, (uint8_t *)buf, sizeof buf, &len));
    CHECK(len == 10 && memcmp(buf, "<|eot_id|>", 10) == 0);
    CHECK_STATUS(nanollama_token_to_piece(spm, 32000, 0, (uint8_t *)buf, sizeof buf, &len),
                 NANOLLAMA_STATUS_TOKEN_OUT_OF_RANGE);
    CHECK_STATUS(nanollama_token_to_piece(spm, -1, 0, (uint8_t *)buf, sizeof buf, &len),
                 NANOLLAMA_STATUS_TOKEN_OUT_OF_RANGE);

    /* Streaming: the llama emoji arrives as four byte tokens in the SPM
     * vocabulary; nothing is emitted until it is whole. */
    const char *emoji = "a\xf0\x9f\xa6\x99";
    size_t el = strlen(emoji);
    void *scratch3 = alloc64(nanollama_tokenize_scratch_size(el));
    CHECK_OK(nanollama_tokenize(spm, (const uint8_t *)emoji, el, 0, scratch3, nanollama_tokenize_scratch_size(el),
                                toks, 16, &n));
    nanollama_detokenizer d;
    nanollama_detokenizer_init(&d);
    char all[64];
    size_t total = 0, zero_pushes = 0;
    for (size_t i = 0; i < n; i++) {
        CHECK_OK(nanollama_detokenizer_push(&d, spm, toks[i], (uint8_t *)buf, sizeof buf, &len));
        zero_pushes += len == 0;
        memcpy(all + total, buf, len);
        total += len;
    }
    CHECK_OK(nanollama_detokenizer_flush(&d, (uint8_t *)buf, sizeof buf, &len));
    CHECK(len == 0);
    CHECK(zero_pushes == 3);
    CHECK(total == el + 1 && memcmp(all + 1, emoji, el) == 0);
    CHECK_STATUS(nanollama_detokenizer_push(&d, spm, -3, (uint8_t *)buf, sizeof buf, &len),
                 NANOLLAMA_STATUS_TOKEN_OUT_OF_RANGE);
    d.n_pending = 9;
    CHECK_STATUS(nanollama_detokenizer_push(&d, spm, 5, (uint8_t *)buf, sizeof buf, &len),
                 NANOLLAMA_STATUS_INVALID_ARGUMENT);

    free(scratch3);
    free(scratch2);
    free(scratch);
    free(bmem);
    free(smem);
    free(bfile);
    free(sfile);
    printf("vocab: ok\n");
    return 0;
}
