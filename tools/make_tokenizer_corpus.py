#!/usr/bin/env python3
"""Tokenizer corpus: 2400 seeded strings (many scripts, emoji, combining
marks, whitespace runs, numbers, code, contractions, special-token text,
invalid UTF-8) and what llama.cpp makes of them:

- the ids of every test vocabulary (the nine of llama.cpp's test vectors and
  SmolLM2's), from the low-level llama_tokenize with add_special false,
  without and with parse_special;
- the pre-tokens of the families no vocabulary here has (llama.cpp's
  `default`, DeepSeek V3, Tekken), from llama.cpp's own unicode_regex_split
  (tools/llama_unicode.cpp).

Run:   python3 tools/make_tokenizer_corpus.py
Needs: llama-cpp-python 0.3.36 and g++ (see tools/README.md)
Writes tests/data/vocab/corpus/: strings.txt (one string per line, in hex),
NAME.txt per vocabulary (per string: the ids, space-separated; then a tab and
the ids with parse_special, or `=` when they are the same) and
pretokenize.txt (per string, per family, tab-separated: the code points of
each pre-token).
"""
import ctypes
import os
import random
import subprocess
import tempfile

import llama_cpp

HERE = os.path.dirname(os.path.abspath(__file__))
VOCAB = os.path.join(HERE, "..", "tests", "data", "vocab")
OUT = os.path.join(VOCAB, "corpus")
VOCABS = ["llama-spm", "llama-bpe", "gpt-2", "starcoder", "qwen2", "deepseek-llm", "deepseek-coder", "falcon",
          "command-r", "smollm2"]
FAMILIES = ["default", "deepseek-v3", "tekken"]

POOLS = {
    "en": "the quick brown fox jumps over lazy dog And it came to pass Hello World tokenizer".split(),
    "contr": ["I'm", "you're", "We've", "they'll", "she'd", "IT'S", "don't", "O'Neil", "'s", "'LL", "rock'n'roll"],
    "de_fr": ["Äpfel", "Straße", "über", "naïve", "façade", "élève", "Œuvre", "garçon", "Größe"],
    "cyr_gr": ["нещо", "на", "Български", "Привет", "мир", "Ελληνικά", "καλημέρα", "ΣΊΣΥΦΟΣ"],
    "cjk": ["日本語", "中文字符", "테스트", "한국어", "ひらがな", "カタカナ", "漢字", "こんにちは世界", "，。！", "ｆｕｌｌ"],
    "rtl_ind": ["مرحبا", "العالم", "שלום", "नमस्ते", "हिन्दी", "ภาษาไทย", "বাংলা", "தமிழ்"],
    "emoji": ["🦙", "😀", "👍🏽", "👨‍👩‍👧‍👦", "🇩🇪", "🏳️‍🌈", "❤️", "🤖", "🎉🎉", "☕"],
    "comb": ["e\u0301", "a\u0308\u0323", "n\u0303", "Z\u0335\u0336\u0337", "\u0301", "o\u0328\u0304"],
    "num": ["0", "7", "42", "123", "1234", "1234567", "3.14159", "1,000,000", "2024-11-28", "0x1F", "½", "²³", "٣٤٥", "१२३"],
    "code": ["fn main() {", "}", "println!(\"{}\", x);", "if (a && b) { return -1; }", "x += 1;", "<div class=\"a\">",
             "def f(x):", "    return x**2", "#include <stdio.h>", "a->b", "i++", "// comment", "/* c */", "$x = @y;"],
    "punct": ["!", "?!", "...", "—", "–", "«", "»", "“quoted”", "(", ")", "[", "]", "{", "}", "::", "@@", "#", "%", "&", "*", "~~~", "``", "\\", "|"],
    "special": ["<s>", "</s>", "<unk>", "<|begin_of_text|>", "<|eot_id|>", "<|start_header_id|>", "<|end_header_id|>",
                "<|im_start|>", "<|im_end|>", "<|endoftext|>", "<|im_start|>user\n", "<fim_prefix>", "<PAD>",
                "<|START_OF_TURN_TOKEN|>", "<|END_OF_TURN_TOKEN|>", "<｜begin▁of▁sentence｜>", "<｜end▁of▁sentence｜>",
                "<|fim_pad|>", "<EOT>", "<|end|>", "<|im_end|><|im_start|>", "<<|im_end|>>"],
}
SPACES = [" ", "  ", "   ", "\t", "\n", "\n\n", "\r\n", " \n ", "\u00a0", "\u3000", "\u2009", "\t\t ", "        ", "\n   \n"]
INVALID = [b"\xff", b"\xc3", b"\xe2\x82", b"\xc0\xaf", b"\xed\xa0\x80", b"\x80\x80", b"\xfe\xfe", b"\xf0\x9f"]
# Not b"\xf4\x90\x80\x80" (a code point past U+10FFFF): llama.cpp dies on it
# with an uncaught std::invalid_argument in the BPE tokenizer.


def make(rng):
    kinds = list(POOLS)
    parts = []
    for _ in range(rng.randint(1, 12)):
        r = rng.random()
        if r < 0.55:
            parts.append(rng.choice(POOLS[rng.choice(kinds)]).encode())
        elif r < 0.85:
            parts.append(rng.choice(SPACES).encode())
        elif r < 0.93:
            parts.append(rng.choice(INVALID))
        else:
            parts.append(bytes(rng.randrange(32, 127) for _ in range(rng.randint(1, 6))))
    s = b"".join(parts)
    if rng.random() < 0.1:
        s = b" " + s
    return s


def tokenize(vocab, s, special):
    cap = len(s) * 2 + 8
    buf = (llama_cpp.llama_token * cap)()
    n = llama_cpp.llama_tokenize(vocab, s, len(s), buf, cap, False, special)
    assert n >= 0, (s, n)
    return list(buf[:n])


def llama_unicode():
    lib = os.path.join(os.path.dirname(llama_cpp.__file__), "lib")
    exe = os.path.join(tempfile.mkdtemp(), "llama_unicode")
    subprocess.check_call(["g++", "-O1", os.path.join(HERE, "llama_unicode.cpp"), f"-L{lib}", "-lllama",
                           f"-Wl,-rpath,{lib}", "-o", exe])
    return exe


def main():
    rng = random.Random(20261128)
    strings, seen = [], set()
    while len(strings) < 2400:
        s = make(rng)
        if s not in seen:
            seen.add(s)
            strings.append(s)
    os.makedirs(OUT, exist_ok=True)
    hexes = "\n".join(s.hex() for s in strings) + "\n"
    with open(os.path.join(OUT, "strings.txt"), "w") as f:
        f.write(hexes)
    llama_cpp.llama_backend_init()
    for name in VOCABS:
        m = llama_cpp.Llama(model_path=os.path.join(VOCAB, f"ggml-vocab-{name}.gguf"), vocab_only=True, verbose=False)
        vocab = llama_cpp.llama_model_get_vocab(m.model)
        lines = []
        for s in strings:
            plain, special = tokenize(vocab, s, False), tokenize(vocab, s, True)
            col = "=" if special == plain else " ".join(map(str, special))
            lines.append(" ".join(map(str, plain)) + "\t" + col)
        with open(os.path.join(OUT, f"{name}.txt"), "w") as f:
            f.write("\n".join(lines) + "\n")
        print(name, sum(l.endswith("\t=") for l in lines), "of", len(lines), "the same with parse_special")
    exe = llama_unicode()
    cols = []
    for fam in FAMILIES:
        r = subprocess.run([exe, "split", fam], input=hexes.encode(), capture_output=True, check=True)
        cols.append(r.stdout.decode().split("\n")[:len(strings)])
    with open(os.path.join(OUT, "pretokenize.txt"), "w") as f:
        f.write("\n".join("\t".join(c[i] for c in cols) for i in range(len(strings))) + "\n")
    print(f"{len(strings)} strings, {len(VOCABS)} vocabularies, {len(FAMILIES)} families, "
          f"llama-cpp-python {llama_cpp.__version__}")


if __name__ == "__main__":
    main()
