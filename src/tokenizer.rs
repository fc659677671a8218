//! Text to tokens and back, from the vocabulary stored in the GGUF file.
//!
//! This first part implements `tokenizer.ggml.model = llama`: SentencePiece
//! BPE as in LLaMA 1/2 (score-driven merges of adjacent symbols, spaces
//! written as U+2581 "▁", a leading space, byte fallback through `<0xNN>`
//! tokens). Token strings are read in place from the GGUF bytes; the lookup
//! table from string to id lives in caller memory ([`Vocab::size`]).

use crate::error::{Error, Result};
use crate::gguf::{Array, Gguf, Value, ValueType};
use crate::model::ALIGN;

/// Kinds of vocabulary.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VocabKind {
    /// SentencePiece BPE (`llama`).
    Spm,
}

/// `tokenizer.ggml.token_type` values.
pub mod token_type {
    pub const NORMAL: i32 = 1;
    pub const UNKNOWN: i32 = 2;
    pub const CONTROL: i32 = 3;
    pub const USER_DEFINED: i32 = 4;
    pub const UNUSED: i32 = 5;
    pub const BYTE: i32 = 6;
}

const NONE: u32 = u32::MAX;

/// A vocabulary over the GGUF bytes plus a string-to-id table in caller memory.
pub struct Vocab<'a> {
    kind: VocabKind,
    bytes: &'a [u8],
    /// Per token: offset of its text in `bytes`, and its length.
    spans: &'a mut [u32],
    /// Open-addressing table of token ids (NONE = empty), power-of-two size.
    table: &'a mut [u32],
    scores: Option<Array<'a>>,
    types: Option<Array<'a>>,
    byte_tokens: [u32; 256],
    n_vocab: usize,
    bos: u32,
    eos: u32,
    add_bos: bool,
    add_space_prefix: bool,
}

fn fnv1a(s: &[u8]) -> u32 {
    let mut h = 0x811C_9DC5u32;
    for &b in s {
        h = (h ^ b as u32).wrapping_mul(0x0100_0193);
    }
    h
}

fn round_up(n: usize) -> Option<usize> {
    n.checked_add(ALIGN - 1).map(|v| v / ALIGN * ALIGN)
}

struct Meta<'a> {
    kind: VocabKind,
    tokens: Array<'a>,
    table_len: usize,
}

fn meta<'a>(g: &Gguf<'a>) -> Result<Meta<'a>> {
    let model = g
        .get("tokenizer.ggml.model")
        .and_then(|v| v.as_bytes())
        .ok_or(Error::UnsupportedTokenizer)?;
    let kind = match model {
        b"llama" => VocabKind::Spm,
        _ => return Err(Error::UnsupportedTokenizer),
    };
    let tokens = match g.get("tokenizer.ggml.tokens") {
        Some(Value::Array(a)) if a.elem_type() == ValueType::String && !a.is_empty() => a,
        Some(_) => return Err(Error::BadMetadata),
        None => return Err(Error::UnsupportedTokenizer),
    };
    if tokens.len() >= NONE as usize / 4 {
        return Err(Error::BadMetadata);
    }
    let table_len = (tokens.len() * 2).next_power_of_two();
    Ok(Meta {
        kind,
        tokens,
        table_len,
    })
}

impl<'a> Vocab<'a> {
    /// Bytes of caller memory [`Vocab::init`] needs for this file.
    pub fn size(gguf: &[u8]) -> Result<usize> {
        let g = Gguf::parse(gguf)?;
        let m = meta(&g)?;
        let spans = round_up(m.tokens.len() * 8).ok_or(Error::BadMetadata)?;
        let table = round_up(m.table_len * 4).ok_or(Error::BadMetadata)?;
        spans.checked_add(table).ok_or(Error::BadMetadata)
    }

    /// Reads the vocabulary of `gguf` and builds its lookup table in `mem`.
    pub fn init(gguf: &'a [u8], mem: &'a mut [u8]) -> Result<Self> {
        let g = Gguf::parse(gguf)?;
        let m = meta(&g)?;
        let n = m.tokens.len();
        if (mem.as_ptr() as usize) % ALIGN != 0 {
            return Err(Error::Misaligned);
        }
        if mem.len() < Self::size(gguf)? {
            return Err(Error::BufferTooSmall);
        }
        let spans_len = round_up(n * 8).ok_or(Error::BadMetadata)?;
        let (a, b) = mem.split_at_mut(spans_len);
        let spans: &mut [u32] =
            bytemuck::try_cast_slice_mut(&mut a[..n * 8]).map_err(|_| Error::Misaligned)?;
        let table: &mut [u32] = bytemuck::try_cast_slice_mut(&mut b[..m.table_len * 4])
            .map_err(|_| Error::Misaligned)?;
        let base = gguf.as_ptr() as usize;
        for (i, v) in m.tokens.iter().enumerate() {
            let s = v.as_bytes().ok_or(Error::BadMetadata)?;
            spans[2 * i] = (s.as_ptr() as usize - base) as u32;
            spans[2 * i + 1] = s.len() as u32;
        }
        let f32_array = |key: &str, t: ValueType| -> Result<Option<Array<'a>>> {
            match g.get(key) {
                None => Ok(None),
                Some(Value::Array(a)) if a.elem_type() == t && a.len() == n => Ok(Some(a)),
                Some(_) => Err(Error::BadMetadata),
            }
        };
        let scores = f32_array("tokenizer.ggml.scores", ValueType::F32)?;
        let types = f32_array("tokenizer.ggml.token_type", ValueType::I32)?;
        let id = |key: &str, default: u32| -> Result<u32> {
            match g.get(key) {
                None => Ok(default),
                Some(v) => {
                    let x = v.as_u64().ok_or(Error::BadMetadata)?;
                    if x as usize >= n {
                        return Err(Error::BadMetadata);
                    }
                    Ok(x as u32)
                }
            }
        };
        let flag = |key: &str, default: bool| -> Result<bool> {
            match g.get(key) {
                None => Ok(default),
                Some(Value::Bool(b)) => Ok(b),
                Some(_) => Err(Error::BadMetadata),
            }
        };
        let mut v = Vocab {
            kind: m.kind,
            bytes: gguf,
            spans,
            table,
            scores,
            types,
            byte_tokens: [NONE; 256],
            n_vocab: n,
            bos: id("tokenizer.ggml.bos_token_id", 1.min(n as u32 - 1))?,
            eos: id("tokenizer.ggml.eos_token_id", 2.min(n as u32 - 1))?,
            add_bos: flag("tokenizer.ggml.add_bos_token", true)?,
            add_space_prefix: flag("tokenizer.ggml.add_space_prefix", true)?,
        };
        v.table.fill(NONE);
        let mask = v.table.len() - 1;
        for i in 0..n {
            let t = v.token_text(i as u32);
            let mut h = fnv1a(t) as usize & mask;
            // First id wins for duplicate strings.
            while v.table[h] != NONE {
                if v.token_text(v.table[h]) == t {
                    break;
                }
                h = (h + 1) & mask;
            }
            if v.table[h] == NONE {
                v.table[h] = i as u32;
            }
        }
        for b in 0..256usize {
            let mut name = *b"<0x00>";
            const HEX: &[u8; 16] = b"0123456789ABCDEF";
            name[3] = HEX[b >> 4];
            name[4] = HEX[b & 15];
            if let Some(id) = v.lookup(&name) {
                v.byte_tokens[b] = id;
            }
        }
        Ok(v)
    }

    /// Number of tokens.
    pub fn n_vocab(&self) -> usize {
        self.n_vocab
    }
    /// The kind of vocabulary.
    pub fn kind(&self) -> VocabKind {
        self.kind
    }
    /// Beginning-of-sequence token.
    pub fn bos(&self) -> u32 {
        self.bos
    }
    /// End-of-sequence token.
    pub fn eos(&self) -> u32 {
        self.eos
    }
    /// Whether the file asks for a BOS token at the start.
    pub fn add_bos(&self) -> bool {
        self.add_bos
    }

    /// The stored text of token `id` (empty when out of range).
    pub fn token_text(&self, id: u32) -> &'a [u8] {
        let i = id as usize;
        if i >= self.n_vocab {
            return &[];
        }
        let (o, l) = (self.spans[2 * i] as usize, self.spans[2 * i + 1] as usize);
        self.bytes.get(o..o + l).unwrap_or(&[])
    }

    /// The id of the token whose text is `s`.
    pub fn lookup(&self, s: &[u8]) -> Option<u32> {
        let mask = self.table.len() - 1;
        let mut h = fnv1a(s) as usize & mask;
        loop {
            let id = self.table[h];
            if id == NONE {
                return None;
            }
            if self.token_text(id) == s {
                return Some(id);
            }
            h = (h + 1) & mask;
        }
    }

    fn score(&self, id: u32) -> f32 {
        self.scores
            .and_then(|a| a.get(id as usize))
            .and_then(|v| v.as_f32())
            .unwrap_or(0.0)
    }

    /// The token type of `id` (NORMAL when the file has none).
    pub fn token_type(&self, id: u32) -> i32 {
        match self.types.and_then(|a| a.get(id as usize)) {
            Some(Value::I32(t)) => t,
            _ => token_type::NORMAL,
        }
    }

    /// Bytes of scratch [`Vocab::tokenize`] needs for texts of up to
    /// `max_text` bytes.
    pub fn scratch_size(max_text: usize) -> Option<usize> {
        // The escaped text (a space becomes 3 bytes, plus the prefix), its
        // symbols (16 bytes each) and the bigram heap (16 bytes, 3 per symbol).
        let text = max_text.checked_mul(3)?.checked_add(3)?;
        let sym = text.checked_mul(16)?;
        let heap = text.checked_mul(48)?;
        round_up(text)?
            .checked_add(round_up(sym)?)?
            .checked_add(round_up(heap)?)
    }

    /// Encodes `text` into `out`, prefixed with BOS when `add_bos`. Returns the
    /// number of tokens; `BufferTooSmall` with `*needed` set when `out` is
    /// too short (nothing meaningful is written then).
    pub fn tokenize(
        &self,
        text: &[u8],
        add_bos: bool,
        scratch: &mut [u8],
        out: &mut [u32],
        needed: &mut usize,
    ) -> Result<usize> {
        let need = Self::scratch_size(text.len()).ok_or(Error::InvalidArgument)?;
        if scratch.len() < need {
            return Err(Error::BufferTooSmall);
        }
        if (scratch.as_ptr() as usize) % ALIGN != 0 {
            return Err(Error::Misaligned);
        }
        let mut w = Writer { out, n: 0 };
        if add_bos {
            w.push(self.bos);
        }
        if !text.is_empty() {
            self.spm(text, scratch, &mut w)?;
        }
        *needed = w.n;
        if w.n > w.out.len() {
            return Err(Error::BufferTooSmall);
        }
        Ok(w.n)
    }

    fn spm(&self, text: &[u8], scratch: &mut [u8], w: &mut Writer<'_>) -> Result<()> {
        let cap = text.len() * 3 + 3;
        let (esc, rest) = scratch.split_at_mut(round_up(cap).ok_or(Error::InvalidArgument)?);
        let mut n = 0;
        let mut put = |b: &[u8]| {
            esc[n..n + b.len()].copy_from_slice(b);
            n += b.len();
        };
        if self.add_space_prefix {
            put("\u{2581}".as_bytes());
        }
        for &c in text {
            if c == b' ' {
                put("\u{2581}".as_bytes());
            } else {
                put(&[c]);
            }
        }
        let esc = &esc[..n];
        let sym_bytes = round_up(cap * 16).ok_or(Error::InvalidArgument)?;
        let (sym_mem, heap_mem) = rest.split_at_mut(sym_bytes);
        let syms: &mut [[u32; 4]] = bytemuck::try_cast_slice_mut(&mut sym_mem[..cap * 16])
            .map_err(|_| Error::Misaligned)?;
        let heap: &mut [[u32; 4]] = bytemuck::try_cast_slice_mut(&mut heap_mem[..cap * 48])
            .map_err(|_| Error::Misaligned)?;
        // Symbols: [start, len, prev, next] (NONE for none), one per UTF-8
        // character (a stray byte is its own symbol).
        let mut ns = 0;
        let mut off = 0;
        while off < esc.len() {
            const LEN: [usize; 16] = [1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4];
            let len = LEN[(esc[off] >> 4) as usize].min(esc.len() - off);
            syms[ns] = [
                off as u32,
                len as u32,
                if ns == 0 { NONE } else { ns as u32 - 1 },
                0,
            ];
            off += len;
            syms[ns][3] = if off == esc.len() {
                NONE
            } else {
                ns as u32 + 1
            };
            ns += 1;
        }
        let mut q = Heap { h: heap, n: 0 };
        for i in 1..ns {
            self.try_bigram(esc, syms, &mut q, i - 1, i);
        }
        while let Some([left, right, _, size]) = q.pop() {
            let (l, r) = (left as usize, right as usize);
            if syms[l][1] == 0 || syms[r][1] == 0 || syms[l][1] + syms[r][1] != size {
                continue;
            }
            syms[l][1] += syms[r][1];
            syms[r][1] = 0;
            syms[l][3] = syms[r][3];
            if syms[r][3] != NONE {
                syms[syms[r][3] as usize][2] = left;
            }
            let (prev, next) = (syms[l][2], syms[l][3]);
            if prev != NONE {
                self.try_bigram(esc, syms, &mut q, prev as usize, l);
            }
            if next != NONE {
                self.try_bigram(esc, syms, &mut q, l, next as usize);
            }
        }
        let mut i = 0u32;
        while i != NONE && ns > 0 {
            let [s, len, _, next] = syms[i as usize];
            let piece = &esc[s as usize..(s + len) as usize];
            match self.lookup(piece) {
                Some(id) => w.push(id),
                None => {
                    for &b in piece {
                        let id = self.byte_tokens[b as usize];
                        // Without byte tokens the unknown token stands in.
                        w.push(if id == NONE { 0 } else { id });
                    }
                }
            }
            i = next;
        }
        Ok(())
    }

    fn try_bigram(&self, esc: &[u8], syms: &[[u32; 4]], q: &mut Heap<'_>, l: usize, r: usize) {
        let (s, len) = (syms[l][0] as usize, (syms[l][1] + syms[r][1]) as usize);
        if let Some(id) = self.lookup(&esc[s..s + len]) {
            q.push([l as u32, r as u32, self.score(id).to_bits(), len as u32]);
        }
    }

    /// The text of token `id` as bytes: `▁` becomes a space, `<0xNN>` the byte
    /// NN; control and unknown tokens are empty unless `special`.
    pub fn piece(&self, id: u32, special: bool, buf: &mut [u8; 256]) -> usize {
        let t = self.token_text(id);
        match self.token_type(id) {
            token_type::BYTE if t.len() == 6 => {
                let hex = |c: u8| (c as char).to_digit(16).unwrap_or(0) as u8;
                buf[0] = hex(t[3]) << 4 | hex(t[4]);
                1
            }
            token_type::CONTROL | token_type::UNKNOWN if !special => 0,
            _ => {
                let mut n = 0;
                let mut i = 0;
                while i < t.len() && n < buf.len() {
                    if t[i..].starts_with("\u{2581}".as_bytes()) {
                        buf[n] = b' ';
                        i += 3;
                    } else {
                        buf[n] = t[i];
                        i += 1;
                    }
                    n += 1;
                }
                n
            }
        }
    }
}

struct Writer<'o> {
    out: &'o mut [u32],
    n: usize,
}

impl Writer<'_> {
    fn push(&mut self, id: u32) {
        if let Some(o) = self.out.get_mut(self.n) {
            *o = id;
        }
        self.n += 1;
    }
}

/// Max-heap of bigrams `[left, right, score bits, size]`: highest score
/// first, then leftmost.
struct Heap<'h> {
    h: &'h mut [[u32; 4]],
    n: usize,
}

impl Heap<'_> {
    fn before(a: &[u32; 4], b: &[u32; 4]) -> bool {
        let (sa, sb) = (f32::from_bits(a[2]), f32::from_bits(b[2]));
        sa > sb || (sa == sb && a[0] < b[0])
    }
    fn push(&mut self, e: [u32; 4]) {
        if self.n == self.h.len() {
            return; // cannot happen: at most 3 pushes per symbol
        }
        let mut i = self.n;
        self.h[i] = e;
        self.n += 1;
        while i > 0 {
            let p = (i - 1) / 2;
            if Self::before(&self.h[i], &self.h[p]) {
                self.h.swap(i, p);
                i = p;
            } else {
                break;
            }
        }
    }
    fn pop(&mut self) -> Option<[u32; 4]> {
        if self.n == 0 {
            return None;
        }
        let top = self.h[0];
        self.n -= 1;
        self.h[0] = self.h[self.n];
        let mut i = 0;
        loop {
            let (l, r) = (2 * i + 1, 2 * i + 2);
            let mut m = i;
            if l < self.n && Self::before(&self.h[l], &self.h[m]) {
                m = l;
            }
            if r < self.n && Self::before(&self.h[r], &self.h[m]) {
                m = r;
            }
            if m == i {
                break;
            }
            self.h.swap(i, m);
            i = m;
        }
        Some(top)
    }
}
