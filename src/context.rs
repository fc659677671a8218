//! One conversation: a KV cache and activation buffers carved from caller
//! memory, a position, and the logits of the last decode.
//!
//! Several contexts may share one [`Model`]; each is used by one thread at a
//! time (its `decode` spreads work over the host's threads itself).

use crate::block::{forward, Batch, KvCache, Scratch};
use crate::error::{Error, Result};
use crate::model::{Config, Model, ALIGN};
use crate::parallel::Parallel;

/// Element type of the KV cache.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum KvType {
    /// 4 bytes per element: the exact keys and values.
    F32 = 0,
    /// 2 bytes per element: half the memory, keys and values rounded to f16.
    F16 = 1,
}

impl KvType {
    fn bytes(self) -> usize {
        match self {
            KvType::F32 => 4,
            KvType::F16 => 2,
        }
    }
}

/// Settings of a context.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ContextParams {
    /// Positions the KV cache holds; 0 means the model's training context.
    pub n_ctx: u32,
    /// Most tokens one `decode` call may take; 0 means `min(512, n_ctx)`.
    /// Larger values cost activation memory proportionally.
    pub n_batch: u32,
    /// KV cache element type.
    pub kv_type: KvType,
    /// Keep the logits of every token of a batch (`n_batch` rows of memory),
    /// not only of the last.
    pub logits_all: bool,
}

impl Default for ContextParams {
    fn default() -> Self {
        Self {
            n_ctx: 0,
            n_batch: 0,
            kv_type: KvType::F16,
            logits_all: false,
        }
    }
}

/// Largest accepted `n_ctx` and `n_batch`.
const MAX_CTX: usize = 1 << 24;

/// Sizes of every region of a context's memory, in elements; one function
/// computes it for both the size query and `init`, so they cannot drift.
#[derive(Clone, Copy, Debug)]
struct Layout {
    n_ctx: usize,
    n_batch: usize,
    kv_type: KvType,
    n_outputs: usize,
    kv_elems: usize,
    x: usize,
    xb: usize,
    q: usize,
    kv: usize,
    hb: usize,
    att: usize,
    rope: usize,
    logits: usize,
}

fn round_up(bytes: usize) -> Option<usize> {
    bytes.checked_add(ALIGN - 1).map(|b| b / ALIGN * ALIGN)
}

impl Layout {
    fn new(c: &Config, p: &ContextParams) -> Result<Self> {
        let n_ctx = if p.n_ctx == 0 {
            c.n_ctx_train
        } else {
            p.n_ctx as usize
        };
        let n_batch = if p.n_batch == 0 {
            n_ctx.min(512)
        } else {
            (p.n_batch as usize).min(n_ctx)
        };
        if n_ctx > MAX_CTX {
            return Err(Error::InvalidArgument);
        }
        let ovf = Error::InvalidArgument;
        let m = |a: usize, b: usize| a.checked_mul(b).ok_or(ovf);
        let n_outputs = if p.logits_all { n_batch } else { 1 };
        Ok(Layout {
            n_ctx,
            n_batch,
            kv_type: p.kv_type,
            n_outputs,
            kv_elems: m(m(c.n_layers, n_ctx)?, c.kv_dim())?,
            x: m(n_batch, c.dim)?,
            xb: m(n_batch, c.dim.max(c.q_dim()))?,
            q: m(n_batch, c.q_dim())?,
            kv: m(n_batch, c.kv_dim())?,
            hb: m(n_batch, c.ffn_dim)?,
            att: m(c.n_heads, n_ctx)?,
            rope: m(n_batch, c.rope_dim)?,
            logits: m(n_outputs, c.n_vocab)?,
        })
    }

    /// Bytes of each region, in carving order.
    fn regions(&self) -> [usize; 13] {
        let kvb = self.kv_elems.saturating_mul(self.kv_type.bytes());
        let f = |n: usize| n.saturating_mul(4);
        [
            kvb,
            kvb,
            f(self.x),
            f(self.xb),
            f(self.x),
            f(self.q),
            f(self.kv),
            f(self.kv),
            f(self.hb),
            f(self.hb),
            f(self.att),
            f(self.rope),
            f(self.logits),
        ]
    }

    fn bytes(&self) -> Result<usize> {
        self.regions().iter().try_fold(0usize, |acc, &r| {
            round_up(r)
                .and_then(|r| acc.checked_add(r))
                .filter(|&t| t < isize::MAX as usize)
                .ok_or(Error::InvalidArgument)
        })
    }
}

/// Hands out consecutive 64-byte-aligned regions of a buffer.
struct Carver<'a> {
    rest: &'a mut [u8],
}

impl<'a> Carver<'a> {
    fn bytes(&mut self, n: usize) -> Result<&'a mut [u8]> {
        let padded = round_up(n).ok_or(Error::BufferTooSmall)?;
        let rest = core::mem::take(&mut self.rest);
        if rest.len() < padded {
            return Err(Error::BufferTooSmall);
        }
        let (head, tail) = rest.split_at_mut(padded);
        self.rest = tail;
        Ok(&mut head[..n])
    }
    fn f32s(&mut self, n: usize) -> Result<&'a mut [f32]> {
        bytemuck::try_cast_slice_mut(self.bytes(n * 4)?).map_err(|_| Error::Misaligned)
    }
    fn u16s(&mut self, n: usize) -> Result<&'a mut [u16]> {
        bytemuck::try_cast_slice_mut(self.bytes(n * 2)?).map_err(|_| Error::Misaligned)
    }
}

/// One conversation over a shared model.
pub struct Context<'m> {
    model: &'m Model<'m>,
    n_ctx: usize,
    n_batch: usize,
    kv_type: KvType,
    logits_all: bool,
    pos: usize,
    /// Rows of logits the last decode produced (0 after reset or truncate).
    n_outputs: usize,
    kv: KvCache<'m>,
    s: Scratch<'m>,
}

impl<'m> Context<'m> {
    /// Bytes of caller memory [`Context::init`] needs.
    pub fn size(model: &Model<'_>, params: &ContextParams) -> Result<usize> {
        Layout::new(model.config(), params)?.bytes()
    }

    /// Builds a context over `mem` (at least [`Context::size`] bytes, 64-byte
    /// aligned). The memory must stay untouched while the context lives.
    pub fn init(model: &'m Model<'m>, params: &ContextParams, mem: &'m mut [u8]) -> Result<Self> {
        let lay = Layout::new(model.config(), params)?;
        let need = lay.bytes()?;
        if (mem.as_ptr() as usize) % ALIGN != 0 {
            return Err(Error::Misaligned);
        }
        if mem.len() < need {
            return Err(Error::BufferTooSmall);
        }
        let mut c = Carver { rest: mem };
        let kv = match lay.kv_type {
            KvType::F32 => KvCache::F32 {
                k: c.f32s(lay.kv_elems)?,
                v: c.f32s(lay.kv_elems)?,
            },
            KvType::F16 => KvCache::F16 {
                k: c.u16s(lay.kv_elems)?,
                v: c.u16s(lay.kv_elems)?,
            },
        };
        let s = Scratch {
            x: c.f32s(lay.x)?,
            xb: c.f32s(lay.xb)?,
            xb2: c.f32s(lay.x)?,
            q: c.f32s(lay.q)?,
            k: c.f32s(lay.kv)?,
            v: c.f32s(lay.kv)?,
            hb: c.f32s(lay.hb)?,
            hb2: c.f32s(lay.hb)?,
            att: c.f32s(lay.att)?,
            rope: c.f32s(lay.rope)?,
            logits: c.f32s(lay.logits)?,
        };
        Ok(Context {
            model,
            n_ctx: lay.n_ctx,
            n_batch: lay.n_batch,
            kv_type: lay.kv_type,
            logits_all: lay.n_outputs > 1 || params.logits_all,
            pos: 0,
            n_outputs: 0,
            kv,
            s,
        })
    }

    /// Appends `tokens` at the current position and computes logits (for every
    /// token when the context keeps all logits, else for the last). Checks
    /// everything first: on error nothing changes.
    pub fn decode(&mut self, tokens: &[u32], par: &dyn Parallel) -> Result<()> {
        if tokens.is_empty() {
            return Err(Error::InvalidArgument);
        }
        if tokens.len() > self.n_batch {
            return Err(Error::BatchTooLarge);
        }
        let n_vocab = self.model.config().n_vocab;
        if tokens.iter().any(|&t| t as usize >= n_vocab) {
            return Err(Error::TokenOutOfRange);
        }
        if self.pos + tokens.len() > self.n_ctx {
            return Err(Error::ContextFull);
        }
        forward(
            self.model,
            self.n_ctx,
            &mut self.kv,
            &mut self.s,
            Batch {
                tokens,
                pos0: self.pos,
                all: self.logits_all,
            },
            par,
        );
        self.pos += tokens.len();
        self.n_outputs = if self.logits_all { tokens.len() } else { 1 };
        Ok(())
    }

    /// Logits of the last decode: `n_outputs × n_vocab` floats, one row per
    /// token of the batch (or one row, the last token's, unless the context
    /// keeps all logits). Empty before the first decode and after
    /// reset/truncate.
    pub fn logits(&self) -> &[f32] {
        &self.s.logits[..self.n_outputs * self.model.config().n_vocab]
    }

    /// Logits of the last token of the last decode (empty if none).
    pub fn last_logits(&self) -> &[f32] {
        let n = self.model.config().n_vocab;
        let all = self.logits();
        &all[all.len().saturating_sub(n)..]
    }

    /// Number of positions filled.
    pub fn pos(&self) -> usize {
        self.pos
    }
    /// Positions the cache holds.
    pub fn n_ctx(&self) -> usize {
        self.n_ctx
    }
    /// Most tokens per decode.
    pub fn n_batch(&self) -> usize {
        self.n_batch
    }
    /// KV cache element type.
    pub fn kv_type(&self) -> KvType {
        self.kv_type
    }
    /// The model this context runs.
    pub fn model(&self) -> &'m Model<'m> {
        self.model
    }

    /// Rolls back to position `pos` (at most the current one): later tokens are
    /// forgotten, and the logits are cleared.
    pub fn truncate(&mut self, pos: usize) -> Result<()> {
        if pos > self.pos {
            return Err(Error::InvalidArgument);
        }
        self.pos = pos;
        self.n_outputs = 0;
        Ok(())
    }

    /// Forgets every token.
    pub fn reset(&mut self) {
        self.pos = 0;
        self.n_outputs = 0;
    }
}
