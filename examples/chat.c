/* cc -std=c11 -O2 -Iinclude examples/chat.c target/release/libnanollama.a -lpthread -lm -o chat
 *
 * A chat over the C API, the loop of `nanollama chat`:
 *     $ ./chat -m models/SmolLM2-135M-Instruct.Q4_1.gguf --system "You are helpful." --temp 0
 * One user turn per line on stdin; each answer streams to stdout on a line
 * of its own, the turn's token counts and speeds go to stderr. Options: -m
 * MODEL (default models/kjv-llama.gguf, a plain-text model: see `nanollama
 * chat --help`), --system TEXT, -n TOKENS per answer (default 256), -t
 * THREADS, and the sampler flags of generate.c.
 *
 * Each turn renders the whole conversation with the model's template
 * (nanollama_chat_apply_template; chatml when the file has none), and
 * decodes only the text past what the context already holds: the new
 * messages. The answer's text joins the conversation as the assistant's
 * message. The system prompt is decoded first, on its own, as `nanollama
 * chat` does.
 */
#include "host.h"

#define MAX_MESSAGES 128

typedef struct {
    nanollama_chat_message msgs[MAX_MESSAGES];
    size_t n;
    const char *tmpl;
    size_t tmpl_len;
    char *render;   /* the last rendering */
    size_t render_cap;
} conversation;

static char *copy_string(const char *s, size_t n) {
    char *c = malloc(n + 1);
    if (!c) abort();
    memcpy(c, s, n);
    c[n] = 0;
    return c;
}

static void push(conversation *c, const char *role, const char *text, size_t len) {
    if (c->n == MAX_MESSAGES) {
        fprintf(stderr, "chat: the conversation is full (%d messages)\n", MAX_MESSAGES);
        exit(1);
    }
    c->msgs[c->n].role = role;
    c->msgs[c->n].content = copy_string(text, len);
    c->n++;
}

/* Renders messages 0..n into c->render; returns its length. */
static size_t render(conversation *c, size_t n, bool add_assistant) {
    size_t len = 0;
    nanollama_status s = nanollama_chat_apply_template(c->tmpl, c->tmpl_len, c->msgs, n, add_assistant,
                                                       c->render, c->render_cap, &len);
    if (s == NANOLLAMA_STATUS_BUFFER_TOO_SMALL) {
        c->render_cap = len + 1024;
        c->render = realloc(c->render, c->render_cap);
        if (!c->render) abort();
        CHECK_OK(nanollama_chat_apply_template(c->tmpl, c->tmpl_len, c->msgs, n, add_assistant, c->render,
                                               c->render_cap, &len));
    } else {
        CHECK_OK(s);
    }
    return len;
}

/* Tokenizes text[0..len] (special tokens parsed; BOS as the file asks when
 * the context is empty) and decodes it in batches of n_batch, the sampler
 * seeing every token. Returns the tokens decoded. */
static size_t decode_text(host_model *hm, nanollama_context *ctx, nanollama_sampler *smp, uint32_t n_batch,
                          const char *text, size_t len) {
    uint32_t pos;
    CHECK_OK(nanollama_context_pos(ctx, &pos));
    uint32_t flags = NANOLLAMA_TOKENIZE_FLAGS_PARSE_SPECIAL;
    if (pos == 0 && hm->vocab_info.add_bos) flags |= NANOLLAMA_TOKENIZE_FLAGS_ADD_BOS;
    size_t scratch_len = nanollama_tokenize_scratch_size(len);
    void *scratch = alloc64(scratch_len);
    size_t cap = 3 * len + 2, n = 0;
    int32_t *toks = malloc(cap * sizeof *toks);
    CHECK_OK(nanollama_tokenize(hm->vocab, (const uint8_t *)text, len, flags, scratch, scratch_len, toks, cap, &n));
    for (size_t i = 0; i < n; i += n_batch) {
        size_t k = n - i < n_batch ? n - i : n_batch;
        CHECK_OK(nanollama_context_decode(ctx, toks + i, k));
    }
    for (size_t i = 0; i < n; i++) CHECK_OK(nanollama_sampler_accept(smp, toks[i]));
    free(toks);
    free(scratch);
    return n;
}

int main(int argc, char **argv) {
    const char *model_path = "models/kjv-llama.gguf";
    const char *system = NULL;
    int n_predict = 256, n_threads = 1;
    nanollama_sampler_params sp;
    CHECK_OK(nanollama_sampler_params_default(&sp, sizeof sp));
    for (int i = 1; i < argc; i++) {
        if (sampler_flag(argc, argv, &i, &sp)) continue;
        if (i + 1 >= argc) {
            fprintf(stderr, "usage: %s [-m MODEL] [--system TEXT] [-n N] [-t THREADS] [sampler flags]\n", argv[0]);
            return 2;
        }
        if (!strcmp(argv[i], "-m")) model_path = argv[++i];
        else if (!strcmp(argv[i], "--system")) system = argv[++i];
        else if (!strcmp(argv[i], "-n")) n_predict = atoi(argv[++i]);
        else if (!strcmp(argv[i], "-t")) n_threads = atoi(argv[++i]);
        else {
            fprintf(stderr, "unknown option %s\n", argv[i]);
            return 2;
        }
    }
    if (nanollama_version()->abi != NANOLLAMA_ABI_VERSION) {
        fprintf(stderr, "chat: built for ABI %d, running with ABI %u\n", NANOLLAMA_ABI_VERSION,
                (unsigned)nanollama_version()->abi);
        return 1;
    }
    host_model hm = host_model_load(model_path);
    conversation c = {.n = 0, .render = NULL, .render_cap = 0};
    if (nanollama_vocab_chat_template(hm.vocab, &c.tmpl, &c.tmpl_len) != NANOLLAMA_STATUS_OK) {
        fprintf(stderr, "chat: %s has no chat template: using chatml\n", model_path);
        c.tmpl = "chatml";
        c.tmpl_len = strlen(c.tmpl);
    }
    const char *name;
    if (nanollama_chat_template_name(c.tmpl, c.tmpl_len, &name) != NANOLLAMA_STATUS_OK) {
        fprintf(stderr, "chat: %s: its chat template is not one nanollama knows\n", model_path);
        return 1;
    }

    host_pool pool;
    nanollama_context_params cp;
    CHECK_OK(nanollama_context_params_default(&cp, sizeof cp));
    cp.n_ctx = hm.info.n_ctx_train < 4096 ? hm.info.n_ctx_train : 4096;
    cp.n_batch = cp.n_ctx < 512 ? cp.n_ctx : 512;
    if (n_threads > 1) {
        host_pool_start(&pool, n_threads);
        host_pool_attach(&pool, &cp);
    }
    size_t size;
    CHECK_OK(nanollama_context_size(hm.model, &cp, &size));
    void *ctx_mem = alloc64(size);
    nanollama_context *ctx;
    CHECK_OK(nanollama_context_init(hm.model, &cp, ctx_mem, size, &ctx));
    nanollama_context_info ci;
    CHECK_OK(nanollama_context_get_info(ctx, &ci, sizeof ci));
    CHECK_OK(nanollama_sampler_size(hm.info.n_vocab, &sp, &size));
    void *smp_mem = alloc64(size);
    nanollama_sampler *smp;
    CHECK_OK(nanollama_sampler_init(hm.info.n_vocab, &sp, smp_mem, size, &smp));

    size_t cached = 0; /* bytes of the rendered conversation in the context */
    size_t n_system = 0; /* counted with the first turn's prompt */
    if (system) {
        push(&c, "system", system, strlen(system));
        cached = render(&c, 1, false);
        n_system = decode_text(&hm, ctx, smp, ci.n_batch, c.render, cached);
    }
    char line[4096];
    int turn = 0;
    while (fgets(line, sizeof line, stdin)) {
        size_t len = strcspn(line, "\r\n");
        if (len == 0) continue;
        push(&c, "user", line, len);
        size_t end = render(&c, c.n, true);
        if (end < cached) {
            fprintf(stderr, "chat: the template renders the earlier turns otherwise\n");
            return 1;
        }
        double t0 = now_seconds();
        size_t n_prompt = decode_text(&hm, ctx, smp, ci.n_batch, c.render + cached, end - cached) + n_system;
        n_system = 0;
        double t1 = now_seconds();
        cached = end;

        /* The answer, streamed and kept for the history. */
        char *answer = NULL;
        size_t answer_len = 0;
        uint32_t pos;
        int n_gen = 0;
        nanollama_detokenizer d;
        nanollama_detokenizer_init(&d);
        uint8_t piece[300];
        while (n_gen < n_predict) {
            const float *logits;
            size_t rows, n;
            int32_t tok;
            CHECK_OK(nanollama_context_logits(ctx, &logits, &rows));
            CHECK_OK(nanollama_sampler_sample(smp, logits, hm.info.n_vocab, &tok));
            CHECK_OK(nanollama_sampler_accept(smp, tok));
            n_gen++;
            if (host_is_eog(hm.vocab, tok)) break;
            CHECK_OK(nanollama_detokenizer_push(&d, hm.vocab, tok, piece, sizeof piece, &n));
            fwrite(piece, 1, n, stdout);
            fflush(stdout);
            answer = realloc(answer, answer_len + n + 1);
            memcpy(answer + answer_len, piece, n);
            answer_len += n;
            CHECK_OK(nanollama_context_pos(ctx, &pos));
            if (pos == ci.n_ctx) break;
            CHECK_OK(nanollama_context_decode(ctx, &tok, 1));
        }
        size_t n;
        CHECK_OK(nanollama_detokenizer_flush(&d, piece, sizeof piece, &n));
        fwrite(piece, 1, n, stdout);
        answer = realloc(answer, answer_len + n + 1);
        memcpy(answer + answer_len, piece, n);
        answer_len += n;
        printf("\n");
        fflush(stdout);
        double t2 = now_seconds();
        push(&c, "assistant", answer ? answer : "", answer_len);
        free(answer);
        cached += answer_len; /* the end-of-turn token is not decoded: the next text begins with it */
        fprintf(stderr, "[turn %d: prompt %zu tokens, %.1f tok/s; answer %d tokens, %.1f tok/s]\n", ++turn,
                n_prompt, (double)n_prompt / (t1 - t0 + 1e-9), n_gen, (double)n_gen / (t2 - t1 + 1e-9));
    }

    for (size_t i = 0; i < c.n; i++) free((void *)c.msgs[i].content);
    free(c.render);
    if (n_threads > 1) host_pool_stop(&pool);
    free(smp_mem);
    free(ctx_mem);
    host_model_free(&hm);
    return 0;
}
