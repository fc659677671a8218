#!/usr/bin/env python3
"""Tokenizer corpus: 2400 seeded strings (many scripts, emoji, combining
marks, whitespace runs, numbers, code, contractions, invalid UTF-8) and the
ids llama.cpp gives them with both test vocabularies, without BOS, with and
without special-token parsing.

Run:   python3 tools/make_tokenizer_corpus.py
Needs: llama-cpp-python (see tools/README.md)
Writes tests/data/vocab/corpus.txt: per line, tab-separated: the string in
hex, then the ids (space-separated) for spm, spm+special, bpe, bpe+special.
"""
import os
import random

import llama_cpp

HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "data", "vocab")

POOLS = {
    "en": "the quick brown fox jumps over lazy dog And it came to pass Hello World tokenizer".split(),
    "contr": ["I'm", "you're", "We've", "they'll", "she'd", "IT'S", "don't", "O'Neil", "'s", "'LL", "rock'n'roll"],
    "de_fr": ["Äpfel", "Straße", "über", "naïve", "façade", "élève", "Œuvre", "garçon", "Größe"],
    "cyr_gr": ["нещо", "на", "Български", "Привет", "мир", "Ελληνικά", "καλημέρα", "ΣΊΣΥΦΟΣ"],
    "cjk": ["日本語", "中文字符", "테스트", "한국어", "ひらがな", "カタカナ", "漢字", "こんにちは世界"],
    "rtl_ind": ["مرحبا", "العالم", "שלום", "नमस्ते", "हिन्दी", "ภาษาไทย", "বাংলা", "தமிழ்"],
    "emoji": ["🦙", "😀", "👍🏽", "👨‍👩‍👧‍👦", "🇩🇪", "🏳️‍🌈", "❤️", "🤖", "🎉🎉", "☕"],
    "comb": ["e\u0301", "a\u0308\u0323", "n\u0303", "Z\u0335\u0336\u0337", "\u0301", "o\u0328\u0304"],
    "num": ["0", "7", "42", "123", "1234", "1234567", "3.14159", "1,000,000", "2024-11-28", "0x1F", "½", "²³", "٣٤٥", "१२३"],
    "code": ["fn main() {", "}", "println!(\"{}\", x);", "if (a && b) { return -1; }", "x += 1;", "<div class=\"a\">",
             "def f(x):", "    return x**2", "#include <stdio.h>", "a->b", "i++", "// comment", "/* c */", "$x = @y;"],
    "punct": ["!", "?!", "...", "—", "–", "«", "»", "“quoted”", "(", ")", "[", "]", "{", "}", "::", "@@", "#", "%", "&", "*", "~~~", "``", "\\", "|"],
    "special": ["<s>", "</s>", "<unk>", "<|begin_of_text|>", "<|eot_id|>", "<|start_header_id|>", "<|end_header_id|>"],
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


def main():
    rng = random.Random(20261128)
    strings, seen = [], set()
    while len(strings) < 2400:
        s = make(rng)
        if s not in seen:
            seen.add(s)
            strings.append(s)
    vocabs = {}
    for name in ["spm", "bpe"]:
        vocabs[name] = llama_cpp.Llama(model_path=os.path.join(HERE, f"ggml-vocab-llama-{name}.gguf"),
                                       vocab_only=True, verbose=False)
    lines = []
    for s in strings:
        cols = [s.hex()]
        for name in ["spm", "bpe"]:
            for special in [False, True]:
                cols.append(" ".join(map(str, vocabs[name].tokenize(s, add_bos=False, special=special))))
        lines.append("\t".join(cols))
    with open(os.path.join(HERE, "corpus.txt"), "w") as f:
        f.write("\n".join(lines) + "\n")
    print(f"{len(lines)} strings, llama-cpp-python {llama_cpp.__version__}")


if __name__ == "__main__":
    main()
