/* cc -std=c11 -O2 -Iinclude examples/save_restore.c target/release/libnanollama.a -lpthread -lm -o save_restore
 *
 * A save-game: one process writes some text and saves the conversation (the
 * context's state and the sampler's: random generator, penalty history) to a
 * file; a fresh process loads it and carries on with exactly the tokens an
 * uninterrupted run would have written.
 *     $ ./save_restore save game.sav -p "And it came to pass" -n 20 --seed 5 --temp 0.9
 *     $ ./save_restore resume game.sav -n 20 --seed 5 --temp 0.9
 * prints the same text as
 *     $ ./generate -p "And it came to pass" -n 40 --seed 5 --temp 0.9
 * The sampler's settings are not part of its state: pass the same flags to
 * both runs. A file saved from another model, or damaged, is refused with
 * STATE_MISMATCH or STATE_CORRUPT (exit status 1). Option -m MODEL as in
 * generate.
 *
 * The save file is the host's own: a magic, the two library states with
 * their lengths, and the detokenizer (plain data: the bytes of a character
 * not yet complete).
 */
#include "host.h"

static const char MAGIC[8] = "NLSAVE1";

static void write_all(FILE *f, const void *p, size_t n) {
    if (fwrite(p, 1, n, f) != n) {
        fprintf(stderr, "write failed\n");
        exit(1);
    }
}

/* Reads n bytes or fails with a message: a short file is the host's error. */
static void read_all(FILE *f, void *p, size_t n) {
    if (fread(p, 1, n, f) != n) {
        fprintf(stderr, "save file truncated\n");
        exit(1);
    }
}

int main(int argc, char **argv) {
    const char *model_path = "models/kjv-llama.gguf", *mode = NULL, *save_path = NULL;
    const char *prompt = "";
    int n_predict = 32;
    nanollama_sampler_params sp;
    nanollama_sampler_params_default(&sp, sizeof sp);
    for (int i = 1; i < argc; i++) {
        if (sampler_flag(argc, argv, &i, &sp)) continue;
        if (i + 1 < argc && !strcmp(argv[i], "-m")) model_path = argv[++i];
        else if (i + 1 < argc && !strcmp(argv[i], "-p")) prompt = argv[++i];
        else if (i + 1 < argc && !strcmp(argv[i], "-n")) n_predict = atoi(argv[++i]);
        else if (!mode && i + 1 < argc) {
            mode = argv[i];
            save_path = argv[++i];
        } else mode = "?";
    }
    int saving = mode && !strcmp(mode, "save");
    if (!mode || (!saving && strcmp(mode, "resume") != 0)) {
        fprintf(stderr, "usage: %s save FILE -p PROMPT [-n N] [-m MODEL] [sampler flags]\n"
                        "       %s resume FILE [-n N] [-m MODEL] [sampler flags]\n",
                argv[0], argv[0]);
        return 2;
    }

    host_model hm = host_model_load(model_path);
    const nanollama_model *model = hm.model;
    const nanollama_vocab *vocab = hm.vocab;
    const nanollama_model_info mi = hm.info;
    const nanollama_vocab_info vi = hm.vocab_info;
    size_t size;

    int32_t tokens[512];
    size_t n_prompt = 0;
    if (saving) {
        n_prompt = host_tokenize(&hm, prompt, 0, tokens, 512);
    }

    nanollama_context_params cp;
    nanollama_context_params_default(&cp, sizeof cp);
    cp.n_ctx = mi.n_ctx_train;
    cp.n_batch = n_prompt > 0 ? (uint32_t)n_prompt : 1;
    CHECK_OK(nanollama_context_size(model, &cp, &size));
    void *ctx_mem = alloc64(size);
    nanollama_context *ctx;
    CHECK_OK(nanollama_context_init(model, &cp, ctx_mem, size, &ctx));
    CHECK_OK(nanollama_sampler_size(mi.n_vocab, &sp, &size));
    void *sampler_mem = alloc64(size);
    nanollama_sampler *sampler;
    CHECK_OK(nanollama_sampler_init(mi.n_vocab, &sp, sampler_mem, size, &sampler));
    nanollama_detokenizer d;
    nanollama_detokenizer_init(&d);
    uint8_t piece[300];

    if (saving) {
        for (size_t i = 0; i < n_prompt; i++) {
            size_t n;
            CHECK_OK(nanollama_detokenizer_push(&d, vocab, tokens[i], piece, sizeof piece, &n));
            fwrite(piece, 1, n, stdout);
            CHECK_OK(nanollama_sampler_accept(sampler, tokens[i]));
        }
        CHECK_OK(nanollama_context_decode(ctx, tokens, n_prompt));
    } else {
        /* Load the save file, then hand both states to the library, which
         * checks them (model fingerprint, sizes, checksums) before use. */
        FILE *f = fopen(save_path, "rb");
        if (!f) {
            fprintf(stderr, "cannot open %s\n", save_path);
            return 1;
        }
        char magic[8];
        uint64_t lens[2];
        read_all(f, magic, 8);
        if (memcmp(magic, MAGIC, 8) != 0) {
            fprintf(stderr, "%s is not a save file\n", save_path);
            return 1;
        }
        void *states[2];
        for (int k = 0; k < 2; k++) {
            read_all(f, &lens[k], sizeof lens[k]);
            if (lens[k] > ((uint64_t)1 << 34)) {
                fprintf(stderr, "save file damaged\n");
                return 1;
            }
            states[k] = malloc(lens[k] ? (size_t)lens[k] : 1);
            read_all(f, states[k], (size_t)lens[k]);
        }
        read_all(f, &d, sizeof d);
        fclose(f);
        CHECK_OK(nanollama_context_state_load(ctx, states[0], (size_t)lens[0]));
        CHECK_OK(nanollama_sampler_state_load(sampler, states[1], (size_t)lens[1]));
        free(states[0]);
        free(states[1]);
    }

    uint32_t pos;
    CHECK_OK(nanollama_context_pos(ctx, &pos));
    for (int n_gen = 0; n_gen < n_predict;) {
        const float *logits;
        size_t rows;
        int32_t tok;
        CHECK_OK(nanollama_context_logits(ctx, &logits, &rows));
        CHECK_OK(nanollama_sampler_sample(sampler, logits, mi.n_vocab, &tok));
        CHECK_OK(nanollama_sampler_accept(sampler, tok));
        n_gen++;
        if (host_is_eog(vocab, tok)) break;
        size_t n = token_text(vocab, &vi, &d, tok, piece);
        fwrite(piece, 1, n, stdout);
        if (pos == cp.n_ctx) break;
        CHECK_OK(nanollama_context_decode(ctx, &tok, 1));
        pos++;
    }

    if (saving) {
        size_t sizes[2], written;
        CHECK_OK(nanollama_context_state_size(ctx, &sizes[0]));
        CHECK_OK(nanollama_sampler_state_size(sampler, &sizes[1]));
        void *buf = malloc(sizes[0] > sizes[1] ? sizes[0] : sizes[1]);
        FILE *f = fopen(save_path, "wb");
        if (!buf || !f) {
            fprintf(stderr, "cannot write %s\n", save_path);
            return 1;
        }
        write_all(f, MAGIC, 8);
        CHECK_OK(nanollama_context_state_save(ctx, buf, sizes[0], &written));
        uint64_t len = written;
        write_all(f, &len, sizeof len);
        write_all(f, buf, written);
        CHECK_OK(nanollama_sampler_state_save(sampler, buf, sizes[1], &written));
        len = written;
        write_all(f, &len, sizeof len);
        write_all(f, buf, written);
        write_all(f, &d, sizeof d);
        if (fclose(f) != 0) {
            fprintf(stderr, "cannot write %s\n", save_path);
            return 1;
        }
        free(buf);
        fprintf(stderr, "saved %u positions to %s\n", pos, save_path);
    } else {
        size_t n;
        CHECK_OK(nanollama_detokenizer_flush(&d, piece, sizeof piece, &n));
        fwrite(piece, 1, n, stdout);
        printf("\n");
    }
    free(sampler_mem);
    free(ctx_mem);
    host_model_free(&hm);
    return 0;
}
