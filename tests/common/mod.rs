//! Test helpers: a small GGUF writer and seeded random LLaMA models, so that
//! tests can build valid files and precise lies without Python.
#![allow(dead_code)]

pub mod native;

use half::f16;

/// GGUF metadata value type ids.
pub mod vt {
    pub const U8: u32 = 0;
    pub const I8: u32 = 1;
    pub const U16: u32 = 2;
    pub const I16: u32 = 3;
    pub const U32: u32 = 4;
    pub const I32: u32 = 5;
    pub const F32: u32 = 6;
    pub const BOOL: u32 = 7;
    pub const STRING: u32 = 8;
    pub const ARRAY: u32 = 9;
    pub const U64: u32 = 10;
    pub const I64: u32 = 11;
    pub const F64: u32 = 12;
}

/// ggml tensor type ids used here.
pub mod ty {
    pub const F32: u32 = 0;
    pub const F16: u32 = 1;
    pub const Q4_0: u32 = 2;
    /// Blocks of 32 in 18 bytes, like Q4_0; not implemented by nanollama.
    pub const IQ4_NL: u32 = 20;
    pub const Q8_0: u32 = 8;
    pub const BF16: u32 = 30;
}

pub fn gguf_string(s: &[u8]) -> Vec<u8> {
    let mut v = (s.len() as u64).to_le_bytes().to_vec();
    v.extend_from_slice(s);
    v
}

/// One tensor to write: name, dims (ne, fastest first), type id, data bytes.
#[derive(Clone)]
pub struct TensorSpec {
    pub name: String,
    pub dims: Vec<u64>,
    pub ty: u32,
    pub data: Vec<u8>,
}

/// A GGUF file under construction. Values are stored encoded (type id then
/// payload), so a test can write any lie it likes with `kv_raw`.
#[derive(Clone)]
pub struct GgufBuilder {
    pub version: u32,
    pub alignment: u64,
    pub kvs: Vec<(Vec<u8>, u32, Vec<u8>)>,
    pub tensors: Vec<TensorSpec>,
}

impl Default for GgufBuilder {
    fn default() -> Self {
        Self {
            version: 3,
            alignment: 32,
            kvs: Vec::new(),
            tensors: Vec::new(),
        }
    }
}

impl GgufBuilder {
    pub fn kv_raw(&mut self, key: &str, t: u32, payload: Vec<u8>) -> &mut Self {
        self.kvs.retain(|(k, _, _)| k != key.as_bytes());
        self.kvs.push((key.as_bytes().to_vec(), t, payload));
        self
    }
    pub fn kv_u32(&mut self, key: &str, v: u32) -> &mut Self {
        self.kv_raw(key, vt::U32, v.to_le_bytes().to_vec())
    }
    pub fn kv_f32(&mut self, key: &str, v: f32) -> &mut Self {
        self.kv_raw(key, vt::F32, v.to_le_bytes().to_vec())
    }
    pub fn kv_str(&mut self, key: &str, v: &str) -> &mut Self {
        self.kv_raw(key, vt::STRING, gguf_string(v.as_bytes()))
    }
    pub fn kv_str_array(&mut self, key: &str, items: &[&str]) -> &mut Self {
        let mut p = vt::STRING.to_le_bytes().to_vec();
        p.extend_from_slice(&(items.len() as u64).to_le_bytes());
        for s in items {
            p.extend_from_slice(&gguf_string(s.as_bytes()));
        }
        self.kv_raw(key, vt::ARRAY, p)
    }
    pub fn remove_kv(&mut self, key: &str) -> &mut Self {
        self.kvs.retain(|(k, _, _)| k != key.as_bytes());
        self
    }
    pub fn tensor(&mut self, name: &str, dims: &[u64], ty: u32, data: Vec<u8>) -> &mut Self {
        self.tensors.push(TensorSpec {
            name: name.to_string(),
            dims: dims.to_vec(),
            ty,
            data,
        });
        self
    }

    /// The file bytes; tensor offsets are laid out in order, aligned.
    pub fn build(&self) -> Vec<u8> {
        self.build_with(|_, off| off)
    }

    /// Like `build`, but `offset(i, natural)` picks tensor i's recorded offset.
    pub fn build_with(&self, offset: impl Fn(usize, u64) -> u64) -> Vec<u8> {
        let a = self.alignment.max(1);
        let mut f = b"GGUF".to_vec();
        f.extend_from_slice(&self.version.to_le_bytes());
        f.extend_from_slice(&(self.tensors.len() as u64).to_le_bytes());
        f.extend_from_slice(&(self.kvs.len() as u64).to_le_bytes());
        for (k, t, p) in &self.kvs {
            f.extend_from_slice(&gguf_string(k));
            f.extend_from_slice(&t.to_le_bytes());
            f.extend_from_slice(p);
        }
        let mut off = 0u64;
        let mut offsets = Vec::new();
        for (i, t) in self.tensors.iter().enumerate() {
            f.extend_from_slice(&gguf_string(t.name.as_bytes()));
            f.extend_from_slice(&(t.dims.len() as u32).to_le_bytes());
            for d in &t.dims {
                f.extend_from_slice(&d.to_le_bytes());
            }
            f.extend_from_slice(&t.ty.to_le_bytes());
            f.extend_from_slice(&offset(i, off).to_le_bytes());
            offsets.push(off);
            off = (off + t.data.len() as u64).div_ceil(a) * a;
        }
        while !(f.len() as u64).is_multiple_of(a) {
            f.push(0);
        }
        let base = f.len();
        for (t, o) in self.tensors.iter().zip(offsets) {
            f.resize(base + o as usize, 0);
            f.extend_from_slice(&t.data);
        }
        f
    }
}

/// Shape of a test model.
#[derive(Clone, Copy, Debug)]
pub struct TinyConfig {
    pub dim: usize,
    pub n_layers: usize,
    pub n_heads: usize,
    pub n_kv_heads: usize,
    pub ffn: usize,
    pub vocab: usize,
    pub ctx: usize,
    pub tied: bool,
    pub rope_base: f32,
    pub eps: f32,
}

impl Default for TinyConfig {
    fn default() -> Self {
        Self {
            dim: 64,
            n_layers: 2,
            n_heads: 4,
            n_kv_heads: 2,
            ffn: 96,
            vocab: 100,
            ctx: 64,
            tied: false,
            rope_base: 10000.0,
            eps: 1e-5,
        }
    }
}

/// A deterministic generator (xorshift-multiply) for test weights.
pub struct Rng(u64);
impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed.wrapping_mul(0x9E3779B97F4A7C15) | 1)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545F4914F6CDD1D)
    }
    /// Uniform in [-1, 1).
    pub fn uniform(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 / (1u64 << 23) as f32 - 1.0
    }
}

/// Encodes f32 values as tensor data of type `t`.
pub fn encode(t: u32, v: &[f32]) -> Vec<u8> {
    match t {
        ty::F32 => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
        ty::F16 => v
            .iter()
            .flat_map(|x| f16::from_f32(*x).to_bits().to_le_bytes())
            .collect(),
        ty::BF16 => v
            .iter()
            .flat_map(|x| ((x.to_bits() >> 16) as u16).to_le_bytes())
            .collect(),
        ty::Q8_0 => {
            let mut out = Vec::new();
            for b in v.chunks(32) {
                let amax = b.iter().fold(0f32, |m, x| m.max(x.abs()));
                let d = amax / 127.0;
                let id = if d > 0.0 { 1.0 / d } else { 0.0 };
                out.extend_from_slice(&f16::from_f32(d).to_bits().to_le_bytes());
                out.extend(b.iter().map(|x| (x * id).round() as i8 as u8));
            }
            out
        }
        _ => panic!("no encoder for type {t}"),
    }
}

/// A valid seeded random LLaMA GGUF with all 2-D tensors in type `t`.
pub fn tiny_builder(c: &TinyConfig, t: u32, seed: u64) -> GgufBuilder {
    let mut r = Rng::new(seed);
    let hd = c.dim / c.n_heads;
    let mut b = GgufBuilder::default();
    b.kv_str("general.architecture", "llama")
        .kv_u32("llama.embedding_length", c.dim as u32)
        .kv_u32("llama.block_count", c.n_layers as u32)
        .kv_u32("llama.feed_forward_length", c.ffn as u32)
        .kv_u32("llama.attention.head_count", c.n_heads as u32)
        .kv_u32("llama.attention.head_count_kv", c.n_kv_heads as u32)
        .kv_f32("llama.attention.layer_norm_rms_epsilon", c.eps)
        .kv_f32("llama.rope.freq_base", c.rope_base)
        .kv_u32("llama.rope.dimension_count", hd as u32)
        .kv_u32("llama.context_length", c.ctx as u32);
    let mut mat = |b: &mut GgufBuilder, name: &str, rows: usize, cols: usize, scale: f32| {
        let v: Vec<f32> = (0..rows * cols).map(|_| r.uniform() * scale).collect();
        b.tensor(name, &[cols as u64, rows as u64], t, encode(t, &v));
    };
    let s = |n: usize| 1.7 / (n as f32).sqrt();
    mat(&mut b, "token_embd.weight", c.vocab, c.dim, 1.0);
    let mut norm_rng = Rng::new(seed ^ 0xABCD);
    let mut norm = |b: &mut GgufBuilder, name: &str| {
        let v: Vec<f32> = (0..c.dim).map(|_| 1.0 + 0.1 * norm_rng.uniform()).collect();
        b.tensor(name, &[c.dim as u64], ty::F32, encode(ty::F32, &v));
    };
    for l in 0..c.n_layers {
        norm(&mut b, &format!("blk.{l}.attn_norm.weight"));
        mat(
            &mut b,
            &format!("blk.{l}.attn_q.weight"),
            c.n_heads * hd,
            c.dim,
            s(c.dim),
        );
        mat(
            &mut b,
            &format!("blk.{l}.attn_k.weight"),
            c.n_kv_heads * hd,
            c.dim,
            s(c.dim),
        );
        mat(
            &mut b,
            &format!("blk.{l}.attn_v.weight"),
            c.n_kv_heads * hd,
            c.dim,
            s(c.dim),
        );
        mat(
            &mut b,
            &format!("blk.{l}.attn_output.weight"),
            c.dim,
            c.n_heads * hd,
            s(c.dim),
        );
        norm(&mut b, &format!("blk.{l}.ffn_norm.weight"));
        mat(
            &mut b,
            &format!("blk.{l}.ffn_gate.weight"),
            c.ffn,
            c.dim,
            s(c.dim),
        );
        mat(
            &mut b,
            &format!("blk.{l}.ffn_up.weight"),
            c.ffn,
            c.dim,
            s(c.dim),
        );
        mat(
            &mut b,
            &format!("blk.{l}.ffn_down.weight"),
            c.dim,
            c.ffn,
            s(c.ffn),
        );
    }
    norm(&mut b, "output_norm.weight");
    if !c.tied {
        mat(&mut b, "output.weight", c.vocab, c.dim, s(c.dim));
    }
    b
}

/// The bytes of [`tiny_builder`]'s model.
pub fn tiny_model(c: &TinyConfig, t: u32, seed: u64) -> Vec<u8> {
    tiny_builder(c, t, seed).build()
}

/// A 64-byte-aligned zeroed buffer (re-exported for brevity).
#[allow(unused_imports)]
pub use nanollama::host::AlignedBuf;

/// The bit patterns of `v`, to compare floats for identity (NaNs included).
pub fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

/// A model's bytes and the memory of its layer table, which a
/// `nanollama::Model` borrows.
pub struct Fixture {
    bytes: Vec<u8>,
    mem: AlignedBuf,
}

impl Fixture {
    pub fn new(bytes: Vec<u8>) -> Self {
        let mem = AlignedBuf::new(nanollama::Model::size(&bytes).unwrap());
        Fixture { bytes, mem }
    }
    /// [`tiny_model`]'s file.
    pub fn tiny(c: &TinyConfig, t: u32, seed: u64) -> Self {
        Self::new(tiny_model(c, t, seed))
    }
    /// `tests/data/parity/NAME`, made by llama.cpp's quantizer.
    pub fn parity(name: &str) -> Self {
        let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/data/parity")
            .join(name);
        Self::new(std::fs::read(p).unwrap())
    }
    pub fn model(&mut self) -> nanollama::Model<'_> {
        nanollama::Model::init(&self.bytes, self.mem.as_mut_slice()).unwrap()
    }
}

/// The `nanollama` example binary, (re)built once per test binary so that it
/// is never stale (`cargo test --test X` alone does not build examples).
/// Caps the kernels as `NANOLLAMA_KERNELS` says (`scalar` or `avx2`, as for
/// the example program), so that one machine can run a test over the AVX2
/// kernels too: `NANOLLAMA_KERNELS=avx2 cargo test --release --test parity`.
/// Every test of a binary that calls it calls it first.
pub fn kernels_from_env() {
    use nanollama::simd::{limit, Level};
    match std::env::var("NANOLLAMA_KERNELS").as_deref() {
        Ok("scalar") => limit(Level::Scalar),
        Ok("avx2") => limit(Level::Avx2),
        _ => {}
    }
}

pub fn cli_exe() -> std::path::PathBuf {
    static EXE: std::sync::OnceLock<std::path::PathBuf> = std::sync::OnceLock::new();
    EXE.get_or_init(|| {
        let st = std::process::Command::new(env!("CARGO"))
            .args(["build", "--example", "nanollama", "--features", "std"])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .status()
            .unwrap();
        assert!(st.success());
        let deps = std::env::current_exe().unwrap();
        deps.parent()
            .unwrap()
            .parent()
            .unwrap()
            .join("examples/nanollama")
    })
    .clone()
}

/// What `nanollama generate --temp 0 -n N --prompt PROMPT` writes for the
/// shipped model (greedy; the prompt as the model read it, then the text),
/// with `NANOLLAMA_KERNELS` set to `kernels` if given (`scalar`: the
/// reference kernels).
pub fn greedy_text(prompt: &str, n: usize, kernels: Option<&str>) -> String {
    let mut cmd = std::process::Command::new(cli_exe());
    cmd.args([
        "generate",
        "--prompt",
        prompt,
        "-n",
        &n.to_string(),
        "--temp",
        "0",
    ])
    .current_dir(env!("CARGO_MANIFEST_DIR"));
    if let Some(k) = kernels {
        cmd.env("NANOLLAMA_KERNELS", k);
    }
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "nanollama generate: {:?}: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// `text` tokenized by `vocab` with BOS, no special-token parsing.
pub fn tokenize(vocab: &nanollama::tokenizer::Vocab<'_>, text: &str) -> Vec<u32> {
    tokenize_with(vocab, text.as_bytes(), true, false)
}

/// `text` tokenized by `vocab`, with BOS if `bos`, special tokens parsed if
/// `special`.
pub fn tokenize_with(
    vocab: &nanollama::tokenizer::Vocab<'_>,
    text: &[u8],
    bos: bool,
    special: bool,
) -> Vec<u32> {
    let mut scratch =
        AlignedBuf::new(nanollama::tokenizer::Vocab::scratch_size(text.len()).unwrap());
    let mut ids = vec![0u32; text.len() + 2];
    let mut needed = 0;
    let n = vocab
        .tokenize(
            text,
            bos,
            special,
            scratch.as_mut_slice(),
            &mut ids,
            &mut needed,
        )
        .unwrap();
    ids.truncate(n);
    ids
}
