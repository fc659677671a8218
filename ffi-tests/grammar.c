/* Grammar API: parse (size, init, error statuses and offsets), the token
 * trie, the sampler's grammar stage (only allowed tokens drawn, accept
 * refusing the rest, reset, state save and load, detach).
 * Usage: grammar BPE.gguf */
#include "common.h"

static const char *GRAMMAR =
    "root ::= \"{\\\"action\\\": \\\"\" action \"\\\"}\"\n"
    "action ::= \"give\" | \"take\" | \"wait\"\n";

static int32_t tok(const nanollama_vocab *v, void *scratch, size_t sc_len, const char *s) {
    int32_t t[8];
    size_t n = 0;
    CHECK_OK(nanollama_tokenize(v, (const uint8_t *)s, strlen(s), 0, scratch, sc_len, t, 8, &n));
    CHECK(n == 1);
    return t[0];
}

int main(int argc, char **argv) {
    CHECK(argc == 2);
    size_t len = 0, need = 0, off = 0;
    uint8_t *file = read_file(argv[1], &len);
    CHECK_OK(nanollama_vocab_size(file, len, &need));
    void *vmem = alloc64(need);
    const nanollama_vocab *v = NULL;
    CHECK_OK(nanollama_vocab_init(file, len, vmem, need, &v));

    /* Refusals: status and byte offset. */
    const char *bad = "root ::= [a-z";
    CHECK_STATUS(nanollama_grammar_size(bad, strlen(bad), &need, &off), NANOLLAMA_STATUS_GRAMMAR_SYNTAX);
    CHECK(off == strlen(bad));
    /* The size query is a dry run of the parse: rules are checked by init. */
    const nanollama_grammar *g = NULL;
    const char *undef = "root ::= x";
    size_t uneed = 0;
    CHECK_OK(nanollama_grammar_size(undef, strlen(undef), &uneed, NULL));
    void *umem = alloc64(uneed);
    CHECK_STATUS(nanollama_grammar_init(undef, strlen(undef), umem, uneed, &g, &off), NANOLLAMA_STATUS_GRAMMAR_UNDEFINED_RULE);
    CHECK(off == 9);
    const char *left = "root ::= root \"a\" | \"b\"";
    size_t lneed = 0;
    CHECK_OK(nanollama_grammar_size(left, strlen(left), &lneed, NULL));
    void *lmem = alloc64(lneed);
    CHECK_STATUS(nanollama_grammar_init(left, strlen(left), lmem, lneed, &g, &off), NANOLLAMA_STATUS_GRAMMAR_LEFT_RECURSION);
    CHECK(g == NULL);
    CHECK_STATUS(nanollama_grammar_size(NULL, 3, &need, NULL), NANOLLAMA_STATUS_NULL_POINTER);

    CHECK_OK(nanollama_grammar_size(GRAMMAR, strlen(GRAMMAR), &need, NULL));
    void *gmem = alloc64(need);
    CHECK_STATUS(nanollama_grammar_init(GRAMMAR, strlen(GRAMMAR), (uint8_t *)gmem + 1, need, &g, NULL), NANOLLAMA_STATUS_MISALIGNED);
    CHECK_STATUS(nanollama_grammar_init(GRAMMAR, strlen(GRAMMAR), gmem, need - 1, &g, NULL), NANOLLAMA_STATUS_BUFFER_TOO_SMALL);
    CHECK_OK(nanollama_grammar_init(GRAMMAR, strlen(GRAMMAR), gmem, need, &g, NULL));

    CHECK_OK(nanollama_token_trie_size(v, &need));
    void *tmem = alloc64(need);
    const nanollama_token_trie *trie = NULL;
    CHECK_STATUS(nanollama_token_trie_init(v, tmem, need - 64, &trie), NANOLLAMA_STATUS_BUFFER_TOO_SMALL);
    CHECK_OK(nanollama_token_trie_init(v, tmem, need, &trie));

    nanollama_sampler_params sp;
    CHECK_OK(nanollama_sampler_params_default(&sp, sizeof sp));
    sp.seed = 7;
    nanollama_vocab_info vi;
    CHECK_OK(nanollama_vocab_get_info(v, &vi, sizeof vi));
    uint32_t n_vocab = vi.n_vocab;
    CHECK_OK(nanollama_sampler_size(n_vocab, &sp, &need));
    void *smem = alloc64(need);
    nanollama_sampler *s = NULL;
    CHECK_OK(nanollama_sampler_init(n_vocab, &sp, smem, need, &s));

    nanollama_grammar_params gp;
    CHECK_OK(nanollama_grammar_params_default(&gp, sizeof gp));
    CHECK(gp.cache_entries == 32 && !gp.check_first);
    CHECK_OK(nanollama_grammar_stage_size(trie, &gp, &need));
    void *stmem = alloc64(need);
    CHECK_STATUS(nanollama_sampler_set_grammar(s, g, trie, &gp, stmem, need - 1024), NANOLLAMA_STATUS_BUFFER_TOO_SMALL);
    CHECK_OK(nanollama_sampler_set_grammar(s, g, trie, &gp, stmem, need));

    size_t sc_len = nanollama_tokenize_scratch_size(64);
    void *scratch = alloc64(sc_len);
    int32_t wait_tok = tok(v, scratch, sc_len, "wait");
    float *logits = calloc(n_vocab, sizeof *logits);
    /* The model wants "wait" everywhere: the grammar lets it through only
     * where it fits. */
    logits[wait_tok] = 30.0f;
    CHECK_STATUS(nanollama_sampler_accept(s, wait_tok), NANOLLAMA_STATUS_INVALID_ARGUMENT);
    char text[256] = {0};
    size_t at = 0;
    uint8_t state[4096];
    size_t state_len = 0, state_at = 0;
    int32_t next_after_state = -1;
    for (int step = 0; step < 40; step++) {
        if (step == 2) {
            CHECK_OK(nanollama_sampler_state_save(s, state, sizeof state, &state_len));
            state_at = at;
        }
        int32_t t = -1;
        CHECK_OK(nanollama_sampler_sample(s, logits, n_vocab, &t));
        if (step == 2) next_after_state = t;
        CHECK_OK(nanollama_sampler_accept(s, t));
        bool eog = false;
        CHECK_OK(nanollama_vocab_is_eog(v, t, &eog));
        if (eog) break;
        char piece[64];
        size_t pl = 0;
        CHECK_OK(nanollama_token_to_piece(v, t, 0, (uint8_t *)piece, sizeof piece, &pl));
        CHECK(at + pl < sizeof text);
        memcpy(text + at, piece, pl);
        at += pl;
    }
    CHECK(strcmp(text, "{\"action\": \"wait\"}") == 0);
    /* The saved state continues the same way in the same sampler after a
     * reset. */
    CHECK_OK(nanollama_sampler_reset(s));
    CHECK_OK(nanollama_sampler_state_load(s, state, state_len));
    int32_t t = -1;
    CHECK_OK(nanollama_sampler_sample(s, logits, n_vocab, &t));
    CHECK(t == next_after_state && state_at > 0);
    /* Detached: the model's favourite comes back. */
    CHECK_OK(nanollama_sampler_set_grammar(s, NULL, NULL, NULL, NULL, 0));
    CHECK_OK(nanollama_sampler_sample(s, logits, n_vocab, &t));
    CHECK(t == wait_tok);
    /* A state with a grammar does not load into a sampler without one. */
    CHECK_STATUS(nanollama_sampler_state_load(s, state, state_len), NANOLLAMA_STATUS_STATE_MISMATCH);
    printf("grammar: ok (%s)\n", text);
    free(logits);
    free(scratch);
    free(stmem);
    free(smem);
    free(tmem);
    free(gmem);
    free(lmem);
    free(umem);
    free(vmem);
    free(file);
    return 0;
}
