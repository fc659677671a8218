//! The model: validated hyper-parameters ([`Config`]) and typed views into the
//! caller's GGUF bytes, one per tensor ([`Model`]).
//!
//! Per-layer tensor locations are kept in a small table of plain records
//! ([`LayerRecord`]) in caller memory, sized by [`Model::size`]; the weights
//! themselves are never copied.

use crate::error::{Error, Result};
use crate::gguf::{Gguf, TensorInfo, Value};
pub use crate::kernels::RopeParams;
use crate::quant::WeightType;

/// Alignment that every caller buffer must have.
pub const ALIGN: usize = 64;

/// `n` rounded up to a multiple of [`ALIGN`] (None on overflow): the size of
/// one region of a caller buffer.
pub(crate) fn round_up(n: usize) -> Option<usize> {
    n.checked_add(ALIGN - 1).map(|v| v / ALIGN * ALIGN)
}

/// Bytes of regions laid out one after another, each rounded up to
/// [`ALIGN`] (None on overflow).
pub(crate) fn padded_total(parts: &[usize]) -> Option<usize> {
    parts
        .iter()
        .try_fold(0usize, |acc, &p| acc.checked_add(round_up(p)?))
}

/// Largest accepted embedding, feed-forward or vocabulary size; keeps all size
/// arithmetic far from overflow on 32-bit targets too.
const MAX_DIM: usize = 1 << 20;
/// Largest accepted layer and head count.
const MAX_LAYERS: usize = 1 << 12;

/// The variants of the LLaMA block this build computes
/// (`general.architecture`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arch {
    /// `llama`: LLaMA 1/2/3, Mistral-style GQA models, SmolLM, TinyLlama.
    /// RoPE on adjacent pairs; optional biases on every projection and
    /// `rope_freqs` factors.
    Llama,
    /// `qwen2`: Qwen2, Qwen2.5, DeepSeek-R1-Distill-Qwen. The LLaMA block
    /// with (optional) Q/K/V biases and an optional output bias; NEOX RoPE
    /// (dimension `i` pairs with `i + rope_dim / 2`).
    Qwen2,
}

impl Arch {
    /// The `general.architecture` string, also the prefix of its keys.
    pub fn name(self) -> &'static str {
        match self {
            Arch::Llama => "llama",
            Arch::Qwen2 => "qwen2",
        }
    }
    fn from_name(s: &[u8]) -> Option<Self> {
        match s {
            b"llama" => Some(Arch::Llama),
            b"qwen2" => Some(Arch::Qwen2),
            _ => None,
        }
    }
    /// True when RoPE pairs dimension `i` with `i + rope_dim / 2` (llama.cpp's
    /// LLAMA_ROPE_TYPE_NEOX) rather than `2i` with `2i + 1`.
    pub fn neox_rope(self) -> bool {
        self == Arch::Qwen2
    }
    /// Whether per-block tensor `k` (see [`slot`]) may be in a file of this
    /// architecture: the nine LLaMA matrices and norms always, biases as
    /// llama.cpp loads them (`llama`: all seven, `qwen2`: Q, K and V).
    fn has_layer_tensor(self, k: usize) -> bool {
        match self {
            Arch::Llama => k < LAYER_TENSORS.len(),
            Arch::Qwen2 => k < slot::BIAS_O,
        }
    }
}

/// RoPE scaling (`{arch}.rope.scaling.type`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RopeScalingType {
    /// Plain RoPE (no type and no factor, or `none`).
    None,
    /// `linear`: positions divided by the factor (also a factor without a
    /// type, as llama.cpp reads it).
    Linear,
    /// `yarn`: YaRN's ramp between interpolated and extrapolated angles and
    /// its magnitude scale.
    Yarn,
}

/// RoPE as the file states it, validated. The YaRN ramp uses llama.cpp's
/// `beta_fast` 32 and `beta_slow` 1 (files that say otherwise are refused).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RopeScaling {
    pub kind: RopeScalingType,
    /// `rope.scaling.factor` (1 when plain): angles are divided by it.
    pub factor: f32,
    /// `rope.scaling.attn_factor` (default 1): cos and sin are multiplied by
    /// it (and by YaRN's `1 + 0.1 ln(factor)`).
    pub attn_factor: f32,
    /// `rope.scaling.original_context_length` (default the training
    /// context): where YaRN's ramp lies.
    pub n_ctx_orig: usize,
}

/// Hyper-parameters of a LLaMA-family model, validated.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Config {
    /// Which variant of the block (`general.architecture`); the keys below
    /// are under its name (`llama.`, `qwen2.`).
    pub arch: Arch,
    /// Embedding width (`llama.embedding_length`).
    pub dim: usize,
    /// Number of blocks (`llama.block_count`).
    pub n_layers: usize,
    /// Query heads (`llama.attention.head_count`).
    pub n_heads: usize,
    /// Key/value heads (`llama.attention.head_count_kv`, default `n_heads`).
    pub n_kv_heads: usize,
    /// Width of one head (`llama.attention.key_length`, default `dim / n_heads`).
    pub head_dim: usize,
    /// Hidden width of the feed-forward (`llama.feed_forward_length`).
    pub ffn_dim: usize,
    /// Vocabulary size (rows of `token_embd`).
    pub n_vocab: usize,
    /// Context length the model was trained with (`llama.context_length`).
    pub n_ctx_train: usize,
    /// Dimensions rotated per head (`llama.rope.dimension_count`, default `head_dim`).
    pub rope_dim: usize,
    /// RoPE base (`llama.rope.freq_base`, default 10000).
    pub rope_base: f32,
    /// RMSNorm epsilon (`llama.attention.layer_norm_rms_epsilon`).
    pub rms_eps: f32,
    /// RoPE scaling (`llama.rope.scaling.*`).
    pub rope_scaling: RopeScaling,
}

impl Config {
    /// Width of all query heads together.
    pub fn q_dim(&self) -> usize {
        self.n_heads * self.head_dim
    }
    /// Width of all key (or value) heads together.
    pub fn kv_dim(&self) -> usize {
        self.n_kv_heads * self.head_dim
    }

    /// Reads and validates the hyper-parameters of a `llama` or `qwen2` GGUF
    /// file, refusing keys that ask for arithmetic the engine does not do.
    pub fn from_gguf(g: &Gguf<'_>) -> Result<Self> {
        let arch = g
            .get("general.architecture")
            .ok_or(Error::UnsupportedArchitecture)?;
        let arch = arch.as_bytes().ok_or(Error::BadMetadata)?;
        let arch = Arch::from_name(arch).ok_or(Error::UnsupportedArchitecture)?;
        let a = arch.name();
        let int = |k: &str| -> Result<Option<usize>> {
            match g.get2(a, k) {
                None => Ok(None),
                Some(v) => {
                    let n = v.as_u64().ok_or(Error::BadMetadata)?;
                    Ok(Some(
                        usize::try_from(n).map_err(|_| Error::BadHyperparameters)?,
                    ))
                }
            }
        };
        let float = |k: &str| -> Result<Option<f32>> {
            match g.get2(a, k) {
                None => Ok(None),
                Some(v) => Ok(Some(v.as_f32().ok_or(Error::BadMetadata)?)),
            }
        };
        let dim = int("embedding_length")?.ok_or(Error::MissingKey)?;
        let n_layers = int("block_count")?.ok_or(Error::MissingKey)?;
        let ffn_dim = int("feed_forward_length")?.ok_or(Error::MissingKey)?;
        let n_heads = int("attention.head_count")?.ok_or(Error::MissingKey)?;
        let n_kv_heads = int("attention.head_count_kv")?.unwrap_or(n_heads);
        let rms_eps = float("attention.layer_norm_rms_epsilon")?.ok_or(Error::MissingKey)?;
        let rope_base = float("rope.freq_base")?.unwrap_or(10000.0);
        let n_ctx_train = int("context_length")?.ok_or(Error::MissingKey)?;

        let bad = Error::BadHyperparameters;
        if dim == 0 || dim > MAX_DIM || ffn_dim == 0 || ffn_dim > MAX_DIM {
            return Err(bad);
        }
        if n_layers == 0 || n_layers > MAX_LAYERS || n_heads == 0 || n_heads > MAX_LAYERS {
            return Err(bad);
        }
        if n_kv_heads == 0 || n_heads % n_kv_heads != 0 {
            return Err(bad);
        }
        let head_dim = match int("attention.key_length")? {
            Some(k) => k,
            None if dim % n_heads == 0 => dim / n_heads,
            None => return Err(bad),
        };
        if let Some(v) = int("attention.value_length")? {
            if v != head_dim {
                return Err(bad);
            }
        }
        if head_dim == 0 || head_dim % 2 != 0 || head_dim > MAX_DIM || n_heads * head_dim > MAX_DIM
        {
            return Err(bad);
        }
        let rope_dim = int("rope.dimension_count")?.unwrap_or(head_dim);
        if rope_dim % 2 != 0 || rope_dim > head_dim {
            return Err(bad);
        }
        let positive = |v: f32| v.is_finite() && v > 0.0;
        if !positive(rms_eps) || !positive(rope_base) {
            return Err(bad);
        }
        if n_ctx_train == 0 || n_ctx_train > MAX_DIM * 16 {
            return Err(bad);
        }
        // The vocabulary size comes from the embedding table; every other
        // statement of it must agree.
        let embd = g.tensor("token_embd.weight").ok_or(Error::MissingTensor)?;
        let n_vocab = usize::try_from(embd.ne[1]).map_err(|_| Error::TensorShape)?;
        if n_vocab == 0 || n_vocab > MAX_DIM * 4 {
            return Err(Error::TensorShape);
        }
        if let Some(v) = int("vocab_size")? {
            if v != n_vocab {
                return Err(bad);
            }
        }
        match g.get("tokenizer.ggml.tokens") {
            None => {}
            Some(Value::Array(a)) if a.elem_type() == crate::gguf::ValueType::String => {
                let agrees = a.len() == n_vocab;
                agrees.then_some(()).ok_or(bad)?;
            }
            Some(_) => return Err(Error::BadMetadata),
        }
        refuse_unsupported_keys(g, arch, head_dim)?;
        let rope_scaling = rope_scaling(g, arch, n_ctx_train)?;
        Ok(Config {
            arch,
            dim,
            n_layers,
            n_heads,
            n_kv_heads,
            head_dim,
            ffn_dim,
            n_vocab,
            n_ctx_train,
            rope_dim,
            rope_base,
            rms_eps,
            rope_scaling,
        })
    }

    /// The RoPE arithmetic of this model (`factors`: the `rope_freqs`
    /// tensor's little-endian f32 bytes, empty if none).
    pub fn rope<'f>(&self, factors: &'f [u8]) -> RopeParams<'f> {
        let r = &self.rope_scaling;
        let n_rot = self.rope_dim;
        let base = self.rope_base as f64;
        let factor = r.factor as f64;
        let yarn = r.kind == RopeScalingType::Yarn;
        // ggml's YaRN correction dimensions (ggml_rope_yarn_corr_dims).
        let corr = |beta: f64| {
            n_rot as f64 * libm::log(r.n_ctx_orig as f64 / (beta * 2.0 * core::f64::consts::PI))
                / (2.0 * libm::log(base))
        };
        let low = libm::floor(corr(YARN_BETA_FAST)).max(0.0);
        let high = libm::ceil(corr(YARN_BETA_SLOW)).min(n_rot as f64 - 1.0);
        // llama.cpp's magnitude: attn_factor, times YaRN's 1 + 0.1 ln(factor)
        // when the factor stretches (its context divides ggml's factor back
        // out below 1).
        let mut mscale = r.attn_factor as f64;
        if yarn && factor > 1.0 {
            mscale *= 1.0 + 0.1 * libm::log(factor);
        }
        RopeParams {
            n_rot,
            base,
            freq_scale: 1.0 / factor,
            ext_factor: if yarn { 1.0 } else { 0.0 },
            corr: [low, high],
            mscale,
            neox: self.arch.neox_rope(),
            factors,
        }
    }
}

/// llama.cpp's YaRN ramp bounds (its defaults; other values are refused).
const YARN_BETA_FAST: f64 = 32.0;
const YARN_BETA_SLOW: f64 = 1.0;

/// A number from a metadata value: integers, floats, and bools (0 or 1).
fn number(v: &Value<'_>) -> Option<f64> {
    match *v {
        Value::Bool(b) => Some(b as u8 as f64),
        Value::F32(x) => Some(x as f64),
        Value::F64(x) => Some(x),
        Value::I8(x) => Some(x as f64),
        Value::I16(x) => Some(x as f64),
        Value::I32(x) => Some(x as f64),
        Value::I64(x) => Some(x as f64),
        _ => v.as_u64().map(|x| x as f64),
    }
}

/// Which values of a refused key compute what the engine computes anyway.
#[derive(Clone, Copy)]
enum Neutral {
    /// 0 (absent, off).
    Zero,
    /// 0 (unset) or 1 (a multiplier of one).
    ZeroOrOne,
    /// 1 (true).
    One,
    /// 0 (unset) or `1/sqrt(head_dim)` (the scale the engine uses).
    AttnScale,
}

/// Keys (after `{arch}.`) that llama.cpp reads for some LLaMA-family model
/// and that change the arithmetic, with the status a file gets when one has
/// a value other than the neutral one. Keys that begin with `expert_`,
/// `experts_` or `moe_` are refused as experts too (see
/// [`refuse_unsupported_keys`]).
const REFUSED_KEYS: &[(&str, Neutral, Error)] = &[
    (
        "attn_logit_softcapping",
        Neutral::Zero,
        Error::UnsupportedSoftcap,
    ),
    (
        "final_logit_softcapping",
        Neutral::Zero,
        Error::UnsupportedSoftcap,
    ),
    (
        "router_logit_softcapping",
        Neutral::Zero,
        Error::UnsupportedSoftcap,
    ),
    (
        "interleave_moe_layer_step",
        Neutral::Zero,
        Error::UnsupportedExperts,
    ),
    (
        "leading_dense_block_count",
        Neutral::Zero,
        Error::UnsupportedExperts,
    ),
    (
        "rope.dimension_sections",
        Neutral::Zero,
        Error::UnsupportedRopeScaling,
    ),
    (
        "rope.scaling.alpha",
        Neutral::Zero,
        Error::UnsupportedRopeScaling,
    ),
    (
        "rope.scaling.yarn_log_multiplier",
        Neutral::Zero,
        Error::UnsupportedRopeScaling,
    ),
    (
        "attention.scale",
        Neutral::AttnScale,
        Error::UnsupportedHyperparameter,
    ),
    (
        "logit_scale",
        Neutral::ZeroOrOne,
        Error::UnsupportedHyperparameter,
    ),
    (
        "embedding_scale",
        Neutral::ZeroOrOne,
        Error::UnsupportedHyperparameter,
    ),
    (
        "residual_scale",
        Neutral::ZeroOrOne,
        Error::UnsupportedHyperparameter,
    ),
    (
        "attention.sliding_window",
        Neutral::Zero,
        Error::UnsupportedHyperparameter,
    ),
    (
        "attention.sliding_window_pattern",
        Neutral::Zero,
        Error::UnsupportedHyperparameter,
    ),
    (
        "attention.causal",
        Neutral::One,
        Error::UnsupportedHyperparameter,
    ),
    (
        "attention.clamp_kqv",
        Neutral::Zero,
        Error::UnsupportedHyperparameter,
    ),
    (
        "attention.max_alibi_bias",
        Neutral::Zero,
        Error::UnsupportedHyperparameter,
    ),
    (
        "attention.temperature_scale",
        Neutral::Zero,
        Error::UnsupportedHyperparameter,
    ),
    (
        "attention.value_scale",
        Neutral::Zero,
        Error::UnsupportedHyperparameter,
    ),
    (
        "attention.output_scale",
        Neutral::Zero,
        Error::UnsupportedHyperparameter,
    ),
    (
        "attention.shared_kv_layers",
        Neutral::Zero,
        Error::UnsupportedHyperparameter,
    ),
    (
        "use_parallel_residual",
        Neutral::Zero,
        Error::UnsupportedHyperparameter,
    ),
    (
        "nextn_predict_layers",
        Neutral::Zero,
        Error::UnsupportedHyperparameter,
    ),
    (
        "swiglu_clamp_exp",
        Neutral::Zero,
        Error::UnsupportedHyperparameter,
    ),
];

/// Refuses the keys of [`REFUSED_KEYS`] (and the expert keys) whose value is
/// not neutral: an array is neutral when every element is, a string never.
fn refuse_unsupported_keys(g: &Gguf<'_>, arch: Arch, head_dim: usize) -> Result<()> {
    let prefix = arch.name().as_bytes();
    let attn_scale = 1.0 / libm::sqrt(head_dim as f64);
    for (key, v) in g.metadata() {
        let Some(k) = key.strip_prefix(prefix).and_then(|k| k.strip_prefix(b".")) else {
            continue;
        };
        let experts = [&b"expert_"[..], b"experts_", b"moe_"]
            .iter()
            .any(|p| k.starts_with(p));
        let (neutral, status) = if experts {
            (Neutral::Zero, Error::UnsupportedExperts)
        } else {
            match REFUSED_KEYS.iter().find(|r| r.0.as_bytes() == k) {
                Some(&(_, n, e)) => (n, e),
                None => continue,
            }
        };
        let ok = |x: f64| match neutral {
            Neutral::Zero => x == 0.0,
            Neutral::ZeroOrOne => x == 0.0 || x == 1.0,
            Neutral::One => x == 1.0,
            Neutral::AttnScale => x == 0.0 || libm::fabs(x / attn_scale - 1.0) < 1e-6,
        };
        let neutral_value = match v {
            Value::Array(a) => a.iter().all(|e| number(&e).is_some_and(ok)),
            v => number(&v).is_some_and(ok),
        };
        if !neutral_value {
            return Err(status);
        }
    }
    Ok(())
}

/// Reads `{arch}.rope.scaling.*` as llama.cpp does: a missing type with a
/// factor is linear, `none` ignores the factor, `rope.scale_linear` is the
/// old name of the factor, `attn_factor` scales in every mode. Refuses other
/// types (`longrope`, ...), YaRN parameters other than llama.cpp's (which it
/// does not read for these architectures), and factors that are not finite
/// and positive.
fn rope_scaling(g: &Gguf<'_>, arch: Arch, n_ctx_train: usize) -> Result<RopeScaling> {
    let a = arch.name();
    let bad = Error::UnsupportedRopeScaling;
    let float = |k: &str| -> Result<Option<f32>> {
        match g.get2(a, k) {
            None => Ok(None),
            Some(v) => Ok(Some(v.as_f32().ok_or(Error::BadMetadata)?)),
        }
    };
    let positive = |v: Option<f32>| match v {
        Some(x) if !(x.is_finite() && x > 0.0) => Err(bad),
        _ => Ok(v),
    };
    let kind = match g.get2(a, "rope.scaling.type") {
        None => None,
        Some(v) => Some(match v.as_bytes().ok_or(Error::BadMetadata)? {
            b"none" => RopeScalingType::None,
            b"linear" => RopeScalingType::Linear,
            b"yarn" => RopeScalingType::Yarn,
            _ => return Err(bad),
        }),
    };
    let factor = match positive(float("rope.scaling.factor")?)? {
        Some(f) => Some(f),
        None => positive(float("rope.scale_linear")?)?,
    };
    let attn_factor = positive(float("rope.scaling.attn_factor")?)?.unwrap_or(1.0);
    let kind = match (kind, factor) {
        (Some(k), _) => k,
        (None, Some(_)) => RopeScalingType::Linear,
        (None, None) => RopeScalingType::None,
    };
    let yarn = kind == RopeScalingType::Yarn;
    // llama.cpp's values for the YaRN parameters of these architectures:
    // a file that states others asks for something else.
    for (key, default) in [
        ("rope.scaling.yarn_ext_factor", if yarn { 1.0 } else { 0.0 }),
        ("rope.scaling.yarn_attn_factor", 1.0),
        ("rope.scaling.yarn_beta_fast", YARN_BETA_FAST as f32),
        ("rope.scaling.yarn_beta_slow", YARN_BETA_SLOW as f32),
    ] {
        if float(key)?.is_some_and(|v| v != default) {
            return Err(bad);
        }
    }
    let n_ctx_orig = match g.get2(a, "rope.scaling.original_context_length") {
        None => n_ctx_train,
        Some(v) => {
            let n = v.as_u64().ok_or(Error::BadMetadata)?;
            match usize::try_from(n) {
                Ok(n) if n > 0 && n <= MAX_DIM * 16 => n,
                _ => return Err(bad),
            }
        }
    };
    let factor = match kind {
        RopeScalingType::None => 1.0,
        _ => factor.unwrap_or(1.0),
    };
    Ok(RopeScaling {
        kind,
        factor,
        attn_factor,
        n_ctx_orig,
    })
}

/// Where one tensor's data lies in the GGUF bytes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TensorRecord {
    /// Byte offset from the start of the file bytes.
    pub offset: u64,
    /// Byte length.
    pub len: u64,
    /// ggml type id (one of [`WeightType`]).
    pub ty: u32,
    /// 1 once the tensor has been found.
    pub present: u32,
}

impl TensorRecord {
    /// As plain words, so that a table of records can live in caller memory
    /// as a `[u64]` slice (no derive macro, no `unsafe`).
    fn to_words(self) -> [u64; 3] {
        [
            self.offset,
            self.len,
            (self.ty as u64) | ((self.present as u64) << 32),
        ]
    }
    fn from_words(w: &[u64; 3]) -> Self {
        TensorRecord {
            offset: w[0],
            len: w[1],
            ty: w[2] as u32,
            present: (w[2] >> 32) as u32,
        }
    }
}

/// The tensors of one block, in the order of [`LAYER_TENSORS`], each as
/// [`TensorRecord`] words (a bias the file does not have is not present).
pub type LayerRecord = [[u64; 3]; 16];

/// Names of the per-block tensors (after `blk.N.`): the nine the LLaMA block
/// needs, then the optional biases (llama.cpp's TENSOR_NOT_REQUIRED ones).
pub const LAYER_TENSORS: [&str; 16] = [
    "attn_norm.weight",
    "attn_q.weight",
    "attn_k.weight",
    "attn_v.weight",
    "attn_output.weight",
    "ffn_norm.weight",
    "ffn_gate.weight",
    "ffn_up.weight",
    "ffn_down.weight",
    "attn_q.bias",
    "attn_k.bias",
    "attn_v.bias",
    "attn_output.bias",
    "ffn_gate.bias",
    "ffn_up.bias",
    "ffn_down.bias",
];

/// Index of each tensor in a [`LayerRecord`].
pub mod slot {
    pub const ATTN_NORM: usize = 0;
    pub const ATTN_Q: usize = 1;
    pub const ATTN_K: usize = 2;
    pub const ATTN_V: usize = 3;
    pub const ATTN_OUTPUT: usize = 4;
    pub const FFN_NORM: usize = 5;
    pub const FFN_GATE: usize = 6;
    pub const FFN_UP: usize = 7;
    pub const FFN_DOWN: usize = 8;
    /// Biases of the matrices above (see [`bias_of`]).
    pub const BIAS_Q: usize = 9;
    pub const BIAS_K: usize = 10;
    pub const BIAS_V: usize = 11;
    pub const BIAS_O: usize = 12;
    pub const BIAS_GATE: usize = 13;
    pub const BIAS_UP: usize = 14;
    pub const BIAS_DOWN: usize = 15;
    /// The slots every block must have.
    pub const REQUIRED: usize = 9;

    /// The slot of matrix `k`'s bias, if it can have one.
    pub const fn bias_of(k: usize) -> Option<usize> {
        match k {
            ATTN_Q => Some(BIAS_Q),
            ATTN_K => Some(BIAS_K),
            ATTN_V => Some(BIAS_V),
            ATTN_OUTPUT => Some(BIAS_O),
            FFN_GATE => Some(BIAS_GATE),
            FFN_UP => Some(BIAS_UP),
            FFN_DOWN => Some(BIAS_DOWN),
            _ => None,
        }
    }
}

/// A weight matrix: `rows` rows of `cols` weights of type `ty`, row-major,
/// borrowed from the file (`ne[0] = cols`, `ne[1] = rows` in GGUF terms).
#[derive(Clone, Copy, Debug)]
pub struct Matrix<'a> {
    pub ty: WeightType,
    pub data: &'a [u8],
    pub rows: usize,
    pub cols: usize,
    /// Bytes per row.
    pub row_bytes: usize,
}

impl<'a> Matrix<'a> {
    /// Row `r`'s bytes (empty when out of range; shapes are validated at load).
    #[inline]
    pub fn row(&self, r: usize) -> &'a [u8] {
        let s = r * self.row_bytes;
        self.data.get(s..s + self.row_bytes).unwrap_or(&[])
    }
}

/// A loaded model: hyper-parameters and views into the caller's GGUF bytes.
/// Read-only after [`Model::init`]: any number of contexts, on any threads,
/// may share it.
#[derive(Clone, Copy, Debug)]
pub struct Model<'a> {
    config: Config,
    bytes: &'a [u8],
    layers: &'a [LayerRecord],
    token_embd: TensorRecord,
    output_norm: TensorRecord,
    output: TensorRecord,
    tied_output: bool,
    /// `output.bias` (qwen2), if present.
    output_bias: TensorRecord,
    /// `rope_freqs.weight` (llama), if present.
    rope_freqs: TensorRecord,
}

/// What [`Model::info`] reports.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ModelInfo {
    pub config: Config,
    /// Bit `t` is set when some tensor the model uses is stored as ggml type `t`.
    pub weight_types: u64,
    /// Type of `token_embd`.
    pub embd_type: WeightType,
    /// Type of the output matrix (`token_embd`'s when tied).
    pub output_type: WeightType,
    /// True when there is no `output` tensor and `token_embd` is reused.
    pub tied_output: bool,
    /// Bytes of all tensors the model reads.
    pub weight_bytes: u64,
    /// Number of parameters in those tensors.
    pub n_params: u64,
    /// Blocks' biases present in the file (0 for a plain LLaMA file).
    pub n_biases: usize,
    /// True when the file has `rope_freqs` factors.
    pub rope_freqs: bool,
}

/// The tensors outside the blocks.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Global {
    TokenEmbd,
    OutputNorm,
    Output,
    OutputBias,
    RopeFreqs,
}

/// What a tensor name is to the engine.
enum Role {
    Global(Global),
    /// Block, slot (see [`slot`]).
    Layer(usize, usize),
}

/// The role of tensor `name` in a model of `c`, or why the file is refused:
/// a tensor the engine does not compute is a refusal, never ignored
/// (llama.cpp too refuses a file with tensors its architecture does not
/// create).
fn role(c: &Config, name: &[u8]) -> Result<Role> {
    let llama = c.arch == Arch::Llama;
    let global = match name {
        b"token_embd.weight" => Some(Global::TokenEmbd),
        b"output_norm.weight" => Some(Global::OutputNorm),
        b"output.weight" => Some(Global::Output),
        b"output.bias" if !llama => Some(Global::OutputBias),
        b"rope_freqs.weight" if llama => Some(Global::RopeFreqs),
        // LongRoPE's factors (Phi-3 style).
        b"rope_factors_long.weight" | b"rope_factors_short.weight" => {
            return Err(Error::UnsupportedRopeScaling)
        }
        _ => None,
    };
    if let Some(g) = global {
        return Ok(Role::Global(g));
    }
    let Some((layer, kind)) = parse_block_name(name) else {
        return Err(Error::UnexpectedTensor);
    };
    // Routers, expert and shared-expert tensors of a mixture of experts.
    let expert = kind.starts_with(b"ffn_gate_inp")
        || kind.starts_with(b"exp_probs")
        || contains(kind, b"_exps")
        || contains(kind, b"_shexp");
    if expert {
        return Err(Error::UnsupportedExperts);
    }
    match LAYER_TENSORS.iter().position(|n| n.as_bytes() == kind) {
        Some(k) if c.arch.has_layer_tensor(k) => {
            // A block past block_count means the count is wrong.
            if layer >= c.n_layers {
                return Err(Error::BadHyperparameters);
            }
            Ok(Role::Layer(layer, k))
        }
        _ => Err(Error::UnexpectedTensor),
    }
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

impl<'a> Model<'a> {
    /// Bytes of caller memory [`Model::init`] needs for this file (the layer
    /// table), after parsing and validating the hyper-parameters and the
    /// names of the tensors (a tensor the engine would not use is refused
    /// here already).
    ///
    /// As strict as [`Model::init`]: every check `init` makes on the file
    /// is made here too, with the same status, so a file this accepts
    /// `init` accepts (given the memory).
    pub fn size(gguf: &[u8]) -> Result<usize> {
        let g = Gguf::parse(gguf)?;
        let c = Config::from_gguf(&g)?;
        check_names(&g, &c)?;
        let need = Self::size_for(&c)?;
        validate(gguf, &g, &c)?;
        Ok(need)
    }

    fn size_for(c: &Config) -> Result<usize> {
        c.n_layers
            .checked_mul(core::mem::size_of::<LayerRecord>())
            .ok_or(Error::BadHyperparameters)
    }

    /// Parses `gguf`, checks every tensor the model needs (present, a supported
    /// type, the right shape), refuses any it would not use, and builds the
    /// model over `mem` (at least [`Model::size`] bytes, 64-byte aligned).
    /// Weights stay in `gguf`. On error nothing is kept and `mem` holds no
    /// meaning.
    pub fn init(gguf: &'a [u8], mem: &'a mut [u8]) -> Result<Self> {
        let g = Gguf::parse(gguf)?;
        let c = Config::from_gguf(&g)?;
        check_names(&g, &c)?;
        let need = Self::size_for(&c)?;
        if !(mem.as_ptr() as usize).is_multiple_of(ALIGN) {
            return Err(Error::Misaligned);
        }
        let mem = mem.get_mut(..need).ok_or(Error::BufferTooSmall)?;
        let layers: &mut [LayerRecord] =
            bytemuck::try_cast_slice_mut(mem).map_err(|_| Error::Misaligned)?;
        layers.fill([[0; 3]; 16]);

        let mut token_embd = TensorRecord::default();
        let mut output_norm = TensorRecord::default();
        let mut output = TensorRecord::default();
        let mut output_bias = TensorRecord::default();
        let mut rope_freqs = TensorRecord::default();
        for t in g.tensors() {
            let (rows, cols, slot): (usize, usize, &mut TensorRecord) = match role(&c, t.name)? {
                Role::Global(Global::TokenEmbd) => (c.n_vocab, c.dim, &mut token_embd),
                Role::Global(Global::OutputNorm) => (1, c.dim, &mut output_norm),
                Role::Global(Global::Output) => (c.n_vocab, c.dim, &mut output),
                Role::Global(Global::OutputBias) => (1, c.n_vocab, &mut output_bias),
                Role::Global(Global::RopeFreqs) => (1, c.rope_dim / 2, &mut rope_freqs),
                Role::Layer(layer, k) => {
                    let rec = &mut layers[layer];
                    let (rows, cols) = layer_shape(&c, k);
                    if TensorRecord::from_words(&rec[k]).present != 0 {
                        return Err(Error::DuplicateTensor);
                    }
                    rec[k] = check_tensor(&t, rows, cols)?.to_words();
                    continue;
                }
            };
            if slot.present != 0 {
                return Err(Error::DuplicateTensor);
            }
            *slot = check_tensor(&t, rows, cols)?;
        }
        if token_embd.present == 0 || output_norm.present == 0 {
            return Err(Error::MissingTensor);
        }
        if layers
            .iter()
            .flat_map(|l| &l[..slot::REQUIRED])
            .any(|r| TensorRecord::from_words(r).present == 0)
        {
            return Err(Error::MissingTensor);
        }
        // Norms and biases are element-wise: F32, as llama.cpp writes them
        // (and as ggml's rope requires its factors).
        let f32_ok = |r: &[u64; 3]| {
            let r = TensorRecord::from_words(r);
            r.present == 0 || r.ty == WeightType::F32 as u32
        };
        let vector_slots = [slot::ATTN_NORM, slot::FFN_NORM]
            .into_iter()
            .chain(slot::REQUIRED..LAYER_TENSORS.len());
        if [output_norm, output_bias, rope_freqs]
            .iter()
            .any(|r| !f32_ok(&r.to_words()))
            || layers
                .iter()
                .any(|l| vector_slots.clone().any(|k| !f32_ok(&l[k])))
        {
            return Err(Error::UnsupportedTensorType);
        }
        let tied_output = output.present == 0;
        if tied_output {
            output = token_embd;
        }
        let model = Model {
            config: c,
            bytes: gguf,
            layers,
            token_embd,
            output_norm,
            output,
            tied_output,
            output_bias,
            rope_freqs,
        };
        // ggml divides each angle by its factor: only finite positive ones
        // mean a rotation.
        let factors = model.rope_freqs();
        if factors.chunks_exact(4).any(|b| {
            let f = f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
            !(f.is_finite() && f > 0.0)
        }) {
            return Err(Error::UnsupportedRopeScaling);
        }
        Ok(model)
    }

    /// The hyper-parameters.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The records of every tensor the model reads, in a fixed order: the
    /// embedding, the final norm, the output (the embedding again when
    /// tied), then each block's present tensors, then the output bias and
    /// the RoPE factors if present.
    fn for_each_tensor(&self, mut f: impl FnMut(&TensorRecord, usize)) {
        let c = &self.config;
        f(&self.token_embd, c.n_vocab * c.dim);
        f(&self.output_norm, c.dim);
        f(&self.output, c.n_vocab * c.dim);
        for l in self.layers {
            for (k, r) in l.iter().enumerate() {
                let r = TensorRecord::from_words(r);
                if r.present != 0 {
                    let (rows, cols) = layer_shape(c, k);
                    f(&r, rows * cols);
                }
            }
        }
        for (r, n) in [
            (&self.output_bias, c.n_vocab),
            (&self.rope_freqs, c.rope_dim / 2),
        ] {
            if r.present != 0 {
                f(r, n);
            }
        }
    }

    /// The file's own chat template (`tokenizer.chat_template`), for
    /// [`crate::chat::apply_template`]: `MissingKey` when it has none.
    pub fn chat_template(&self) -> Result<&'a [u8]> {
        crate::chat::gguf_chat_template(self.bytes)
    }

    /// Summary of the model for display and the C ABI.
    pub fn info(&self) -> ModelInfo {
        let mut weight_types = 0u64;
        let mut weight_bytes = 0u64;
        let mut n_params = 0u64;
        let mut index = 0usize;
        self.for_each_tensor(|r, n| {
            index += 1;
            // A tied output is the embedding, counted once.
            if index == 3 && self.tied_output {
                return;
            }
            weight_types |= 1u64 << r.ty;
            weight_bytes += r.len;
            n_params += n as u64;
        });
        let n_biases = self
            .layers
            .iter()
            .flat_map(|l| &l[slot::REQUIRED..])
            .filter(|r| TensorRecord::from_words(r).present != 0)
            .count();
        ModelInfo {
            config: self.config,
            weight_types,
            embd_type: ty_of(&self.token_embd),
            output_type: ty_of(&self.output),
            tied_output: self.tied_output,
            weight_bytes,
            n_params,
            n_biases,
            rope_freqs: self.rope_freqs.present != 0,
        }
    }

    /// A 64-bit identity of the model, used to refuse saved states of another
    /// model: the hash of the hyper-parameters and, for every tensor the model
    /// reads, its type, size and 64 bytes each from the start, the middle and
    /// the end of its data (a fine-tune of the same architecture differs
    /// there). Costs a few hundred bytes of reading per tensor. A plain
    /// LLaMA model hashes exactly as before the architecture, RoPE scaling
    /// and biases were added, so its saved states stay valid.
    pub fn fingerprint(&self) -> u64 {
        use crate::state::{hash, HASH_SEED};
        let c = &self.config;
        let mut h = HASH_SEED;
        for v in [
            c.dim,
            c.n_layers,
            c.n_heads,
            c.n_kv_heads,
            c.head_dim,
            c.ffn_dim,
            c.n_vocab,
            c.n_ctx_train,
            c.rope_dim,
            c.rope_base.to_bits() as usize,
            c.rms_eps.to_bits() as usize,
            self.tied_output as usize,
        ] {
            h = hash(h, &(v as u64).to_le_bytes());
        }
        let r = &c.rope_scaling;
        if c.arch != Arch::Llama || r.kind != RopeScalingType::None || r.attn_factor != 1.0 {
            for v in [
                c.arch as u64,
                r.kind as u64,
                r.factor.to_bits() as u64,
                r.attn_factor.to_bits() as u64,
                r.n_ctx_orig as u64,
            ] {
                h = hash(h, &v.to_le_bytes());
            }
        }
        self.for_each_tensor(|r, _| {
            h = hash(h, &(r.ty as u64).to_le_bytes());
            h = hash(h, &r.len.to_le_bytes());
            let start = r.offset as usize;
            let data = self.bytes.get(start..start + r.len as usize).unwrap_or(&[]);
            const S: usize = 64;
            if data.len() <= 3 * S {
                h = hash(h, data);
            } else {
                let mid = data.len() / 2;
                h = hash(h, &data[..S]);
                h = hash(h, &data[mid..mid + S]);
                h = hash(h, &data[data.len() - S..]);
            }
        });
        h
    }

    fn matrix(&self, r: &TensorRecord, rows: usize, cols: usize) -> Matrix<'a> {
        let ty = ty_of(r);
        let start = r.offset as usize;
        let data = self.bytes.get(start..start + r.len as usize).unwrap_or(&[]);
        Matrix {
            ty,
            data,
            rows,
            cols,
            row_bytes: ty.row_bytes(cols).unwrap_or(0),
        }
    }

    /// Token embedding table (`n_vocab` rows of `dim`).
    pub fn token_embd(&self) -> Matrix<'a> {
        self.matrix(&self.token_embd, self.config.n_vocab, self.config.dim)
    }
    /// Output projection (`n_vocab` rows of `dim`); `token_embd` when tied.
    pub fn output(&self) -> Matrix<'a> {
        self.matrix(&self.output, self.config.n_vocab, self.config.dim)
    }
    /// Final norm weights (`dim`), as stored little-endian f32 bytes.
    pub fn output_norm(&self) -> &'a [u8] {
        self.matrix(&self.output_norm, 1, self.config.dim).data
    }
    /// The output bias (`n_vocab` little-endian f32), if the file has one.
    pub fn output_bias(&self) -> Option<&'a [u8]> {
        let r = &self.output_bias;
        (r.present != 0).then(|| self.matrix(r, 1, self.config.n_vocab).data)
    }
    /// The `rope_freqs` factors (`rope_dim / 2` little-endian f32), empty if
    /// the file has none.
    pub fn rope_freqs(&self) -> &'a [u8] {
        let r = &self.rope_freqs;
        if r.present == 0 {
            return &[];
        }
        self.matrix(r, 1, self.config.rope_dim / 2).data
    }
    /// The RoPE arithmetic of this model.
    pub fn rope(&self) -> RopeParams<'a> {
        self.config.rope(self.rope_freqs())
    }
    /// Tensor `k` (see [`slot`]) of block `layer`.
    pub fn layer_matrix(&self, layer: usize, k: usize) -> Matrix<'a> {
        let (rows, cols) = layer_shape(&self.config, k);
        match self.layers.get(layer).and_then(|l| l.get(k)) {
            Some(r) => self.matrix(&TensorRecord::from_words(r), rows, cols),
            None => Matrix {
                ty: WeightType::F32,
                data: &[],
                rows: 0,
                cols: 0,
                row_bytes: 0,
            },
        }
    }
    /// The bias of matrix `k` of block `layer` (little-endian f32, one per
    /// row of the matrix), if the file has one.
    pub fn layer_bias(&self, layer: usize, k: usize) -> Option<&'a [u8]> {
        let b = slot::bias_of(k)?;
        let r = TensorRecord::from_words(self.layers.get(layer)?.get(b)?);
        (r.present != 0).then(|| self.layer_matrix(layer, b).data)
    }
}

/// Refuses a file with a tensor the engine would not use (see [`role`]):
/// what [`Model::size`] can check without a table.
/// The checks [`Model::init`] makes on the tensors, without memory, in the
/// same order (so with the same status): each tensor's role, type and
/// shape in file order, then missing tensors, then element-wise tensors
/// not in F32, then the RoPE factors. A block tensor cannot appear twice:
/// names are unique in a GGUF file (the parser checks) and block numbers
/// canonical (`parse_block_name`), so one count per kind finds a block
/// without it.
fn validate(gguf: &[u8], g: &Gguf<'_>, c: &Config) -> Result<()> {
    let mut per_kind = [0usize; LAYER_TENSORS.len()];
    let mut global = [false; 5];
    let mut not_f32 = false;
    let mut factors: Option<(usize, usize)> = None;
    for t in g.tensors() {
        let (rows, cols, gi) = match role(c, t.name)? {
            Role::Global(Global::TokenEmbd) => (c.n_vocab, c.dim, 0),
            Role::Global(Global::OutputNorm) => (1, c.dim, 1),
            Role::Global(Global::Output) => (c.n_vocab, c.dim, 2),
            Role::Global(Global::OutputBias) => (1, c.n_vocab, 3),
            Role::Global(Global::RopeFreqs) => (1, c.rope_dim / 2, 4),
            Role::Layer(_, k) => {
                let (rows, cols) = layer_shape(c, k);
                let r = check_tensor(&t, rows, cols)?;
                per_kind[k] += 1;
                let vector = k == slot::ATTN_NORM || k == slot::FFN_NORM || k >= slot::REQUIRED;
                not_f32 |= vector && r.ty != WeightType::F32 as u32;
                continue;
            }
        };
        if global[gi] {
            return Err(Error::DuplicateTensor);
        }
        global[gi] = true;
        let r = check_tensor(&t, rows, cols)?;
        not_f32 |= gi >= 1 && gi != 2 && r.ty != WeightType::F32 as u32;
        if gi == 4 {
            factors = Some((r.offset as usize, r.len as usize));
        }
    }
    if !global[0] || !global[1] || per_kind[..slot::REQUIRED].iter().any(|&n| n != c.n_layers) {
        return Err(Error::MissingTensor);
    }
    if not_f32 {
        return Err(Error::UnsupportedTensorType);
    }
    if let Some((off, len)) = factors {
        // As `Model::rope_freqs` reads them (the parser checked the bounds).
        let data = off
            .checked_add(len)
            .and_then(|end| gguf.get(off..end))
            .unwrap_or(&[]);
        if data.chunks_exact(4).any(|b| {
            let f = f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
            !(f.is_finite() && f > 0.0)
        }) {
            return Err(Error::UnsupportedRopeScaling);
        }
    }
    Ok(())
}

fn check_names(g: &Gguf<'_>, c: &Config) -> Result<()> {
    for t in g.tensors() {
        role(c, t.name)?;
    }
    Ok(())
}

fn ty_of(r: &TensorRecord) -> WeightType {
    WeightType::from_ggml(crate::gguf::GgmlType(r.ty)).unwrap_or(WeightType::F32)
}

/// `(rows, cols)` of per-block tensor `k`; norms and biases are one row.
fn layer_shape(c: &Config, k: usize) -> (usize, usize) {
    match k {
        slot::ATTN_NORM | slot::FFN_NORM | slot::BIAS_O | slot::BIAS_DOWN => (1, c.dim),
        slot::BIAS_Q => (1, c.q_dim()),
        slot::BIAS_K | slot::BIAS_V => (1, c.kv_dim()),
        slot::BIAS_GATE | slot::BIAS_UP => (1, c.ffn_dim),
        slot::ATTN_Q => (c.q_dim(), c.dim),
        slot::ATTN_K | slot::ATTN_V => (c.kv_dim(), c.dim),
        slot::ATTN_OUTPUT => (c.dim, c.q_dim()),
        slot::FFN_GATE | slot::FFN_UP => (c.ffn_dim, c.dim),
        _ => (c.dim, c.ffn_dim),
    }
}

/// `blk.12.attn_q` → `(12, b"attn_q")`.
fn parse_block_name(name: &[u8]) -> Option<(usize, &[u8])> {
    let rest = name.strip_prefix(b"blk.")?;
    let dot = rest.iter().position(|&b| b == b'.')?;
    let (num, kind) = (&rest[..dot], &rest[dot + 1..]);
    // Canonical numbers only ("blk.3", not "blk.03"), as llama.cpp writes
    // them: one block, one name.
    if num.is_empty()
        || num.len() > 6
        || !num.iter().all(u8::is_ascii_digit)
        || (num.len() > 1 && num[0] == b'0')
    {
        return None;
    }
    let n = num
        .iter()
        .fold(0usize, |a, &d| a * 10 + (d - b'0') as usize);
    Some((n, kind))
}

/// Checks type and shape (`ne = [cols, rows]`, trailing dims 1; a norm is
/// `[cols]`) and records where the data lies.
fn check_tensor(t: &TensorInfo<'_>, rows: usize, cols: usize) -> Result<TensorRecord> {
    let ty = WeightType::from_ggml(t.ty).ok_or(Error::UnsupportedTensorType)?;
    let shape_ok = t.ne[0] == cols as u64 && t.ne[1] == rows as u64 && t.ne[2] == 1 && t.ne[3] == 1;
    if !shape_ok {
        return Err(Error::TensorShape);
    }
    let len = ty
        .row_bytes(cols)
        .and_then(|b| b.checked_mul(rows))
        .ok_or(Error::TensorShape)?;
    if len != t.size {
        return Err(Error::TensorShape);
    }
    Ok(TensorRecord {
        offset: t.offset as u64,
        len: len as u64,
        ty: ty as u32,
        present: 1,
    })
}
