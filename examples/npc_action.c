/* cc -std=c11 -O2 -Iinclude examples/npc_action.c target/release/libnanollama.a -lpthread -lm -o npc_action
 *
 * A game asks its characters what they do, and wants an action it can
 * execute, not prose that might contain one: each character's reply is
 * constrained by a GBNF grammar to {"action": "...", "item": "..."} with
 * the game's own verbs and items, and the host parses it. The grammar is
 * parsed once; the vocabulary's token trie is built once and shared; each
 * character's sampler carries its own grammar state (in the host's
 * memory, saved with the sampler's state).
 *     $ ./npc_action [-m MODEL] [--chat] [sampler flags]
 * --chat wraps the question in ChatML for an instruct model (SmolLM2).
 * Prints one line per character: "name: action=... item=..." and the JSON.
 */
#include "host.h"

static const char *GRAMMAR =
    "root   ::= \"{\\\"action\\\": \\\"\" action \"\\\", \\\"item\\\": \\\"\" item \"\\\"}\"\n"
    "action ::= \"give\" | \"take\" | \"attack\" | \"flee\" | \"wait\"\n"
    "item   ::= \"sword\" | \"shield\" | \"bread\" | \"gold\" | \"nothing\"\n";

/* The string value of "key" in a flat JSON object (the grammar makes the
 * shape certain; this reader still checks). */
static int json_field(const char *json, const char *key, char *out, size_t cap) {
    char pat[64];
    snprintf(pat, sizeof pat, "\"%s\": \"", key);
    const char *p = strstr(json, pat);
    if (!p) return 0;
    p += strlen(pat);
    const char *q = strchr(p, '"');
    if (!q || (size_t)(q - p) >= cap) return 0;
    memcpy(out, p, (size_t)(q - p));
    out[q - p] = 0;
    return 1;
}

int main(int argc, char **argv) {
    const char *model_path = "models/kjv-llama.gguf";
    int chat = 0;
    nanollama_sampler_params sp;
    nanollama_sampler_params_default(&sp, sizeof sp);
    for (int i = 1; i < argc; i++) {
        if (sampler_flag(argc, argv, &i, &sp)) continue;
        if (i + 1 < argc && !strcmp(argv[i], "-m")) model_path = argv[++i];
        else if (!strcmp(argv[i], "--chat")) chat = 1;
        else {
            fprintf(stderr, "usage: %s [-m MODEL] [--chat] [sampler flags]\n", argv[0]);
            return 2;
        }
    }
    const char *names[] = {"Guard", "Merchant", "Thief"};
    const char *asks[] = {
        "A stranger wants to pass the gate. What does the guard do?",
        "A hungry child asks the merchant for food. What does the merchant do?",
        "The thief sees a purse of gold on a table. What does the thief do?",
    };
    host_model hm = host_model_load(model_path);
    const nanollama_model_info mi = hm.info;
    size_t size, off = 0;

    /* Once per game: the grammar and the vocabulary's trie. */
    const nanollama_grammar *grammar;
    nanollama_status st = nanollama_grammar_size(GRAMMAR, strlen(GRAMMAR), &size, &off);
    if (st != NANOLLAMA_STATUS_OK) {
        fprintf(stderr, "grammar: %s at byte %zu\n", nanollama_status_str((uint32_t)st), off);
        return 1;
    }
    void *grammar_mem = alloc64(size);
    CHECK_OK(nanollama_grammar_init(GRAMMAR, strlen(GRAMMAR), grammar_mem, size, &grammar, &off));
    const nanollama_token_trie *trie;
    CHECK_OK(nanollama_token_trie_size(hm.vocab, &size));
    void *trie_mem = alloc64(size);
    CHECK_OK(nanollama_token_trie_init(hm.vocab, trie_mem, size, &trie));
    nanollama_grammar_params gp;
    nanollama_grammar_params_default(&gp, sizeof gp);

    uint64_t seed = sp.seed;
    for (int c = 0; c < 3; c++) {
        char prompt[512];
        if (chat)
            snprintf(prompt, sizeof prompt,
                     "<|im_start|>user\n%s Answer with a JSON action.<|im_end|>\n<|im_start|>assistant\n",
                     asks[c]);
        else
            snprintf(prompt, sizeof prompt, "%s", asks[c]);
        int32_t tokens[256];
        size_t n_prompt = host_tokenize(&hm, prompt, chat, tokens, 256);

        nanollama_context_params cp;
        nanollama_context_params_default(&cp, sizeof cp);
        cp.n_ctx = mi.n_ctx_train;
        cp.n_batch = (uint32_t)n_prompt;
        CHECK_OK(nanollama_context_size(hm.model, &cp, &size));
        void *ctx_mem = alloc64(size);
        nanollama_context *ctx;
        CHECK_OK(nanollama_context_init(hm.model, &cp, ctx_mem, size, &ctx));
        sp.seed = seed + (uint64_t)c;
        CHECK_OK(nanollama_sampler_size(mi.n_vocab, &sp, &size));
        void *sampler_mem = alloc64(size);
        nanollama_sampler *sampler;
        CHECK_OK(nanollama_sampler_init(mi.n_vocab, &sp, sampler_mem, size, &sampler));
        /* The prompt goes into the penalty history, not the grammar: the
         * grammar is attached after it. */
        for (size_t i = 0; i < n_prompt; i++) CHECK_OK(nanollama_sampler_accept(sampler, tokens[i]));
        CHECK_OK(nanollama_grammar_stage_size(trie, &gp, &size));
        void *stage_mem = alloc64(size);
        CHECK_OK(nanollama_sampler_set_grammar(sampler, grammar, trie, &gp, stage_mem, size));
        CHECK_OK(nanollama_context_decode(ctx, tokens, n_prompt));

        char json[512];
        size_t len = 0;
        nanollama_detokenizer detok;
        nanollama_detokenizer_init(&detok);
        for (int step = 0; step < 64 && len + 300 < sizeof json; step++) {
            const float *logits;
            size_t rows;
            int32_t tok;
            CHECK_OK(nanollama_context_logits(ctx, &logits, &rows));
            st = nanollama_sampler_sample(sampler, logits, mi.n_vocab, &tok);
            /* The object is complete and the model has no end-of-generation
             * token the grammar could allow: nothing left to draw. */
            if (st == NANOLLAMA_STATUS_NO_CANDIDATES) break;
            CHECK_OK(st);
            CHECK_OK(nanollama_sampler_accept(sampler, tok));
            if (host_is_eog(hm.vocab, tok)) break;
            size_t n;
            CHECK_OK(nanollama_detokenizer_push(&detok, hm.vocab, tok, (uint8_t *)json + len, 300, &n));
            len += n;
            CHECK_OK(nanollama_context_decode(ctx, &tok, 1));
        }
        json[len] = 0;
        char action[32], item[32];
        if (json_field(json, "action", action, sizeof action) && json_field(json, "item", item, sizeof item))
            printf("%s: action=%s item=%s %s\n", names[c], action, item, json);
        else
            printf("%s: no action: %s\n", names[c], json);
        free(stage_mem);
        free(sampler_mem);
        free(ctx_mem);
    }
    free(trie_mem);
    free(grammar_mem);
    host_model_free(&hm);
    return 0;
}
