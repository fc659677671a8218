#!/usr/bin/env python3
"""The hostile-file suite: malformed GGUF files made from one valid one.

Run:   python3 tools/make_hostile.py      (needs numpy and gguf)
Writes tests/data/hostile/: `valid.gguf` (a tiny llama model written with the
`gguf` package: dim 8, 2 blocks, 2 heads, 1 KV head, FFN 16, 32 tokens, F32),
one file per lie, and `expected.tsv` (file, the status nanollama must refuse
it with, what the lie is). `tests/hostile.rs` checks every file through the
Rust API and through `nanollama info`.

Each file tells exactly one lie. They are made by parsing the valid file into
its header, metadata entries, tensor records and data, changing one thing and
writing it back (or by patching bytes in place, or by cutting the file), so a
reader that checks only part of a structure meets each lie on its own.
"""
import os
import struct

import numpy as np
import gguf

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
OUT = os.path.join(ROOT, "tests", "data", "hostile")

# GGUF value types
U8, I8, U16, I16, U32, I32, F32, BOOL, STRING, ARRAY, U64, I64, F64 = range(13)
FIXED = {U8: 1, I8: 1, U16: 2, I16: 2, U32: 4, I32: 4, F32: 4, BOOL: 1, U64: 8, I64: 8, F64: 8}
GGML_F32, GGML_F16, GGML_Q8_0, GGML_I8, GGML_I32 = 0, 1, 8, 24, 26


def make_valid():
    rng = np.random.default_rng(7)
    dim, layers, heads, kv_heads, ffn, vocab = 8, 2, 2, 1, 16, 32
    head = dim // heads
    w = gguf.GGUFWriter(os.path.join(OUT, "valid.gguf"), "llama")
    w.add_context_length(64)
    w.add_embedding_length(dim)
    w.add_block_count(layers)
    w.add_feed_forward_length(ffn)
    w.add_head_count(heads)
    w.add_head_count_kv(kv_heads)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_rope_freq_base(10000.0)
    w.add_bool("general.hostile_test", True)
    w.add_tokenizer_model("llama")
    toks = ["<unk>", "<s>", "</s>"] + [chr(ord("a") + i) for i in range(26)] + ["\u2581", "\u2581a", "ab"]
    w.add_token_list(toks)
    w.add_token_scores([-float(i) for i in range(vocab)])
    w.add_token_types([2, 3, 3] + [1] * (vocab - 3))
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)

    def t(name, *shape):  # shape as numpy (rows, cols)
        w.add_tensor(name, (rng.standard_normal(shape) * 0.3).astype(np.float32))

    t("token_embd.weight", vocab, dim)
    for i in range(layers):
        w.add_tensor(f"blk.{i}.attn_norm.weight", np.ones(dim, np.float32))
        t(f"blk.{i}.attn_q.weight", dim, dim)
        t(f"blk.{i}.attn_k.weight", kv_heads * head, dim)
        t(f"blk.{i}.attn_v.weight", kv_heads * head, dim)
        t(f"blk.{i}.attn_output.weight", dim, dim)
        w.add_tensor(f"blk.{i}.ffn_norm.weight", np.ones(dim, np.float32))
        t(f"blk.{i}.ffn_gate.weight", ffn, dim)
        t(f"blk.{i}.ffn_up.weight", ffn, dim)
        t(f"blk.{i}.ffn_down.weight", dim, ffn)
    w.add_tensor("output_norm.weight", np.ones(dim, np.float32))
    t("output.weight", vocab, dim)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return open(os.path.join(OUT, "valid.gguf"), "rb").read()


# --- an independent reader and writer, keeping each structure's offsets ------

class Reader:
    def __init__(self, b):
        self.b, self.p = b, 0

    def take(self, n):
        s = self.b[self.p:self.p + n]
        assert len(s) == n
        self.p += n
        return s

    def u32(self):
        return struct.unpack("<I", self.take(4))[0]

    def u64(self):
        return struct.unpack("<Q", self.take(8))[0]

    def string(self):
        return self.take(self.u64())


def parse(b):
    """Header, metadata [(key, type, raw value, start offset, value offset)],
    tensor records [dict], data offset, alignment."""
    r = Reader(b)
    assert r.take(4) == b"GGUF" and r.u32() == 3
    n_t, n_kv = r.u64(), r.u64()
    kvs = []
    for _ in range(n_kv):
        start = r.p
        key = r.string()
        ty = r.u32()
        vstart = r.p
        skip_value(r, ty)
        kvs.append(dict(key=key, type=ty, raw=b[vstart:r.p], start=start, vstart=vstart, end=r.p))
    tensors = []
    for _ in range(n_t):
        start = r.p
        name = r.string()
        nd = r.u32()
        ne = [r.u64() for _ in range(nd)]
        ty = r.u32()
        off = r.u64()
        tensors.append(dict(name=name, ne=ne, type=ty, offset=off, start=start, end=r.p))
    align = 32
    for kv in kvs:
        if kv["key"] == b"general.alignment":
            align = struct.unpack("<I", kv["raw"])[0]
    data = (r.p + align - 1) // align * align
    return kvs, tensors, r.p, data, align


def skip_value(r, ty):
    if ty == STRING:
        r.string()
    elif ty == ARRAY:
        et, n = r.u32(), r.u64()
        for _ in range(n):
            skip_value(r, et)
    else:
        r.take(FIXED[ty])


def s(x):
    return struct.pack("<Q", len(x)) + x


def serialize(kvs, tensors, data, align=32, version=3, n_tensors=None, n_kv=None):
    """GGUF bytes from records; tensor offsets are written as given."""
    out = b"GGUF" + struct.pack("<IQQ", version, len(tensors) if n_tensors is None else n_tensors,
                                len(kvs) if n_kv is None else n_kv)
    for kv in kvs:
        out += s(kv["key"]) + struct.pack("<I", kv["type"]) + kv["raw"]
    for t in tensors:
        out += s(t["name"]) + struct.pack("<I", len(t["ne"])) + b"".join(struct.pack("<Q", d) for d in t["ne"])
        out += struct.pack("<IQ", t["type"], t["offset"])
    out += b"\0" * ((-len(out)) % align)
    return out + data


def main():
    os.makedirs(OUT, exist_ok=True)
    for f in os.listdir(OUT):
        if f.endswith(".gguf") or f == "expected.tsv":
            os.remove(os.path.join(OUT, f))
    valid = make_valid()
    kvs, tensors, table_end, data_off, align = parse(valid)
    data = valid[data_off:]
    assert serialize(kvs, tensors, data) == valid, "the writer does not round-trip"
    kv_of = {kv["key"].decode(): i for i, kv in enumerate(kvs)}
    t_of = {t["name"].decode(): i for i, t in enumerate(tensors)}
    cases = []

    def emit(name, status, what, b):
        assert b != valid
        with open(os.path.join(OUT, name + ".gguf"), "wb") as f:
            f.write(b)
        cases.append((name + ".gguf", status, what))

    def patch(b, at, fmt, v):
        b = bytearray(b)
        struct.pack_into(fmt, b, at, v)
        return bytes(b)

    def with_kvs(f, **kw):
        k = [dict(kv) for kv in kvs]
        f(k)
        return serialize(k, tensors, data, **kw)

    def with_tensors(f, d=data):
        t = [dict(x, ne=list(x["ne"])) for x in tensors]
        f(t)
        return serialize(kvs, t, d)

    def set_kv(key, ty, raw):
        def f(k):
            i = kv_of[key]
            k[i]["type"], k[i]["raw"] = ty, raw
        return with_kvs(f)

    def u32kv(key, v):
        return set_kv(key, U32, struct.pack("<I", v))

    def add_kv(key, ty, raw):
        key = key if isinstance(key, bytes) else key.encode()
        return with_kvs(lambda k: k.append(dict(key=key, type=ty, raw=raw)))

    def drop_kv(key):
        return with_kvs(lambda k: k.pop(kv_of[key]))

    def tensor(which, **changes):
        return with_tensors(lambda t: t[t_of[which]].update(changes))

    kv_arch = kvs[kv_of["general.architecture"]]
    kv_tokens = kvs[kv_of["tokenizer.ggml.tokens"]]
    t_last = tensors[-1]

    # --- header
    emit("magic", "BadMagic", "magic GGUX", b"GGUX" + valid[4:])
    emit("magic-ggml", "BadMagic", "an old GGML magic", b"lmgg" + valid[4:])
    emit("version-1", "UnsupportedVersion", "version 1", patch(valid, 4, "<I", 1))
    emit("version-big", "UnsupportedVersion", "version 2^32-1", patch(valid, 4, "<I", 2**32 - 1))
    emit("n-kv-2p64", "CountTooLarge", "metadata count 2^64-1", patch(valid, 16, "<Q", 2**64 - 1))
    emit("n-kv-plus-1", "CountTooLarge", "a metadata count one more than the file could hold at 13 bytes an entry",
         patch(valid, 16, "<Q", (len(valid) - 24) // 13 + 1))
    emit("n-tensors-2p64", "CountTooLarge", "tensor count 2^64-1", patch(valid, 8, "<Q", 2**64 - 1))
    emit("n-tensors-2p63", "CountTooLarge", "tensor count 2^63", patch(valid, 8, "<Q", 2**63))
    # --- strings and arrays
    emit("key-len-2p64", "StringPastEnd", "first key's length 2^64-1", patch(valid, 24, "<Q", 2**64 - 1))
    emit("key-len-past-end", "StringPastEnd", "first key's length one past the end of the file",
         patch(valid, 24, "<Q", len(valid) - 32 + 1))
    emit("string-value-past-end", "StringPastEnd", "general.architecture's value longer than the file",
         patch(valid, kv_arch["vstart"], "<Q", len(valid)))
    emit("array-count-2p64", "CountTooLarge", "token array count 2^64-1",
         patch(valid, kv_tokens["vstart"] + 4, "<Q", 2**64 - 1))
    emit("array-count-2p61", "CountTooLarge", "token array count 2^61 (times 8 bytes wraps to 0)",
         patch(valid, kv_tokens["vstart"] + 4, "<Q", 2**61))
    emit("array-string-past-end", "StringPastEnd", "a token's length past the end of the file",
         patch(valid, kv_tokens["vstart"] + 12, "<Q", 2**40))
    scores = kvs[kv_of["tokenizer.ggml.scores"]]
    emit("array-f32-count-2p62", "CountTooLarge", "score array count 2^62 (times 4 bytes wraps to 0)",
         patch(valid, scores["vstart"] + 4, "<Q", 2**62))
    emit("nested-array", "BadMetadata", "an array whose elements are arrays",
         add_kv("x.nested", ARRAY, struct.pack("<IQ", ARRAY, 1) + struct.pack("<IQ", U8, 1) + b"\0"))
    emit("value-type-unknown", "UnknownType", "a metadata value of type 13",
         add_kv("x.unknown", 13, struct.pack("<I", 0)))
    emit("array-elem-type-unknown", "UnknownType", "an array of element type 0xFFFFFFFF",
         add_kv("x.unknown", ARRAY, struct.pack("<IQ", 2**32 - 1, 0)))
    emit("bool-2", "BadMetadata", "a bool that is 2", set_kv("general.hostile_test", BOOL, b"\x02"))
    emit("key-not-utf8", "BadMetadata", "a key that is not UTF-8", add_kv(b"x.\xff", U8, b"\0"))
    emit("duplicate-key", "BadMetadata", "llama.block_count twice",
         with_kvs(lambda k: k.append(dict(k[kv_of["llama.block_count"]]))))
    # --- alignment
    emit("alignment-0", "DataMisaligned", "general.alignment 0", add_kv("general.alignment", U32, struct.pack("<I", 0)))
    emit("alignment-48", "DataMisaligned", "general.alignment 48, not a power of two",
         add_kv("general.alignment", U32, struct.pack("<I", 48)))
    emit("alignment-u64", "BadMetadata", "general.alignment as a u64", add_kv("general.alignment", U64, struct.pack("<Q", 32)))
    emit("tensor-offset-misaligned", "DataMisaligned", "a tensor offset that is not a multiple of 32",
         tensor("blk.0.attn_q.weight", offset=tensors[t_of["blk.0.attn_q.weight"]]["offset"] + 4))
    # --- metadata of the wrong kind
    emit("arch-u32", "BadMetadata", "general.architecture as a u32", set_kv("general.architecture", U32, struct.pack("<I", 1)))
    emit("arch-gpt2", "UnsupportedArchitecture", "general.architecture gpt2",
         set_kv("general.architecture", STRING, s(b"gpt2")))
    emit("arch-missing", "UnsupportedArchitecture", "no general.architecture", drop_kv("general.architecture"))
    emit("dim-string", "BadMetadata", "llama.embedding_length as a string",
         set_kv("llama.embedding_length", STRING, s(b"8")))
    emit("eps-u32", "BadMetadata", "llama.attention.layer_norm_rms_epsilon as a u32",
         u32kv("llama.attention.layer_norm_rms_epsilon", 1))
    emit("tokens-u32", "BadMetadata", "tokenizer.ggml.tokens as an array of u32",
         set_kv("tokenizer.ggml.tokens", ARRAY, struct.pack("<IQ", U32, 32) + b"\0" * 128))
    emit("dim-missing", "MissingKey", "no llama.embedding_length", drop_kv("llama.embedding_length"))
    emit("heads-missing", "MissingKey", "no llama.attention.head_count", drop_kv("llama.attention.head_count"))
    # --- hyper-parameters that cannot be
    emit("heads-not-dividing-dim", "BadHyperparameters", "3 heads over dim 8", u32kv("llama.attention.head_count", 3))
    emit("kv-heads-not-dividing-heads", "BadHyperparameters", "3 KV heads for 2 heads",
         u32kv("llama.attention.head_count_kv", 3))
    emit("kv-heads-0", "BadHyperparameters", "0 KV heads", u32kv("llama.attention.head_count_kv", 0))
    emit("heads-0", "BadHyperparameters", "0 heads", u32kv("llama.attention.head_count", 0))
    emit("layers-2p32", "BadHyperparameters", "block_count 2^32-1", u32kv("llama.block_count", 2**32 - 1))
    emit("dim-2p32", "BadHyperparameters", "embedding_length 2^32-1", u32kv("llama.embedding_length", 2**32 - 1))
    emit("eps-nan", "BadHyperparameters", "rms epsilon NaN",
         set_kv("llama.attention.layer_norm_rms_epsilon", F32, struct.pack("<f", float("nan"))))
    emit("rope-base-negative", "BadHyperparameters", "rope.freq_base -1",
         set_kv("llama.rope.freq_base", F32, struct.pack("<f", -1.0)))
    emit("context-0", "BadHyperparameters", "context_length 0", u32kv("llama.context_length", 0))
    emit("vocab-size-disagrees", "BadHyperparameters", "llama.vocab_size 33 with a 32-row embedding",
         add_kv("llama.vocab_size", U32, struct.pack("<I", 33)))
    emit("tokens-disagree", "BadHyperparameters", "31 tokens with a 32-row embedding",
         with_kvs(lambda k: k[kv_of["tokenizer.ggml.tokens"]].update(
             raw=struct.pack("<IQ", STRING, 31) + k[kv_of["tokenizer.ggml.tokens"]]["raw"][12 + 8 + 5:])))
    emit("layers-too-few", "BadHyperparameters", "block_count 1 with tensors of block 1",
         u32kv("llama.block_count", 1))
    # --- tensor records
    emit("tensor-offset-past-end", "TensorPastEnd", "the last tensor's offset past the end",
         tensor(t_last["name"].decode(), offset=(len(data) + 32) // 32 * 32))
    emit("tensor-offset-wraps", "TensorPastEnd", "an offset that wraps when its size is added",
         tensor("output.weight", offset=2**64 - 32))
    emit("tensor-size-past-end", "TensorPastEnd", "the last tensor 64 rows tall, past the end",
         tensor("output.weight", ne=[8, 64]))
    emit("tensor-overlap", "TensorOverlap", "attn_k's data where attn_q's is",
         tensor("blk.0.attn_k.weight", offset=tensors[t_of["blk.0.attn_q.weight"]]["offset"]))
    emit("tensor-overlap-partial", "TensorOverlap", "ffn_up's data starting inside ffn_gate's",
         tensor("blk.1.ffn_up.weight", offset=tensors[t_of["blk.1.ffn_gate.weight"]]["offset"] + 64))
    emit("dims-overflow", "BadDimensions", "dimensions 2^32 x 2^32 (the product overflows u64)",
         tensor("blk.0.attn_q.weight", ne=[2**32, 2**32]))
    emit("dims-2p62", "BadDimensions", "2^62 elements (bytes overflow i64)", tensor("blk.0.attn_q.weight", ne=[2**31, 2**31]))
    emit("dims-0", "BadDimensions", "a dimension of 0", tensor("blk.0.attn_q.weight", ne=[8, 0]))
    emit("n-dims-0", "BadDimensions", "a tensor with no dimensions", tensor("blk.0.attn_q.weight", ne=[]))
    emit("n-dims-5", "BadDimensions", "a tensor with 5 dimensions", tensor("blk.0.attn_q.weight", ne=[8, 8, 1, 1, 1]))
    emit("q8-row-not-whole-blocks", "BadDimensions", "a Q8_0 tensor with rows of 8 weights (blocks are 32)",
         tensor("blk.0.attn_q.weight", type=GGML_Q8_0))
    emit("tensor-type-unknown", "UnknownType", "tensor type 1000", tensor("blk.0.attn_q.weight", type=1000))
    emit("tensor-type-i32", "UnsupportedTensorType", "an I32 token embedding",
         tensor("token_embd.weight", type=GGML_I32))
    emit("tensor-type-i8", "UnsupportedTensorType", "an I8 attn_q", tensor("blk.0.attn_q.weight", type=GGML_I8))
    emit("norm-f16", "UnsupportedTensorType", "an F16 norm", tensor("output_norm.weight", type=GGML_F16))
    emit("duplicate-tensor", "DuplicateTensor", "two tensors named blk.0.attn_q.weight",
         tensor("blk.0.attn_k.weight", name=b"blk.0.attn_q.weight"))
    emit("tensor-missing", "MissingTensor", "no output_norm.weight",
         with_tensors(lambda t: t.pop(t_of["output_norm.weight"])))
    emit("embedding-missing", "MissingTensor", "no token_embd.weight", tensor("token_embd.weight", name=b"token_emb.weight"))
    emit("tensor-misspelt", "UnexpectedTensor", "output_norm.weight misspelt output_nrm.weight",
         tensor("output_norm.weight", name=b"output_nrm.weight"))
    emit("tensor-shape", "TensorShape", "attn_q 8 x 4 instead of 8 x 8",
         tensor("blk.0.attn_q.weight", ne=[4, 8]))
    emit("tensor-transposed", "TensorShape", "ffn_down 16 x 8 instead of 8 x 16", tensor("blk.0.ffn_down.weight", ne=[8, 16]))
    emit("tensor-name-past-end", "StringPastEnd", "the last tensor's name length past the end",
         patch(valid, t_last["start"], "<Q", 2**63))

    # --- what the engine does not compute: refused, never ignored
    def f32kv(key, v):
        return (key, F32, struct.pack("<f", v))

    def strkv(key, v):
        return (key, STRING, s(v))

    def with_meta(*entries, drop=()):
        def f(k):
            for key in drop:
                k.pop(next(i for i, kv in enumerate(k) if kv["key"] == key.encode()))
            for key, ty, raw in entries:
                k.append(dict(key=key.encode(), type=ty, raw=raw))
        return with_kvs(f)

    def plus_tensor(name, ne, payload, ty=GGML_F32, meta=()):
        """The valid file with one more tensor (its data appended, aligned)
        and metadata entries."""
        t = [dict(x, ne=list(x["ne"])) for x in tensors]
        at = (len(data) + align - 1) // align * align
        t.append(dict(name=name.encode(), ne=ne, type=ty, offset=at))
        k = [dict(kv) for kv in kvs] + [dict(key=key.encode(), type=vt, raw=raw) for key, vt, raw in meta]
        return serialize(k, t, data + b"\0" * (at - len(data)) + payload)

    yarn = strkv("llama.rope.scaling.type", b"yarn")
    emit("rope-scaling-longrope", "UnsupportedRopeScaling", "rope.scaling.type longrope",
         with_meta(strkv("llama.rope.scaling.type", b"longrope")))
    emit("rope-scaling-unknown", "UnsupportedRopeScaling", "rope.scaling.type dynamic",
         with_meta(strkv("llama.rope.scaling.type", b"dynamic")))
    emit("rope-scaling-type-u32", "BadMetadata", "rope.scaling.type as a u32",
         with_meta(("llama.rope.scaling.type", U32, struct.pack("<I", 1))))
    emit("rope-factor-0", "UnsupportedRopeScaling", "linear scaling with factor 0",
         with_meta(strkv("llama.rope.scaling.type", b"linear"), f32kv("llama.rope.scaling.factor", 0.0)))
    emit("rope-factor-negative", "UnsupportedRopeScaling", "rope.scaling.factor -4 (no type: linear)",
         with_meta(f32kv("llama.rope.scaling.factor", -4.0)))
    emit("rope-factor-nan", "UnsupportedRopeScaling", "YaRN with factor NaN",
         with_meta(yarn, f32kv("llama.rope.scaling.factor", float("nan"))))
    emit("rope-scale-linear-inf", "UnsupportedRopeScaling", "the old rope.scale_linear key +inf",
         with_meta(f32kv("llama.rope.scale_linear", float("inf"))))
    emit("rope-attn-factor-0", "UnsupportedRopeScaling", "rope.scaling.attn_factor 0",
         with_meta(f32kv("llama.rope.scaling.attn_factor", 0.0)))
    emit("rope-orig-ctx-0", "UnsupportedRopeScaling", "YaRN with original_context_length 0",
         with_meta(yarn, f32kv("llama.rope.scaling.factor", 4.0),
                   ("llama.rope.scaling.original_context_length", U32, struct.pack("<I", 0))))
    emit("rope-yarn-beta-fast", "UnsupportedRopeScaling", "yarn_beta_fast 16 (llama.cpp uses 32 for llama)",
         with_meta(yarn, f32kv("llama.rope.scaling.factor", 4.0), f32kv("llama.rope.scaling.yarn_beta_fast", 16.0)))
    emit("rope-yarn-ext-factor", "UnsupportedRopeScaling", "yarn_ext_factor 0.5",
         with_meta(yarn, f32kv("llama.rope.scaling.factor", 4.0), f32kv("llama.rope.scaling.yarn_ext_factor", 0.5)))
    emit("rope-yarn-log-multiplier", "UnsupportedRopeScaling", "yarn_log_multiplier 0.1 (DeepSeek's mscale)",
         with_meta(yarn, f32kv("llama.rope.scaling.factor", 4.0),
                   f32kv("llama.rope.scaling.yarn_log_multiplier", 0.1)))
    emit("rope-sections", "UnsupportedRopeScaling", "rope.dimension_sections [2, 0, 0, 0] (M-RoPE)",
         with_meta(("llama.rope.dimension_sections", ARRAY, struct.pack("<IQ", I32, 4) + struct.pack("<4i", 2, 0, 0, 0))))
    emit("rope-freqs-zero", "UnsupportedRopeScaling", "rope_freqs factors with a 0",
         plus_tensor("rope_freqs.weight", [2], struct.pack("<2f", 1.0, 0.0)))
    emit("rope-freqs-nan", "UnsupportedRopeScaling", "rope_freqs factors with a NaN",
         plus_tensor("rope_freqs.weight", [2], struct.pack("<2f", float("nan"), 1.0)))
    emit("rope-freqs-shape", "TensorShape", "rope_freqs of 4 factors for 2 pairs",
         plus_tensor("rope_freqs.weight", [4], struct.pack("<4f", 1, 1, 1, 1)))
    emit("rope-freqs-f16", "UnsupportedTensorType", "rope_freqs in F16",
         plus_tensor("rope_freqs.weight", [2], struct.pack("<2e", 1, 1), ty=GGML_F16))
    emit("rope-factors-long", "UnsupportedRopeScaling", "LongRoPE's rope_factors_long tensor",
         plus_tensor("rope_factors_long.weight", [2], struct.pack("<2f", 1, 2)))
    emit("expert-count", "UnsupportedExperts", "expert_count 8",
         with_meta(("llama.expert_count", U32, struct.pack("<I", 8))))
    emit("expert-used-count", "UnsupportedExperts", "expert_used_count 2",
         with_meta(("llama.expert_used_count", U32, struct.pack("<I", 2))))
    emit("expert-router", "UnsupportedExperts", "a router tensor blk.0.ffn_gate_inp.weight",
         plus_tensor("blk.0.ffn_gate_inp.weight", [8, 4], b"\0" * 128))
    emit("expert-tensor", "UnsupportedExperts", "an expert tensor blk.1.ffn_up_exps.weight",
         plus_tensor("blk.1.ffn_up_exps.weight", [8, 16, 2], b"\0" * 1024))
    emit("softcap-attn", "UnsupportedSoftcap", "attn_logit_softcapping 50",
         with_meta(f32kv("llama.attn_logit_softcapping", 50.0)))
    emit("softcap-final", "UnsupportedSoftcap", "final_logit_softcapping 30",
         with_meta(f32kv("llama.final_logit_softcapping", 30.0)))
    emit("tensor-unknown", "UnexpectedTensor", "a block tensor the engine does not compute (attn_q_norm)",
         plus_tensor("blk.0.attn_q_norm.weight", [4], b"\0" * 16))
    emit("tensor-unknown-global", "UnexpectedTensor", "a tensor named foo",
         plus_tensor("foo", [4], b"\0" * 16))
    emit("bias-output-llama", "UnexpectedTensor", "output.bias, which llama does not have",
         plus_tensor("output.bias", [32], b"\0" * 128))
    emit("bias-shape", "TensorShape", "attn_k.bias of 8 for a KV width of 4",
         plus_tensor("blk.0.attn_k.bias", [8], b"\0" * 32))
    emit("bias-f16", "UnsupportedTensorType", "an F16 ffn_gate.bias",
         plus_tensor("blk.0.ffn_gate.bias", [16], b"\0" * 32, ty=GGML_F16))
    emit("attention-scale", "UnsupportedHyperparameter", "attention.scale 0.25 (the engine uses 1/sqrt(4))",
         with_meta(f32kv("llama.attention.scale", 0.25)))
    emit("logit-scale", "UnsupportedHyperparameter", "logit_scale 2", with_meta(f32kv("llama.logit_scale", 2.0)))
    emit("sliding-window", "UnsupportedHyperparameter", "attention.sliding_window 16",
         with_meta(("llama.attention.sliding_window", U32, struct.pack("<I", 16))))
    emit("non-causal", "UnsupportedHyperparameter", "attention.causal false",
         with_meta(("llama.attention.causal", BOOL, b"\0")))
    # The same keys with the values the engine computes anyway load; and the
    # file as qwen2 (keys renamed) loads, without what qwen2 does not have.
    emit("neutral-keys", "Ok", "expert_count 0, softcapping 0, causal, scaling none, scales 1 and 1/sqrt(4)",
         with_meta(("llama.expert_count", U32, struct.pack("<I", 0)), f32kv("llama.attn_logit_softcapping", 0.0),
                   ("llama.attention.causal", BOOL, b"\1"), strkv("llama.rope.scaling.type", b"none"),
                   f32kv("llama.rope.scaling.factor", 8.0), f32kv("llama.logit_scale", 1.0),
                   f32kv("llama.attention.scale", 0.5), f32kv("llama.rope.scaling.yarn_beta_fast", 32.0)))
    emit("scaled-rope", "Ok", "YaRN (factor 4, original context 16), attn_factor 0.9, and rope_freqs",
         plus_tensor("rope_freqs.weight", [2], struct.pack("<2f", 1.0, 4.0),
                     meta=[yarn, f32kv("llama.rope.scaling.factor", 4.0), f32kv("llama.rope.scaling.attn_factor", 0.9),
                           ("llama.rope.scaling.original_context_length", U32, struct.pack("<I", 16))]))

    def as_qwen2(k):
        for kv in k:
            if kv["key"].startswith(b"llama."):
                kv["key"] = b"qwen2." + kv["key"][len(b"llama."):]
            if kv["key"] == b"general.architecture":
                kv["raw"] = s(b"qwen2")
    qwen2 = [dict(kv) for kv in kvs]
    as_qwen2(qwen2)
    emit("qwen2", "Ok", "the valid file as qwen2", serialize(qwen2, tensors, data))

    def qwen2_plus(name, ne, payload):
        t = [dict(x, ne=list(x["ne"])) for x in tensors]
        at = (len(data) + align - 1) // align * align
        t.append(dict(name=name.encode(), ne=ne, type=GGML_F32, offset=at))
        return serialize(qwen2, t, data + b"\0" * (at - len(data)) + payload)
    emit("qwen2-bias-o", "UnexpectedTensor", "qwen2 with attn_output.bias (llama.cpp's qwen2 has none)",
         qwen2_plus("blk.0.attn_output.bias", [8], b"\0" * 32))
    emit("qwen2-rope-freqs", "UnexpectedTensor", "qwen2 with rope_freqs (llama.cpp's qwen2 reads none)",
         qwen2_plus("rope_freqs.weight", [2], struct.pack("<2f", 1, 1)))
    emit("qwen2-expert-count", "UnsupportedExperts", "qwen2 with expert_count 4 (a qwen2moe file's key)",
         serialize(qwen2 + [dict(key=b"qwen2.expert_count", type=U32, raw=struct.pack("<I", 4))], tensors, data))

    # --- cut at each structural boundary (the status of the structure cut)
    last_kv = kvs[-1]
    cuts = [
        ("magic", 2, "Truncated"), ("version", 6, "Truncated"), ("tensor-count", 12, "Truncated"),
        ("metadata-count", 20, "Truncated"), ("after-header", 24, "CountTooLarge"),
        ("key-length", last_kv["start"] + 4, "Truncated"), ("key", last_kv["start"] + 9, "StringPastEnd"),
        ("value-type", last_kv["vstart"] - 2, "Truncated"), ("scalar-value", last_kv["vstart"] + 2, "Truncated"),
        ("string-value", kvs[kv_of["tokenizer.ggml.model"]]["vstart"] + 10, "StringPastEnd"),
        ("metadata-count-check", kv_arch["vstart"] + 10, "CountTooLarge"),
        ("after-metadata", kvs[-1]["end"], "CountTooLarge"),
        ("tensor-name", t_last["start"] + 10, "StringPastEnd"),
        ("tensor-n-dims", t_last["start"] + 8 + len(t_last["name"]) + 2, "Truncated"),
        ("tensor-dims", t_last["end"] - 20, "Truncated"),
        ("tensor-type", t_last["end"] - 10, "Truncated"),
        ("tensor-offset", t_last["end"] - 4, "Truncated"),
        ("padding", table_end + 1, "TensorPastEnd") if data_off > table_end + 1 else None,
        ("data-start", data_off, "TensorPastEnd"),
        ("last-byte", len(valid) - 1, "TensorPastEnd"),
    ]
    for c in filter(None, cuts):
        name, at, status = c
        assert 0 < at < len(valid)
        emit("cut-" + name, status, f"cut at byte {at} (in the {name.replace('-', ' ')})", valid[:at])

    with open(os.path.join(OUT, "expected.tsv"), "w") as f:
        f.write("# file\tstatus\tthe lie (made by tools/make_hostile.py)\n")
        f.write("valid.gguf\tOk\tthe valid file they are made from\n")
        for c in cases:
            f.write("\t".join(c) + "\n")
    print(f"{len(cases)} hostile files in {OUT}")


if __name__ == "__main__":
    main()
