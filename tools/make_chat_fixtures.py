#!/usr/bin/env python3
"""Writes the chat-template fixtures tests/chat.rs checks (no Python needed
to run the tests):

  tests/data/chat/llama_cpp_cases.json  the cases of llama.cpp's
      tests/test-chat-template.cpp (model template string, conversation,
      expected output), read out of that file.
  tests/data/chat/fixtures.json  what llama.cpp's llama_chat_apply_template
      renders (through llama-cpp-python's ctypes binding) for every built-in
      template name, over the conversations below, with and without the
      assistant prompt; then for every template string of the cases above,
      of the vocabularies in tests/data/vocab and of the probes below (one
      per rule of llama.cpp's detection chain, and its order) the same, kept
      as the name of the built-in template whose renderings are identical
      ("same_as") or, when none is, in full; and the template strings it
      does not recognise.

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


# Template strings that reach each rule of llama.cpp's detection chain
# (src/llama-chat.cpp, llm_chat_detect_template), and some that test its
# order or miss by a little.
PROBES = [
    "<|im_start|>", "<|im_start|><|im_sep|>", "<|im_start|><end_of_utterance>",
    "mistral", "mistral-x", "x mistral", "[INST]", "[INST]<<SYS>>", "[INST]bos_token + '[INST]",
    "[INST]content.strip()<<SYS>>bos_token + '[INST]", "[INST][SYSTEM_PROMPT]",
    "[INST]' [INST] ' + system_message", "[INST][AVAILABLE_TOOLS]", '[INST][AVAILABLE_TOOLS]"[INST]"',
    '[AVAILABLE_TOOLS] [INST]"[INST]"', "[INST]<|im_start|>",
    "<|assistant|><|end|>", "[gMASK]<sop>", "<|assistant|><|user|><|tool_declare|>",
    "<|assistant|><|user|></s>", "<|assistant|><|user|>", "<|{{ item['role'] }}|><|begin_of_image|>",
    "<|user|><|endoftext|>", "<|assistant|><|end|><|user|><|endoftext|>",
    "bos_token + message['role']", "<start_of_turn>", "<start_of_turn><|start_header_id|><|end_header_id|>",
    "'\\n\\nAssistant: ' + eos_token", "GPT4 Correct ", "USER: ASSISTANT: ", "USER: ASSISTANT: SYSTEM: ",
    "### Instruction:<|EOT|>", "<|START_OF_TURN_TOKEN|><|USER_TOKEN|>",
    "<|start_header_id|><|end_header_id|>", "[gMASK]sop", "<用户>",
    "'Assistant: ' + message['content'] + eos_token", "<｜Assistant｜><｜User｜><｜end▁of▁sentence｜>",
    "[|system|][|assistant|][|endofturn|]", "[|system|][|assistant|][|endofturn|][|tool|]",
    "x rwkv-world", "{{- 'User: ' + message['content']|trim + '\\n\\n' -}}",
    "<|start_of_role|>", "<|start_of_role|><tools>", "<|start_of_role|><tool_call>g4_default_system_message",
    "message['role'] + additional_special_tokens[0] + message['content'] + additional_special_tokens[1]",
    "<|role_start|>", " Ассистент:", "<role>ASSISTANT</role>'HUMAN'",
    '<role>ASSISTANT</role>"HUMAN"<think>', "<role>ASSISTANT</role><role>HUMAN</role><|role_end|>",
    "<|header_start|><|header_end|>", "<|endofuserprompt|>", "<|extra_0|><|extra_4|>",
    "<|start|><|channel|>", "<｜hy_Assistant｜><｜hy_begin▁of▁sentence｜>",
    "<｜hy_Assistant｜><｜hy_place▁holder▁no▁3｜>", "<|im_assistant|>assistant<|im_middle|>",
    "<seed:bos>", "'Assistant: '  + message['content'] + '<|separator|>", "[unused9]系统：[unused10]",
    "<|begin|><|end|><|content|>",
    # Near misses.
    "<|begin|><|end|>", '<role>ASSISTANT</role>"HUMAN"', "<|assistant|>", "<|start_header_id|>",
    "### Instruction:", "USER: ", "[|system|][|assistant|]", "<｜Assistant｜><｜User｜>",
]

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
    def render_all(tmpl):
        return [[apply(lc, tmpl, msgs, False), apply(lc, tmpl, msgs, True)] for msgs in convs]

    by_name = {x: render_all(x) for x in names}
    out_templates = [{"template": x, "outputs": by_name[x]} for x in names]
    others = [(c["template"], "case " + c["name"]) for c in cases]
    try:
        import gguf

        vocab = os.path.join(ROOT, "tests", "data", "vocab")
        for f in sorted(os.listdir(vocab)):
            if f.endswith(".gguf"):
                r = gguf.GGUFReader(os.path.join(vocab, f))
                fld = r.fields.get("tokenizer.chat_template")
                if fld is not None:
                    others.append((bytes(fld.parts[fld.data[0]]).decode("utf-8"), "vocab " + f))
    except ImportError:
        print("gguf not importable: no vocabulary templates")
    others += [(p, "probe") for p in PROBES]
    unknown = list(UNKNOWN)
    n_same = 0
    for tmpl, label in others:
        outs = render_all(tmpl)
        if all(o is None for pair in outs for o in pair):
            unknown.append(tmpl)
            continue
        entry = {"template": tmpl, "label": label}
        same = [x for x in names if by_name[x] == outs]
        if same:
            entry["same_as"] = same[0]
            n_same += 1
        else:
            entry["outputs"] = outs
        out_templates.append(entry)
    for u in unknown:
        assert apply(lc, u, convs[0], True) is None, u
    fixture = {
        "llama_cpp_python": lc.__version__,
        "builtin": names,
        "conversations": convs,
        "templates": out_templates,
        "unknown": unknown,
    }
    with open(os.path.join(OUT, "fixtures.json"), "w", encoding="utf-8") as f:
        json.dump(fixture, f, ensure_ascii=False, separators=(",", ":"))
        f.write("\n")
    print(
        f"{len(out_templates)} templates ({len(names)} names, {n_same} strings rendering as one of them) "
        f"x {len(convs)} conversations x 2, {len(unknown)} unrecognised; llama-cpp-python {lc.__version__}"
    )


if __name__ == "__main__":
    main()
