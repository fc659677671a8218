//! The model: validated hyper-parameters ([`Config`]) and typed views into the
//! caller's GGUF bytes, one per tensor ([`Model`]).
//!
//! Per-layer tensor locations are kept in a small table of plain records
//! ([`LayerRecord`]) in caller memory, sized by [`Model::size`]; the weights
//! themselves are never copied.

use crate::error::{Error, Result};
use crate::gguf::{Gguf, TensorInfo, Value};
use crate::quant::WeightType;

/// Alignment that every caller buffer must have.
pub const ALIGN: usize = 64;

/// Largest accepted embedding, feed-forward or vocabulary size; keeps all size
/// arithmetic far from overflow on 32-bit targets too.
const MAX_DIM: usize = 1 << 20;
/// Largest accepted layer and head count.
const MAX_LAYERS: usize = 1 << 12;

/// Hyper-parameters of a LLaMA model, validated.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Config {
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

    /// Reads and validates the hyper-parameters of a `llama` GGUF file.
    pub fn from_gguf(g: &Gguf<'_>) -> Result<Self> {
        let arch = g
            .get("general.architecture")
            .ok_or(Error::UnsupportedArchitecture)?;
        let arch = arch.as_bytes().ok_or(Error::BadMetadata)?;
        if arch != b"llama" {
            return Err(Error::UnsupportedArchitecture);
        }
        let int = |k: &str| -> Result<Option<usize>> {
            match g.get2("llama", k) {
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
            match g.get2("llama", k) {
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
        Ok(Config {
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
        })
    }
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

/// The matrices and norms of one block, in the order of [`LAYER_TENSORS`],
/// each as [`TensorRecord`] words.
pub type LayerRecord = [[u64; 3]; 9];

/// Names of the per-block tensors (after `blk.N.`, before `.weight`).
pub const LAYER_TENSORS: [&str; 9] = [
    "attn_norm",
    "attn_q",
    "attn_k",
    "attn_v",
    "attn_output",
    "ffn_norm",
    "ffn_gate",
    "ffn_up",
    "ffn_down",
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
}

impl<'a> Model<'a> {
    /// Bytes of caller memory [`Model::init`] needs for this file (the layer
    /// table), after parsing and validating the hyper-parameters.
    pub fn size(gguf: &[u8]) -> Result<usize> {
        let g = Gguf::parse(gguf)?;
        let c = Config::from_gguf(&g)?;
        Self::size_for(&c)
    }

    fn size_for(c: &Config) -> Result<usize> {
        c.n_layers
            .checked_mul(core::mem::size_of::<LayerRecord>())
            .ok_or(Error::BadHyperparameters)
    }

    /// Parses `gguf`, checks every tensor the model needs (present, a supported
    /// type, the right shape) and builds the model over `mem` (at least
    /// [`Model::size`] bytes, 64-byte aligned). Weights stay in `gguf`.
    /// On error nothing is kept and `mem` holds no meaning.
    pub fn init(gguf: &'a [u8], mem: &'a mut [u8]) -> Result<Self> {
        let g = Gguf::parse(gguf)?;
        let c = Config::from_gguf(&g)?;
        let need = Self::size_for(&c)?;
        if !(mem.as_ptr() as usize).is_multiple_of(ALIGN) {
            return Err(Error::Misaligned);
        }
        let mem = mem.get_mut(..need).ok_or(Error::BufferTooSmall)?;
        let layers: &mut [LayerRecord] =
            bytemuck::try_cast_slice_mut(mem).map_err(|_| Error::Misaligned)?;
        layers.fill([[0; 3]; 9]);

        let mut token_embd = TensorRecord::default();
        let mut output_norm = TensorRecord::default();
        let mut output = TensorRecord::default();
        for t in g.tensors() {
            let Some(name) = t.name.strip_suffix(b".weight") else {
                continue;
            };
            let (rows, cols, slot): (usize, usize, &mut TensorRecord) = match name {
                b"token_embd" => (c.n_vocab, c.dim, &mut token_embd),
                b"output_norm" => (1, c.dim, &mut output_norm),
                b"output" => (c.n_vocab, c.dim, &mut output),
                _ => {
                    let Some((layer, kind)) = parse_block_name(name) else {
                        continue;
                    };
                    let Some(k) = LAYER_TENSORS.iter().position(|n| n.as_bytes() == kind) else {
                        continue;
                    };
                    // A block past block_count means the count is wrong.
                    let Some(rec) = layers.get_mut(layer) else {
                        return Err(Error::BadHyperparameters);
                    };
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
            .flatten()
            .any(|r| TensorRecord::from_words(r).present == 0)
        {
            return Err(Error::MissingTensor);
        }
        // Norms are element-wise multipliers: F32, as llama.cpp writes them.
        let norm_ok = |r: &[u64; 3]| TensorRecord::from_words(r).ty == WeightType::F32 as u32;
        if !norm_ok(&output_norm.to_words())
            || layers
                .iter()
                .any(|l| !norm_ok(&l[slot::ATTN_NORM]) || !norm_ok(&l[slot::FFN_NORM]))
        {
            return Err(Error::UnsupportedTensorType);
        }
        let tied_output = output.present == 0;
        if tied_output {
            output = token_embd;
        }
        Ok(Model {
            config: c,
            bytes: gguf,
            layers,
            token_embd,
            output_norm,
            output,
            tied_output,
        })
    }

    /// The hyper-parameters.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Summary of the model for display and the C ABI.
    pub fn info(&self) -> ModelInfo {
        let mut weight_types = 0u64;
        let mut weight_bytes = 0u64;
        let mut n_params = 0u64;
        let mut add = |r: &TensorRecord, n: usize| {
            weight_types |= 1u64 << r.ty;
            weight_bytes += r.len;
            n_params += n as u64;
        };
        let c = &self.config;
        add(&self.token_embd, c.n_vocab * c.dim);
        add(&self.output_norm, c.dim);
        if !self.tied_output {
            add(&self.output, c.n_vocab * c.dim);
        }
        for l in self.layers {
            for (k, r) in l.iter().enumerate() {
                let (rows, cols) = layer_shape(c, k);
                add(&TensorRecord::from_words(r), rows * cols);
            }
        }
        ModelInfo {
            config: *c,
            weight_types,
            embd_type: ty_of(&self.token_embd),
            output_type: ty_of(&self.output),
            tied_output: self.tied_output,
            weight_bytes,
            n_params,
        }
    }

    /// A 64-bit identity of the model, used to refuse saved states of another
    /// model: the hash of the hyper-parameters and, for every tensor the model
    /// reads, its type, size and 64 bytes each from the start, the middle and
    /// the end of its data (a fine-tune of the same architecture differs
    /// there). Costs a few hundred bytes of reading per tensor.
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
        let mut add = |r: &TensorRecord| {
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
        };
        add(&self.token_embd);
        add(&self.output_norm);
        add(&self.output);
        for l in self.layers {
            for r in l.iter() {
                add(&TensorRecord::from_words(r));
            }
        }
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
}

fn ty_of(r: &TensorRecord) -> WeightType {
    WeightType::from_ggml(crate::gguf::GgmlType(r.ty)).unwrap_or(WeightType::F32)
}

/// `(rows, cols)` of per-block tensor `k`; norms are one row.
fn layer_shape(c: &Config, k: usize) -> (usize, usize) {
    match k {
        slot::ATTN_NORM | slot::FFN_NORM => (1, c.dim),
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
    if num.is_empty() || num.len() > 6 || !num.iter().all(u8::is_ascii_digit) {
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
