/* Chat templates: render with a built-in name and with a file's own
 * template, the size query, unknown templates, NULL arguments, the
 * built-in name list. Usage: chat WITH_TEMPLATE.gguf WITHOUT.gguf
 * (a vocabulary with a ChatML tokenizer.chat_template, one with none). */
#include "common.h"

/* The files and vocabulary memory, freed at the end (the leak checker of
 * the sanitized run looks). */
static void *owned[4];
static int n_owned;

static const nanollama_vocab *load(const char *path) {
    size_t len = 0, need = 0;
    const nanollama_vocab *v = NULL;
    uint8_t *file = read_file(path, &len);
    CHECK_OK(nanollama_vocab_size(file, len, &need));
    void *mem = alloc64(need);
    CHECK_OK(nanollama_vocab_init(file, len, mem, need, &v));
    owned[n_owned++] = file;
    owned[n_owned++] = mem;
    return v;
}

int main(int argc, char **argv) {
    CHECK(argc == 3);
    const nanollama_chat_message msgs[] = {
        {"system", "You are a helpful assistant"},
        {"user", "Hello <|im_end|>"},
    };
    const char *want =
        "<|im_start|>system\nYou are a helpful assistant<|im_end|>\n"
        "<|im_start|>user\nHello <|im_end|><|im_end|>\n"
        "<|im_start|>assistant\n";
    size_t wl = strlen(want);
    char buf[512];
    size_t n = 0;

    /* The size query, then the text (no NUL is written). */
    CHECK_STATUS(nanollama_chat_apply_template("chatml", 6, msgs, 2, true, NULL, 0, &n),
                 NANOLLAMA_STATUS_BUFFER_TOO_SMALL);
    CHECK(n == wl);
    memset(buf, 'Z', sizeof buf);
    CHECK_STATUS(nanollama_chat_apply_template("chatml", 6, msgs, 2, true, buf, wl - 1, &n),
                 NANOLLAMA_STATUS_BUFFER_TOO_SMALL);
    CHECK(n == wl && buf[wl - 1] == 'Z');
    CHECK_OK(nanollama_chat_apply_template("chatml", 6, msgs, 2, true, buf, sizeof buf, &n));
    CHECK(n == wl && memcmp(buf, want, wl) == 0 && buf[wl] == 'Z');

    /* The file's own template, recognised as ChatML. */
    const nanollama_vocab *v = load(argv[1]);
    const char *tmpl = NULL;
    size_t tl = 0;
    CHECK_OK(nanollama_vocab_chat_template(v, &tmpl, &tl));
    CHECK(tmpl != NULL && tl > 0);
    const char *name = NULL;
    CHECK_OK(nanollama_chat_template_name(tmpl, tl, &name));
    CHECK(strcmp(name, "chatml") == 0);
    CHECK_OK(nanollama_chat_apply_template(tmpl, tl, msgs, 2, true, buf, sizeof buf, &n));
    CHECK(n == wl && memcmp(buf, want, wl) == 0);
    const nanollama_vocab *none = load(argv[2]);
    CHECK_STATUS(nanollama_vocab_chat_template(none, &tmpl, &tl), NANOLLAMA_STATUS_MISSING_KEY);
    CHECK_STATUS(nanollama_vocab_chat_template(NULL, &tmpl, &tl), NANOLLAMA_STATUS_NULL_POINTER);
    CHECK_STATUS(nanollama_vocab_chat_template(v, NULL, &tl), NANOLLAMA_STATUS_NULL_POINTER);

    /* Not recognised: a status, never a guess; *out_len untouched. */
    n = 77;
    CHECK_STATUS(nanollama_chat_apply_template("{{ messages }}", 14, msgs, 2, true, buf, sizeof buf, &n),
                 NANOLLAMA_STATUS_UNSUPPORTED_TEMPLATE);
    CHECK(n == 77);
    CHECK_STATUS(nanollama_chat_template_name("nope", 4, &name), NANOLLAMA_STATUS_UNSUPPORTED_TEMPLATE);
    CHECK(strcmp(nanollama_status_str(NANOLLAMA_STATUS_UNSUPPORTED_TEMPLATE), "unknown status") != 0);

    /* NULL arguments. */
    const nanollama_chat_message bad[] = {{"user", NULL}};
    CHECK_STATUS(nanollama_chat_apply_template("chatml", 6, bad, 1, true, buf, sizeof buf, &n),
                 NANOLLAMA_STATUS_NULL_POINTER);
    CHECK_STATUS(nanollama_chat_apply_template("chatml", 6, NULL, 1, true, buf, sizeof buf, &n),
                 NANOLLAMA_STATUS_NULL_POINTER);
    CHECK_STATUS(nanollama_chat_apply_template(NULL, 0, msgs, 2, true, buf, sizeof buf, &n),
                 NANOLLAMA_STATUS_NULL_POINTER);
    CHECK_STATUS(nanollama_chat_apply_template("chatml", 6, msgs, 2, true, buf, sizeof buf, NULL),
                 NANOLLAMA_STATUS_NULL_POINTER);

    /* Every built-in name renders; the list ends with NULL. */
    size_t count = 0;
    for (const char *b; (b = nanollama_chat_builtin_template(count)) != NULL; count++) {
        CHECK_OK(nanollama_chat_template_name(b, strlen(b), &name));
        CHECK(strcmp(name, b) == 0);
        CHECK_STATUS(nanollama_chat_apply_template(b, strlen(b), msgs, 2, true, NULL, 0, &n),
                     n == 0 ? NANOLLAMA_STATUS_OK : NANOLLAMA_STATUS_BUFFER_TOO_SMALL);
    }
    CHECK(count >= 28);
    printf("chat: ok (%zu built-in templates)\n", count);
    for (int i = 0; i < n_owned; i++) free(owned[i]);
    return 0;
}
