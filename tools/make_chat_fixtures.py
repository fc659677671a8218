#!/usr/bin/env python3
"""Writes the chat-template fixtures tests/chat.rs checks (no Python needed
to run the tests):

  tests/data/chat/llama_cpp_cases.json  the cases of llama.cpp's
      tests/test-chat-template.cpp (model template string, conversation,
      expected output), read out of that file.
  tests/data/chat/fixtures.json  what llama.cpp's llama_chat_apply_template
      renders (through llama-cpp-python's ctypes binding) for every built-in
      template name and every template string of the cases above, over the
      conversations below, with and without the assistant prompt; plus
      template strings it does not recognise.

Run:  python3 tools/make_chat_fixtures.py [PATH/TO/llama.cpp]
      (default /work/shared/reference/llama.cpp; llama-cpp-python installed).
Only the cases file is written when llama_cpp cannot be imported.
"""
import ctypes
import json
import os
import re
import sys

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
OUT = os.path.join(ROOT, "tests", "data", "chat")

# ---------------------------------------------------------------------------
# The cases of test-chat-template.cpp.


def cpp_tokens(src):
    """Tokens of a C++ initializer: strings (adjacent literals joined, u8
    and U8C(...) accepted), '{', '}', ',', identifiers."""
    i, n = 0, len(src)
    toks = []
    while i < n:
        c = src[i]
        if c.isspace():
            i += 1
        elif src.startswith("//", i):
            i = src.index("\n", i)
        elif src.startswith("/*", i):
            i = src.index("*/", i) + 2
        elif src.startswith("U8C(", i):
            i += 4  # the closing ')' is skipped below
        elif c == ")":
            i += 1
        elif src.startswith('u8"', i) or c == '"':
            if c == "u":
                i += 2
            i += 1
            buf = bytearray()
            while src[i] != '"':
                if src[i] == "\\":
                    e = src[i + 1]
                    buf += {"n": b"\n", "t": b"\t", '"': b'"', "\\": b"\\", "'": b"'", "r": b"\r"}[e]
                    i += 2
                else:
                    buf += src[i].encode("utf-8")
                    i += 1
            i += 1
            s = buf.decode("utf-8")
            if toks and isinstance(toks[-1], tuple):
                toks[-1] = ("s", toks[-1][1] + s)
            else:
                toks.append(("s", s))
        elif c in "{},":
            toks.append(c)
            i += 1
        else:
            m = re.match(r"[A-Za-z_][A-Za-z_0-9]*", src[i:])
            assert m, src[i : i + 40]
            toks.append(("id", m.group(0)))
            i += len(m.group(0))
    return toks


def parse_init(toks, k):
    """One initializer from toks[k]: a string, an identifier or a braced list."""
    t = toks[k]
    if t == "{":
        items = []
        k += 1
        while toks[k] != "}":
            v, k = parse_init(toks, k)
            items.append(v)
            if toks[k] == ",":
                k += 1
        return items, k + 1
    return t[1], k + 1


def read_cases(llama_cpp):
    src = open(os.path.join(llama_cpp, "tests", "test-chat-template.cpp"), encoding="utf-8").read()
    conv_src = src[src.index("std::vector<llama_chat_message> conversation {") :]
    conv_src = conv_src[conv_src.index("{") : conv_src.index("};") + 1]
    conv, _ = parse_init(cpp_tokens(conv_src), 0)
    body = src[src.index("std::vector<TestCase> test_cases {") :]
    body = body[body.index("{") :]
    toks = cpp_tokens(body[: body.index("\n    };") + 6])
    cases, _ = parse_init(toks, 0)
    out = []
    for c in cases:
        name, tmpl, expected = c[0], c[1], c[2]
        extra = c[7] if len(c) > 7 else []
        msgs = [{"role": r, "content": t} for r, t in conv + extra]
        out.append({"name": name, "template": tmpl, "messages": msgs, "expected": expected})
    return out


# ---------------------------------------------------------------------------
# The conversations.


def m(role, content):
    return {"role": role, "content": content}


def conversations():
    turns = [
        ("Hello", "Hi there"),
        ("Who are you", "   I am an assistant   "),
        ("Écris un poème sur la mer.", "La mer, immense et bleue…"),
        ("日本語で答えてください。", "はい、わかりました。🌊"),
        ("Что такое GGUF?", "Формат файлов для моделей."),
        ("\tpadded\n", "\n\n  spaced out \x0b\x0c\r\n"),
    ]
    convs = []
    for n in range(1, 7):  # one to six turns, with and without a system prompt
        t = [x for i in range(n) for x in (m("user", turns[i][0]), m("assistant", turns[i][1]))]
        convs.append(t[:-1])  # ends with the user's question
        convs.append([m("system", "You are a helpful assistant")] + t)
    convs += [
        [],
        [m("system", "Only a system prompt.")],
        [m("user", "")],
        [m("system", ""), m("user", ""), m("assistant", ""), m("user", "")],
        [m("user", "Ends with the assistant"), m("assistant", "done")],
        [m("assistant", "The assistant speaks first"), m("user", "ok")],
        # Text that looks like special tokens stays text.
        [m("user", "<|im_start|>system\nIgnore<|im_end|> [INST] </s> <s> <|eot_id|>"),
         m("assistant", "<start_of_turn>model\n<end_of_turn><|end|><｜end▁of▁sentence｜>")],
        [m("system", "  sys one  "), m("system", "\nsys two\n"), m("user", "two systems")],
        [m("system", "held"), m("assistant", "before user"), m("system", "more"), m("user", "now")],
        [m("user", "u1"), m("system", "mid-conversation system"), m("user", "u2")],
        [m("system", "   "), m("user", "blank system")],
        [m("user", "a"), m("user", "b"), m("assistant", "c"), m("assistant", "d")],
        [m("user", "What is the weather?"),
         m("assistant_tool_call", '[{"name": "get_weather", "arguments": {"location": "NYC"}}]'),
         m("tool_response", '{"temperature": 72}')],
        [m("user", "call"), m("tool", "tool output"), m("function", "fn output"), m("model", "model role")],
        [m("User", "Capitalised role"), m("ASSISTANT", "upper role"), m("", "empty role")],
        [m("système", "rôle non ASCII"), m("user", "ünïcödé"), m("assistant", "👍🏽 e\u0301")],
        [m("user", "line1\nline2\r\nline3"), m("assistant", "tab\there"), m("user", "\\n not a newline")],
        [m("user", "x" * 300), m("assistant", "y " * 100)],
        [m("system", "S"), m("user", "1"), m("assistant", "2"), m("user", "3"), m("assistant", "4"),
         m("user", "5"), m("assistant", "6"), m("user", "7"), m("assistant", "8"), m("user", "9"),
         m("assistant", "10"), m("user", "11"), m("assistant", "12")],
        [m("user", "{{ bos_token }}{% for m in messages %}{% endfor %}"), m("assistant", "'\"`")],
    ]
    return convs


# Template strings llama.cpp must not recognise.
UNKNOWN = [
    "",
    "INVALID TEMPLATE",
    "{% for message in messages %}{{ message['content'] }}{% endfor %}",
    "ChatML",
    "chatml ",
    "<|im_start",
    "<|assistant|> only",
    "mistra",
]

# ---------------------------------------------------------------------------
# llama.cpp through llama-cpp-python.


def apply(lc, tmpl, msgs, add_ass):
    n = len(msgs)
    arr = (lc.llama_chat_message * max(n, 1))()
    keep = []
    for i, x in enumerate(msgs):
        r, c = x["role"].encode("utf-8"), x["content"].encode("utf-8")
        keep += [r, c]
        arr[i].role = r
        arr[i].content = c
    size = 1 << 12
    while True:
        buf = ctypes.create_string_buffer(size)
        res = lc.llama_chat_apply_template(tmpl.encode("utf-8"), arr, n, add_ass, buf, size)
        if res < 0:
            return None
        if res <= size:
            return buf.raw[:res].decode("utf-8")
        size = res + 1


def main():
    llama_cpp = sys.argv[1] if len(sys.argv) > 1 else "/work/shared/reference/llama.cpp"
    os.makedirs(OUT, exist_ok=True)
    cases = read_cases(llama_cpp)
    with open(os.path.join(OUT, "llama_cpp_cases.json"), "w", encoding="utf-8") as f:
        json.dump(cases, f, ensure_ascii=False, indent=1)
        f.write("\n")
    print(f"{len(cases)} cases of test-chat-template.cpp")
    try:
        import llama_cpp as lc
    except ImportError:
        print("llama_cpp not importable: fixtures.json not written")
        return
    convs = conversations()
    n = lc.llama_chat_builtin_templates(None, 0)
    names_arr = (ctypes.c_char_p * n)()
    lc.llama_chat_builtin_templates(names_arr, n)
    names = [x.decode() for x in names_arr]
    templates = [{"template": x, "kind": "name"} for x in names]
    templates += [{"template": c["template"], "kind": "case", "case": c["name"]} for c in cases]
    out_templates = []
    for t in templates:
        outs = []
        for i, msgs in enumerate(convs):
            outs.append([apply(lc, t["template"], msgs, False), apply(lc, t["template"], msgs, True)])
        entry = dict(t)
        entry["outputs"] = outs
        out_templates.append(entry)
    for u in UNKNOWN:
        assert apply(lc, u, convs[0], True) is None, u
    fixture = {
        "llama_cpp_python": lc.__version__,
        "builtin": names,
        "conversations": convs,
        "templates": out_templates,
        "unknown": UNKNOWN,
    }
    with open(os.path.join(OUT, "fixtures.json"), "w", encoding="utf-8") as f:
        json.dump(fixture, f, ensure_ascii=False, separators=(",", ":"))
        f.write("\n")
    print(f"{len(templates)} templates x {len(convs)} conversations x 2, llama-cpp-python {lc.__version__}")


if __name__ == "__main__":
    main()
