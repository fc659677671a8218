/* cc -std=c11 -O2 -Iinclude examples/characters.c target/release/libnanollama.a -lpthread -lm -o characters
 *
 * Several conversations over one model, as a game has characters: each
 * character has its own context and sampler in the host's memory (a few
 * hundred kilobytes each with the shipped model), the model's weights are
 * mapped once and shared. Each frame, every character still talking draws
 * its next token, and one nanollama_decode_many call appends them all:
 * one pass over the weights serves every character, so a frame costs
 * little more than one character's token. Each character writes exactly
 * what it would write alone (same prompt, same seed): decode_many gives
 * each context the bits of its own decode.
 *     $ ./characters [-m MODEL] [-n TOKENS] [sampler flags]
 * Every character draws with --seed plus its number. Prints one line per
 * character: "name: text".
 */
#include "host.h"

#define N_CHARACTERS 4

typedef struct {
    const char *name, *prompt;
    void *ctx_mem, *sampler_mem;
    nanollama_context *ctx;
    nanollama_sampler *sampler;
    nanollama_detokenizer detok;
    char text[8192];
    size_t len;
    int n_gen, done;
} character;

int main(int argc, char **argv) {
    const char *model_path = "models/kjv-llama.gguf";
    int n_predict = 48;
    nanollama_sampler_params sp;
    nanollama_sampler_params_default(&sp, sizeof sp);
    for (int i = 1; i < argc; i++) {
        if (sampler_flag(argc, argv, &i, &sp)) continue;
        if (i + 1 < argc && !strcmp(argv[i], "-m")) model_path = argv[++i];
        else if (i + 1 < argc && !strcmp(argv[i], "-n")) n_predict = atoi(argv[++i]);
        else {
            fprintf(stderr, "usage: %s [-m MODEL] [-n TOKENS] [sampler flags]\n", argv[0]);
            return 2;
        }
    }
    character cast[N_CHARACTERS] = {
        {.name = "Prophet", .prompt = "Thus saith the LORD"},
        {.name = "King", .prompt = "And the king said"},
        {.name = "Scribe", .prompt = "In the beginning"},
        {.name = "Shepherd", .prompt = "The LORD is my shepherd"},
    };

    host_model hm = host_model_load(model_path);
    const nanollama_model *model = hm.model;
    const nanollama_vocab *vocab = hm.vocab;
    const nanollama_model_info mi = hm.info;
    const nanollama_vocab_info vi = hm.vocab_info;
    size_t size;

    /* One context and one sampler per character; each reads its prompt. */
    uint64_t seed = sp.seed;
    for (int c = 0; c < N_CHARACTERS; c++) {
        character *ch = &cast[c];
        int32_t tokens[256];
        size_t n_prompt = host_tokenize(&hm, ch->prompt, 0, tokens, 256);

        nanollama_context_params cp;
        nanollama_context_params_default(&cp, sizeof cp);
        cp.n_ctx = mi.n_ctx_train;
        cp.n_batch = (uint32_t)n_prompt;
        CHECK_OK(nanollama_context_size(model, &cp, &size));
        ch->ctx_mem = alloc64(size);
        CHECK_OK(nanollama_context_init(model, &cp, ch->ctx_mem, size, &ch->ctx));
        sp.seed = seed + (uint64_t)c;
        CHECK_OK(nanollama_sampler_size(mi.n_vocab, &sp, &size));
        ch->sampler_mem = alloc64(size);
        CHECK_OK(nanollama_sampler_init(mi.n_vocab, &sp, ch->sampler_mem, size, &ch->sampler));

        nanollama_detokenizer_init(&ch->detok);
        for (size_t i = 0; i < n_prompt; i++) {
            size_t n;
            CHECK_OK(nanollama_detokenizer_push(&ch->detok, vocab, tokens[i],
                                                (uint8_t *)ch->text + ch->len, 300, &n));
            ch->len += n;
            CHECK_OK(nanollama_sampler_accept(ch->sampler, tokens[i]));
        }
        CHECK_OK(nanollama_context_decode(ch->ctx, tokens, n_prompt));
    }

    /* The batch: row buffers for one token of every character. */
    nanollama_batch_params bp;
    nanollama_batch_params_default(&bp, sizeof bp);
    bp.max_tokens = N_CHARACTERS;
    CHECK_OK(nanollama_batch_size(model, &bp, &size));
    void *batch_mem = alloc64(size);
    nanollama_batch *batch;
    CHECK_OK(nanollama_batch_init(model, &bp, batch_mem, size, &batch));

    /* The frame loop: every character still talking says one more token,
     * and one call steps them all. */
    for (int talking = N_CHARACTERS; talking > 0;) {
        nanollama_context *step_ctx[N_CHARACTERS];
        int32_t step_tok[N_CHARACTERS];
        talking = 0;
        for (int c = 0; c < N_CHARACTERS; c++) {
            character *ch = &cast[c];
            if (ch->done) continue;
            const float *logits;
            size_t rows;
            int32_t tok;
            uint32_t pos;
            CHECK_OK(nanollama_context_logits(ch->ctx, &logits, &rows));
            CHECK_OK(nanollama_sampler_sample(ch->sampler, logits, mi.n_vocab, &tok));
            CHECK_OK(nanollama_sampler_accept(ch->sampler, tok));
            ch->n_gen++;
            CHECK_OK(nanollama_context_pos(ch->ctx, &pos));
            if (host_is_eog(vocab, tok) || ch->len + 300 > sizeof ch->text) {
                ch->done = 1;
                continue;
            }
            ch->len += token_text(vocab, &vi, &ch->detok, tok, (uint8_t *)ch->text + ch->len);
            if (ch->n_gen == n_predict || pos == mi.n_ctx_train) {
                ch->done = 1;
                continue;
            }
            step_ctx[talking] = ch->ctx;
            step_tok[talking] = tok;
            talking++;
        }
        if (talking > 0)
            CHECK_OK(nanollama_decode_many(batch, step_ctx, (size_t)talking, step_tok,
                                           (size_t)talking, NULL));
    }
    free(batch_mem);

    for (int c = 0; c < N_CHARACTERS; c++) {
        character *ch = &cast[c];
        size_t n;
        CHECK_OK(nanollama_detokenizer_flush(&ch->detok, (uint8_t *)ch->text + ch->len, 4, &n));
        ch->len += n;
        printf("%s:%.*s\n", ch->name, (int)ch->len, ch->text);
        free(ch->ctx_mem);
        free(ch->sampler_mem);
    }
    host_model_free(&hm);
    return 0;
}
