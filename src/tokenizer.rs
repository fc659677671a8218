//! Text to tokens and back, from the vocabulary stored in the GGUF file.
//!
//! Two kinds, as llama.cpp implements them:
//! - `tokenizer.ggml.model = llama`: SentencePiece BPE as in LLaMA 1/2
//!   (score-driven merges of adjacent symbols, spaces written as U+2581 "▁",
//!   a leading space, byte fallback through `<0xNN>` tokens);
//! - `gpt2`: byte-level BPE (the pre-tokenizer `tokenizer.ggml.pre` names,
//!   in [`crate::pretokenize`]; GPT-2's byte-to-character map; merges by
//!   rank; with LLaMA 3's and Tekken's, a whole word that is a token kept as
//!   is).
//!
//! As llama.cpp does, special tokens (control, user-defined, unknown, and the
//! end-of-generation tokens it recognizes by their text) are cut out of the
//! text first, longest first; user-defined ones always, the others only when
//! asked to parse special tokens.
//!
//! Token strings are read in place from the GGUF bytes; the lookup tables
//! live in caller memory ([`Vocab::size`]), and encoding works in caller
//! scratch ([`Vocab::scratch_size`]). Round trip: detokenizing the tokens of
//! a valid UTF-8 text gives the text back, except that SentencePiece adds
//! one leading space (as llama.cpp's does). Invalid UTF-8 is read as
//! llama.cpp reads it (a bad byte becomes U+FFFD for BPE; SentencePiece
//! falls back to byte tokens).

use crate::error::{Error, Result};
use crate::gguf::{Array, Gguf, Value, ValueType};
use crate::model::{round_up, ALIGN};
use crate::pretokenize::{self, PreTokenizer};

/// Kinds of vocabulary.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VocabKind {
    /// SentencePiece BPE (`llama`).
    Spm,
    /// Byte-level BPE (`gpt2`) with one of the pre-tokenizers of
    /// [`PreTokenizer`].
    Bpe,
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

/// Token attributes as llama.cpp derives them from the token types (bits).
mod attr {
    pub const UNDEFINED: u8 = 0;
    pub const UNKNOWN: u8 = 1;
    pub const UNUSED: u8 = 2;
    pub const NORMAL: u8 = 4;
    pub const CONTROL: u8 = 8;
    pub const USER_DEFINED: u8 = 16;
    pub const BYTE: u8 = 32;
    /// Recognized in text (`parse_special` for the first two).
    pub const SPECIAL: u8 = CONTROL | UNKNOWN | USER_DEFINED;
}

/// No such token.
pub const NONE: u32 = u32::MAX;

/// Most attribute overrides and end-of-generation ids a vocabulary holds.
const MAX_OVERRIDES: usize = 48;
const MAX_EOG: usize = 40;

/// Texts llama.cpp takes for EOT when the file names none (first found).
const EOT_TEXTS: &[&str] = &[
    "<|eot_id|>",
    "<|im_end|>",
    "<|end|>",
    "<end_of_turn>",
    "<|endoftext|>",
    "<|end_of_text|>",
    "<EOT>",
    "_<EOT>",
    "[EOT]",
    "<｜end▁of▁sentence｜>",
    "<end_of_utterance>",
];
const EOM_TEXTS: &[&str] = &["<|eom_id|>"];
const FIM_PRE_TEXTS: &[&str] = &[
    "<|fim_prefix|>",
    "<fim-prefix>",
    "<fim_prefix>",
    "<｜fim▁begin｜>",
    "<PRE>",
    "▁<PRE>",
    "<|code_prefix|>",
    "<|prefix|>",
];
const FIM_SUF_TEXTS: &[&str] = &[
    "<|fim_suffix|>",
    "<fim-suffix>",
    "<fim_suffix>",
    "<｜fim▁hole｜>",
    "<SUF>",
    "▁<SUF>",
    "<|code_suffix|>",
    "<|suffix|>",
];
const FIM_MID_TEXTS: &[&str] = &[
    "<|fim_middle|>",
    "<fim-middle>",
    "<fim_middle>",
    "<｜fim▁end｜>",
    "<MID>",
    "▁<MID>",
    "<|code_middle|>",
    "<|middle|>",
];
const FIM_PAD_TEXTS: &[&str] = &["<|fim_pad|>", "<fim-pad>", "<fim_pad>", "<PAD>", "[PAD]"];
const FIM_REP_TEXTS: &[&str] = &[
    "<|fim_repo|>",
    "<|repo_name|>",
    "<fim-repo>",
    "<REPO>",
    "<reponame>",
];
const FIM_SEP_TEXTS: &[&str] = &["<|file_sep|>"];
/// Texts that end generation wherever they are (llama.cpp's list).
const EOG_TEXTS: &[&str] = &[
    "<|eot_id|>",
    "<|im_end|>",
    "<|end|>",
    "<|return|>",
    "<|call|>",
    "<|flush|>",
    "<|calls|>",
    "<end_of_turn>",
    "<|endoftext|>",
    "</s>",
    "<|eom_id|>",
    "<EOT>",
    "_<EOT>",
    "[EOT]",
    "[EOS]",
    "<|end_of_text|>",
    "<end_of_utterance>",
    "<eos>",
    "<turn|>",
    "<|tool_response>",
    "<｜end▁of▁sentence｜>",
    "[e~[",
];

/// The BOS and EOS tokens [`Vocab::tokenize_with`] puts around the text.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AddTokens {
    pub bos: bool,
    pub eos: bool,
}

impl AddTokens {
    /// Neither.
    pub const NONE: Self = Self {
        bos: false,
        eos: false,
    };
    /// BOS first, no EOS.
    pub const BOS: Self = Self {
        bos: true,
        eos: false,
    };
}

/// A vocabulary over the GGUF bytes plus a string-to-id table in caller memory.
pub struct Vocab<'a> {
    kind: VocabKind,
    pre: PreTokenizer,
    bytes: &'a [u8],
    /// Per token: offset of its text in `bytes`, and its length.
    spans: &'a mut [u32],
    /// Open-addressing table of token ids (NONE = empty), power-of-two size.
    table: &'a mut [u32],
    /// BPE merges: `[left id, right id, rank, result id]`, open addressing
    /// keyed by the pair (left NONE = empty); empty for SPM.
    merges: &'a mut [[u32; 4]],
    /// Ids of the special tokens (attributes control, user-defined or
    /// unknown), longest text first: the order llama.cpp cuts them out.
    special: &'a mut [u32],
    n_special: usize,
    /// Per special token, `[window hash, rank in special]`, sorted by hash
    /// within each run of equal lengths of `special` (see `cut_special`).
    special_hash: &'a mut [[u64; 2]],
    scores: Option<Array<'a>>,
    types: Option<Array<'a>>,
    /// Attributes llama.cpp changes from the token types: `(id, attr)`.
    overrides: [(u32, u8); MAX_OVERRIDES],
    n_overrides: usize,
    /// End-of-generation tokens.
    eog: [u32; MAX_EOG],
    n_eog: usize,
    byte_tokens: [u32; 256],
    /// The token of each byte-level character (BPE), by code point.
    char_ids: [u32; BYTE_CHARS],
    n_vocab: usize,
    bos: u32,
    eos: u32,
    eot: u32,
    eom: u32,
    unk: u32,
    pad: u32,
    add_bos: bool,
    add_eos: bool,
    add_space_prefix: bool,
    ignore_merges: bool,
    hash: Hasher,
    /// Longest probe sequence in `table` and in `merges` (searches stop
    /// after it).
    probe: usize,
    merge_probe: usize,
}

/// SipHash (Aumasson and Bernstein) with `C` compression and `D`
/// finalization rounds, fed in pieces.
pub(crate) struct Sip<const C: usize, const D: usize> {
    v: [u64; 4],
    tail: u64,
    ntail: usize,
    len: usize,
}

impl<const C: usize, const D: usize> Sip<C, D> {
    pub(crate) fn new(k0: u64, k1: u64) -> Self {
        Self {
            v: [
                k0 ^ 0x736f_6d65_7073_6575,
                k1 ^ 0x646f_7261_6e64_6f6d,
                k0 ^ 0x6c79_6765_6e65_7261,
                k1 ^ 0x7465_6462_7974_6573,
            ],
            tail: 0,
            ntail: 0,
            len: 0,
        }
    }

    fn round(&mut self) {
        let v = &mut self.v;
        v[0] = v[0].wrapping_add(v[1]);
        v[1] = v[1].rotate_left(13) ^ v[0];
        v[0] = v[0].rotate_left(32);
        v[2] = v[2].wrapping_add(v[3]);
        v[3] = v[3].rotate_left(16) ^ v[2];
        v[0] = v[0].wrapping_add(v[3]);
        v[3] = v[3].rotate_left(21) ^ v[0];
        v[2] = v[2].wrapping_add(v[1]);
        v[1] = v[1].rotate_left(17) ^ v[2];
        v[2] = v[2].rotate_left(32);
    }

    fn word(&mut self, m: u64) {
        self.v[3] ^= m;
        for _ in 0..C {
            self.round();
        }
        self.v[0] ^= m;
    }

    pub(crate) fn write(&mut self, mut s: &[u8]) {
        self.len = self.len.wrapping_add(s.len());
        while self.ntail > 0 && !s.is_empty() {
            self.tail |= (s[0] as u64) << (8 * self.ntail);
            self.ntail = (self.ntail + 1) % 8;
            s = &s[1..];
            if self.ntail == 0 {
                let m = self.tail;
                self.tail = 0;
                self.word(m);
            }
        }
        if s.is_empty() {
            return;
        }
        // Here the tail is empty.
        let mut words = s.chunks_exact(8);
        for w in &mut words {
            let m = u64::from_le_bytes([w[0], w[1], w[2], w[3], w[4], w[5], w[6], w[7]]);
            self.word(m);
        }
        for (i, &b) in words.remainder().iter().enumerate() {
            self.tail |= (b as u64) << (8 * i);
        }
        self.ntail = words.remainder().len();
    }

    pub(crate) fn finish(mut self) -> u64 {
        let m = self.tail | ((self.len as u64) << 56);
        self.word(m);
        self.v[2] ^= 0xff;
        for _ in 0..D {
            self.round();
        }
        self.v[0] ^ self.v[1] ^ self.v[2] ^ self.v[3]
    }
}

/// Hashes of token strings and merge pairs for the vocabulary's tables,
/// keyed by a SipHash-2-4 digest of everything the tables hold (every
/// token text and merge line): a file cannot pick strings that collide,
/// because changing a string changes the key (a preimage of a 64-bit
/// SipHash, not a search for colliding strings under a known hash). FNV-1a
/// unkeyed let 65,536 chosen strings take 9.4 s to load.
#[derive(Clone, Copy)]
struct Hasher {
    k0: u64,
    k1: u64,
}

impl Hasher {
    fn string(&self, s: &[u8]) -> usize {
        let mut h = Sip::<1, 3>::new(self.k0, self.k1);
        h.write(s);
        h.finish() as usize
    }

    fn pair(&self, a: u32, b: u32) -> usize {
        // A bijective mixer (murmur3's fmix64) of the pair under the key.
        let mut k = ((a as u64) << 32 | b as u64) ^ self.k0;
        k ^= k >> 33;
        k = k.wrapping_mul(0xff51_afd7_ed55_8ccd);
        k ^= k >> 33;
        k = k.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
        k ^= k >> 33;
        (k ^ self.k1) as usize
    }
}

/// Longest probe sequence a table may hold. With the keyed hash and tables
/// at most half full, real vocabularies stay far below it; a file that
/// reaches it is refused (`BadMetadata`) rather than loaded in time that
/// grows with the square of its size, and lookups stop after it.
const MAX_PROBE: usize = 256;

fn attr_of_type(t: i32) -> u8 {
    match t {
        token_type::NORMAL => attr::NORMAL,
        token_type::UNKNOWN => attr::UNKNOWN,
        token_type::CONTROL => attr::CONTROL,
        token_type::USER_DEFINED => attr::USER_DEFINED,
        token_type::UNUSED => attr::UNUSED,
        token_type::BYTE => attr::BYTE,
        _ => attr::UNDEFINED,
    }
}

struct Meta<'a> {
    kind: VocabKind,
    pre: pretokenize::PreInfo,
    tokens: Array<'a>,
    table_len: usize,
    merges: Option<Array<'a>>,
    merges_len: usize,
    n_special: usize,
}

fn meta<'a>(g: &Gguf<'a>) -> Result<Meta<'a>> {
    let model = g
        .get("tokenizer.ggml.model")
        .and_then(|v| v.as_bytes())
        .ok_or(Error::UnsupportedTokenizer)?;
    let (kind, pre) = match model {
        b"llama" => (
            VocabKind::Spm,
            pretokenize::PreInfo {
                pre: PreTokenizer::Default,
                ignore_merges: false,
                add_bos: true,
            },
        ),
        b"gpt2" => {
            let name = match g.get("tokenizer.ggml.pre") {
                None => &[][..],
                Some(v) => v.as_bytes().ok_or(Error::BadMetadata)?,
            };
            let pre = PreTokenizer::from_name(name).ok_or(Error::UnsupportedTokenizer)?;
            (VocabKind::Bpe, pre)
        }
        _ => return Err(Error::UnsupportedTokenizer),
    };
    let merges = match (kind, g.get("tokenizer.ggml.merges")) {
        (VocabKind::Spm, _) => None,
        (_, Some(Value::Array(a))) if a.elem_type() == ValueType::String => Some(a),
        (_, Some(_)) => return Err(Error::BadMetadata),
        (_, None) => return Err(Error::UnsupportedTokenizer),
    };
    let merges_len = merges.map_or(0, |m| (m.len() * 2).next_power_of_two());
    let tokens = match g.get("tokenizer.ggml.tokens") {
        Some(Value::Array(a)) if a.elem_type() == ValueType::String && !a.is_empty() => a,
        Some(_) => return Err(Error::BadMetadata),
        None => return Err(Error::UnsupportedTokenizer),
    };
    if tokens.len() >= NONE as usize / 4 {
        return Err(Error::BadMetadata);
    }
    let table_len = (tokens.len() * 2).next_power_of_two();
    // Tokens special by their type, plus those llama.cpp makes control.
    let n_special = match g.get("tokenizer.ggml.token_type") {
        Some(Value::Array(a)) if a.elem_type() == ValueType::I32 => a
            .iter()
            .filter(|v| matches!(v, Value::I32(t) if attr_of_type(*t) & attr::SPECIAL != 0))
            .count(),
        _ => 0,
    } + MAX_OVERRIDES;
    Ok(Meta {
        kind,
        pre,
        tokens,
        table_len,
        merges,
        merges_len,
        n_special,
    })
}

impl<'a> Vocab<'a> {
    /// Bytes of caller memory [`Vocab::init`] needs for this file.
    pub fn size(gguf: &[u8]) -> Result<usize> {
        let g = Gguf::parse(gguf)?;
        let m = meta(&g)?;
        let spans = round_up(m.tokens.len() * 8).ok_or(Error::BadMetadata)?;
        let table = round_up(m.table_len * 4).ok_or(Error::BadMetadata)?;
        let merges = round_up(m.merges_len * 16).ok_or(Error::BadMetadata)?;
        let special = round_up(m.n_special * 4).ok_or(Error::BadMetadata)?;
        let special_hash = round_up(m.n_special * 16).ok_or(Error::BadMetadata)?;
        spans
            .checked_add(table)
            .and_then(|v| v.checked_add(merges))
            .and_then(|v| v.checked_add(special))
            .and_then(|v| v.checked_add(special_hash))
            .ok_or(Error::BadMetadata)
    }

    /// Reads the vocabulary of `gguf` and builds its lookup table in `mem`.
    pub fn init(gguf: &'a [u8], mem: &'a mut [u8]) -> Result<Self> {
        let g = Gguf::parse(gguf)?;
        let m = meta(&g)?;
        let n = m.tokens.len();
        if !(mem.as_ptr() as usize).is_multiple_of(ALIGN) {
            return Err(Error::Misaligned);
        }
        if mem.len() < Self::size(gguf)? {
            return Err(Error::BufferTooSmall);
        }
        let spans_len = round_up(n * 8).ok_or(Error::BadMetadata)?;
        let (a, b) = mem.split_at_mut(spans_len);
        let spans: &mut [u32] =
            bytemuck::try_cast_slice_mut(&mut a[..n * 8]).map_err(|_| Error::Misaligned)?;
        let table_bytes = round_up(m.table_len * 4).ok_or(Error::BadMetadata)?;
        let (b, c) = b.split_at_mut(table_bytes);
        let table: &mut [u32] = bytemuck::try_cast_slice_mut(&mut b[..m.table_len * 4])
            .map_err(|_| Error::Misaligned)?;
        let (c, d) = c.split_at_mut(round_up(m.merges_len * 16).ok_or(Error::BadMetadata)?);
        let merges: &mut [[u32; 4]] = bytemuck::try_cast_slice_mut(&mut c[..m.merges_len * 16])
            .map_err(|_| Error::Misaligned)?;
        let (d, e) = d.split_at_mut(round_up(m.n_special * 4).ok_or(Error::BadMetadata)?);
        let special: &mut [u32] = bytemuck::try_cast_slice_mut(&mut d[..m.n_special * 4])
            .map_err(|_| Error::Misaligned)?;
        let special_hash: &mut [[u64; 2]] =
            bytemuck::try_cast_slice_mut(&mut e[..m.n_special * 16])
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
        // llama.cpp's defaults, dropped when outside the vocabulary; an id
        // the file names must be inside it.
        let id = |key: &str, default: u32| -> Result<u32> {
            match g.get(key) {
                None => Ok(if (default as usize) < n {
                    default
                } else {
                    NONE
                }),
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
        let spm = m.kind == VocabKind::Spm;
        let (bos, eos, unk) = if spm { (1, 2, 0) } else { (11, 11, NONE) };
        let mut v = Vocab {
            kind: m.kind,
            pre: m.pre.pre,
            bytes: gguf,
            spans,
            table,
            merges,
            special,
            n_special: 0,
            special_hash,
            scores,
            types,
            overrides: [(NONE, 0); MAX_OVERRIDES],
            n_overrides: 0,
            eog: [NONE; MAX_EOG],
            n_eog: 0,
            byte_tokens: [NONE; 256],
            char_ids: [NONE; BYTE_CHARS],
            n_vocab: n,
            bos: id("tokenizer.ggml.bos_token_id", bos)?,
            eos: id("tokenizer.ggml.eos_token_id", eos)?,
            eot: id("tokenizer.ggml.eot_token_id", NONE)?,
            eom: id("tokenizer.ggml.eom_token_id", NONE)?,
            unk: id("tokenizer.ggml.unknown_token_id", unk)?,
            pad: id("tokenizer.ggml.padding_token_id", NONE)?,
            add_bos: flag("tokenizer.ggml.add_bos_token", m.pre.add_bos)?,
            add_eos: flag("tokenizer.ggml.add_eos_token", false)?,
            add_space_prefix: flag("tokenizer.ggml.add_space_prefix", spm)?,
            ignore_merges: m.pre.ignore_merges,
            hash: Hasher { k0: 0, k1: 0 },
            probe: 0,
            merge_probe: 0,
        };
        // The key: a digest of every string the tables will hold.
        let mut key = Sip::<2, 4>::new(0x6e61_6e6f_6c6c_616d, 0x766f_6361_6220_6b65);
        for i in 0..n {
            let t = v.token_text(i as u32);
            key.write(&(t.len() as u64).to_le_bytes());
            key.write(t);
        }
        if let Some(list) = m.merges {
            for item in list.iter() {
                let text = item.as_bytes().ok_or(Error::BadMetadata)?;
                key.write(&(text.len() as u64).to_le_bytes());
                key.write(text);
            }
        }
        let k0 = key.finish();
        v.hash = Hasher {
            k0,
            k1: k0.rotate_left(29) ^ 0x9e37_79b9_7f4a_7c15,
        };
        v.table.fill(NONE);
        let mask = v.table.len() - 1;
        for i in 0..n {
            let t = v.token_text(i as u32);
            let mut h = v.hash.string(t) & mask;
            // First id wins for duplicate strings.
            let mut probe = 0;
            while v.table[h] != NONE {
                if v.token_text(v.table[h]) == t {
                    break;
                }
                h = (h + 1) & mask;
                probe += 1;
                if probe > MAX_PROBE {
                    return Err(Error::BadMetadata);
                }
            }
            v.probe = v.probe.max(probe);
            if v.table[h] == NONE {
                v.table[h] = i as u32;
            }
        }
        if let Some(list) = m.merges {
            v.merges.fill([NONE; 4]);
            let mask = v.merges.len() - 1;
            for (rank, item) in list.iter().enumerate() {
                let text = item.as_bytes().ok_or(Error::BadMetadata)?;
                // llama.cpp looks for the space from the second byte on.
                let Some(sp) = text.iter().skip(1).position(|&c| c == b' ') else {
                    continue;
                };
                let (l, r) = (&text[..sp + 1], &text[sp + 2..]);
                let (Some(a), Some(b)) = (v.lookup(l), v.lookup(r)) else {
                    continue;
                };
                let mut joined = [0u8; 256];
                if l.len() + r.len() > joined.len() {
                    continue;
                }
                joined[..l.len()].copy_from_slice(l);
                joined[l.len()..l.len() + r.len()].copy_from_slice(r);
                let Some(res) = v.lookup(&joined[..l.len() + r.len()]) else {
                    continue;
                };
                let mut h = v.hash.pair(a, b) & mask;
                let mut probe = 0;
                while v.merges[h][0] != NONE {
                    if v.merges[h][0] == a && v.merges[h][1] == b {
                        break;
                    }
                    h = (h + 1) & mask;
                    probe += 1;
                    if probe > MAX_PROBE {
                        return Err(Error::BadMetadata);
                    }
                }
                v.merge_probe = v.merge_probe.max(probe);
                if v.merges[h][0] == NONE {
                    v.merges[h] = [a, b, rank as u32, res];
                }
            }
        }
        v.special_tokens(&g);
        for b in 0..256usize {
            let mut name = *b"<0x00>";
            const HEX: &[u8; 16] = b"0123456789ABCDEF";
            name[3] = HEX[b >> 4];
            name[4] = HEX[b & 15];
            if let Some(id) = v.lookup(&name) {
                v.byte_tokens[b] = id;
            }
            let mut e = [0u8; 4];
            let c = byte_char(b as u8, &mut e);
            v.char_ids[BYTE_TO_CHAR[b] as usize] = v.lookup(c).unwrap_or(NONE);
        }
        Ok(v)
    }

    /// What llama.cpp works out from the token texts: EOT, EOM and FIM
    /// tokens when the file names none, the end-of-generation set, the
    /// attributes it changes; then the special tokens, longest first.
    fn special_tokens(&mut self, g: &Gguf<'_>) {
        let find = |v: &Self, texts: &[&str]| {
            texts
                .iter()
                .find_map(|t| v.lookup(t.as_bytes()))
                .unwrap_or(NONE)
        };
        let mut fim = [NONE; 6];
        if self.eot == NONE {
            self.eot = find(self, EOT_TEXTS);
            self.make_control(self.eot);
        }
        if self.eom == NONE {
            self.eom = find(self, EOM_TEXTS);
            self.make_control(self.eom);
        }
        let keys = [
            ("tokenizer.ggml.fim_pre_token_id", FIM_PRE_TEXTS),
            ("tokenizer.ggml.fim_suf_token_id", FIM_SUF_TEXTS),
            ("tokenizer.ggml.fim_mid_token_id", FIM_MID_TEXTS),
            ("tokenizer.ggml.fim_pad_token_id", FIM_PAD_TEXTS),
            ("tokenizer.ggml.fim_rep_token_id", FIM_REP_TEXTS),
            ("tokenizer.ggml.fim_sep_token_id", FIM_SEP_TEXTS),
        ];
        let old_keys = [
            "tokenizer.ggml.prefix_token_id",
            "tokenizer.ggml.suffix_token_id",
            "tokenizer.ggml.middle_token_id",
        ];
        for (k, (key, texts)) in keys.iter().enumerate() {
            let named = |key: &str| {
                g.get(key)
                    .and_then(|v| v.as_u64())
                    .filter(|&x| (x as usize) < self.n_vocab)
                    .map(|x| x as u32)
            };
            fim[k] = match named(key).or_else(|| old_keys.get(k).and_then(|o| named(o))) {
                Some(id) => id,
                None => {
                    let id = find(self, texts);
                    self.make_control(id);
                    id
                }
            };
        }
        // fim pad, rep and sep end generation, then the texts of the list.
        for id in [fim[3], fim[4], fim[5]] {
            self.add_eog(id);
        }
        for t in EOG_TEXTS {
            if let Some(id) = self.lookup(t.as_bytes()) {
                self.add_eog(id);
                self.make_control(id);
            }
        }
        // gpt-oss: shown always.
        for t in ["<|channel|>", "<|message|>", "<|start|>", "<|constrain|>"] {
            if let Some(id) = self.lookup(t.as_bytes()) {
                self.set_attr(id, attr::USER_DEFINED);
            }
        }
        for id in [self.eos, self.eot, self.eom] {
            self.add_eog(id);
        }
        // o200k_harmony and solar-open: <|end|> is no end there.
        let has = |v: &Self, t: &str| v.lookup(t.as_bytes()).is_some_and(|id| v.is_eog(id));
        if has(self, "<|end|>")
            && ((has(self, "<|return|>") && (has(self, "<|call|>") || has(self, "<|calls|>")))
                || ((has(self, "<|call|>") || has(self, "<|calls|>")) && has(self, "<|flush|>")))
        {
            if let Some(id) = self.lookup(b"<|end|>") {
                self.remove_eog(id);
                self.set_attr(id, attr::USER_DEFINED);
            }
        }
        // Gemma 4 and PLaMo: </s> is a normal token.
        if has(self, "</s>") && (has(self, "<|tool_response>") || has(self, "<|plamo:eos|>")) {
            if let Some(id) = self.lookup(b"</s>") {
                self.remove_eog(id);
                self.set_attr(id, attr::NORMAL);
            }
        }
        let mut k = 0;
        for id in 0..self.n_vocab as u32 {
            if self.attr(id) & attr::SPECIAL != 0 && k < self.special.len() {
                self.special[k] = id;
                k += 1;
            }
        }
        self.n_special = k;
        let spans = &*self.spans;
        let key = |id: u32| (core::cmp::Reverse(spans[2 * id as usize + 1]), id);
        crate::sampler::heap_sort(&mut self.special[..k], |&a, &b| key(a) < key(b));
        // The window hashes, sorted within each length.
        let mut i = 0;
        while i < k {
            let len = self.token_text(self.special[i]).len();
            let mut j = i;
            while j < k && self.token_text(self.special[j]).len() == len {
                let h = self.window_hash(self.token_text(self.special[j]));
                self.special_hash[j] = [h, j as u64];
                j += 1;
            }
            crate::sampler::heap_sort(&mut self.special_hash[i..j], |a, b| a < b);
            i = j;
        }
    }

    /// The polynomial hash of `s` modulo 2^61 - 1, with a base drawn from
    /// the vocabulary's key: what `cut_special` rolls over the text.
    fn window_hash(&self, s: &[u8]) -> u64 {
        let b = self.roll_base();
        s.iter()
            .fold(0, |h, &c| add_mod61(mul_mod61(h, b), c as u64 + 1))
    }

    fn roll_base(&self) -> u64 {
        (self.hash.k1 % (M61 - 1000)) + 257
    }

    fn set_attr(&mut self, id: u32, a: u8) {
        if id == NONE {
            return;
        }
        if let Some(o) = self.overrides[..self.n_overrides]
            .iter_mut()
            .find(|o| o.0 == id)
        {
            o.1 = a;
        } else if self.n_overrides < MAX_OVERRIDES {
            self.overrides[self.n_overrides] = (id, a);
            self.n_overrides += 1;
        }
    }

    fn make_control(&mut self, id: u32) {
        if id != NONE {
            let a = self.attr(id);
            self.set_attr(id, a | attr::CONTROL);
        }
    }

    fn add_eog(&mut self, id: u32) {
        if id != NONE && !self.is_eog(id) && self.n_eog < MAX_EOG {
            self.eog[self.n_eog] = id;
            self.n_eog += 1;
        }
    }

    fn remove_eog(&mut self, id: u32) {
        if let Some(i) = self.eog[..self.n_eog].iter().position(|&e| e == id) {
            self.eog.copy_within(i + 1..self.n_eog, i);
            self.n_eog -= 1;
        }
    }

    /// The attribute bits of `id` as llama.cpp sets them.
    fn attr(&self, id: u32) -> u8 {
        if let Some(o) = self.overrides[..self.n_overrides]
            .iter()
            .find(|o| o.0 == id)
        {
            return o.1;
        }
        match self.types {
            None => attr::NORMAL,
            Some(_) => attr_of_type(self.token_type(id)),
        }
    }

    /// Number of tokens.
    pub fn n_vocab(&self) -> usize {
        self.n_vocab
    }
    /// The kind of vocabulary.
    pub fn kind(&self) -> VocabKind {
        self.kind
    }
    /// The pre-tokenizer (BPE; [`PreTokenizer::Default`] for SentencePiece).
    pub fn pre_tokenizer(&self) -> PreTokenizer {
        self.pre
    }
    /// Beginning-of-sequence token ([`NONE`] when the file has none).
    pub fn bos(&self) -> u32 {
        self.bos
    }
    /// End-of-sequence token ([`NONE`] when the file has none).
    pub fn eos(&self) -> u32 {
        self.eos
    }
    /// End-of-turn token: the file's, else found by its text as llama.cpp
    /// does (`<|eot_id|>`, `<|im_end|>`, ...; [`NONE`] when none).
    pub fn eot(&self) -> u32 {
        self.eot
    }
    /// End-of-message token (`<|eom_id|>`; [`NONE`] when none).
    pub fn eom(&self) -> u32 {
        self.eom
    }
    /// Unknown token ([`NONE`] when none).
    pub fn unk(&self) -> u32 {
        self.unk
    }
    /// Padding token ([`NONE`] when none).
    pub fn pad(&self) -> u32 {
        self.pad
    }
    /// Whether the file asks for a BOS token at the start (llama.cpp's
    /// default for its kind and pre-tokenizer when it does not say).
    pub fn add_bos(&self) -> bool {
        self.add_bos && self.bos != NONE
    }
    /// Whether the file asks for an EOS token at the end.
    pub fn add_eos(&self) -> bool {
        self.add_eos && self.eos != NONE
    }
    /// BOS and EOS as the file asks for them (llama.cpp's `add_special`).
    pub fn add_special(&self) -> AddTokens {
        AddTokens {
            bos: self.add_bos(),
            eos: self.add_eos(),
        }
    }
    /// Whether generation ends at `id`: EOS, EOT, EOM and the tokens
    /// llama.cpp also counts by their text (`<|im_end|>`, `<end_of_turn>`,
    /// `<|endoftext|>`, ...).
    pub fn is_eog(&self, id: u32) -> bool {
        id != NONE && self.eog[..self.n_eog].contains(&id)
    }
    /// The end-of-generation tokens.
    pub fn eog_tokens(&self) -> &[u32] {
        &self.eog[..self.n_eog]
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
        let mut h = self.hash.string(s) & mask;
        for _ in 0..=self.probe {
            crate::cost::tick(1);
            let id = self.table[h];
            if id == NONE {
                return None;
            }
            if self.token_text(id) == s {
                return Some(id);
            }
            h = (h + 1) & mask;
        }
        None
    }

    /// The longest probe sequence of the token table (at most 256: a file
    /// whose strings would make a longer one is refused).
    pub fn max_probe(&self) -> usize {
        self.probe
    }

    fn score(&self, id: u32) -> f32 {
        self.scores
            .and_then(|a| a.get(id as usize))
            .and_then(|v| v.as_f32())
            .unwrap_or(0.0)
    }

    /// The token type of `id` as the file gives it (NORMAL when the file has
    /// none).
    pub fn token_type(&self, id: u32) -> i32 {
        match self.types.and_then(|a| a.get(id as usize)) {
            Some(Value::I32(t)) => t,
            _ => token_type::NORMAL,
        }
    }

    /// The file's own chat template (`tokenizer.chat_template`), for
    /// [`crate::chat::apply_template`]: `MissingKey` when it has none.
    pub fn chat_template(&self) -> Result<&'a [u8]> {
        crate::chat::gguf_chat_template(self.bytes)
    }

    /// Bytes of scratch [`Vocab::tokenize`] needs for texts of up to
    /// `max_text` bytes.
    pub fn scratch_size(max_text: usize) -> Option<usize> {
        // Special-token cuts: one word per byte (and, for the cutting only,
        // 8 bytes per byte of candidate places in the text area). Text area: the escaped text (SPM: a space becomes
        // 3 bytes) or the code points, the pre-token cuts and one byte-mapped
        // word (BPE: 4 + 1/8 + 6 bytes per byte). Symbols: 16 bytes each, at
        // most 3 per byte; bigram heap: 3 entries of 16 bytes per symbol, and
        // a back link of 4 bytes per symbol; or
        // the pre-tokenizer's matcher, whichever is larger.
        let claims = max_text.checked_mul(4)?;
        let n = max_text.checked_mul(3)?.checked_add(3)?;
        let text = max_text.checked_mul(12)?.checked_add(16)?;
        let sym = round_up(n.checked_mul(16)?)?;
        let heap = round_up(n.checked_mul(48)?)?.checked_add(round_up(n.checked_mul(4)?)?)?;
        let work = round_up(max_work_words(max_text)?.checked_mul(4)?)?;
        let rest = sym.checked_add(heap)?.max(work);
        round_up(claims)?
            .checked_add(round_up(text)?)?
            .checked_add(rest)
    }

    /// Encodes `text` into `out`, prefixed with BOS when `add_bos`. Returns the
    /// number of tokens; `BufferTooSmall` with `*needed` set when `out` is
    /// too short (nothing meaningful is written then).
    pub fn tokenize(
        &self,
        text: &[u8],
        add_bos: bool,
        parse_special: bool,
        scratch: &mut [u8],
        out: &mut [u32],
        needed: &mut usize,
    ) -> Result<usize> {
        let add = AddTokens {
            bos: add_bos,
            eos: false,
        };
        self.tokenize_with(text, add, parse_special, scratch, out, needed)
    }

    /// Encodes `text` into `out` between the BOS and EOS that `add` asks for
    /// ([`Vocab::add_special`]: as the file asks; none when the vocabulary
    /// has no such token). `parse_special`: control and unknown tokens
    /// written in the text are read as those tokens (user-defined ones
    /// always are). Returns the number of tokens; `BufferTooSmall` with
    /// `*needed` set when `out` is too short (nothing meaningful is written
    /// then).
    pub fn tokenize_with(
        &self,
        text: &[u8],
        add: AddTokens,
        parse_special: bool,
        scratch: &mut [u8],
        out: &mut [u32],
        needed: &mut usize,
    ) -> Result<usize> {
        let need = Self::scratch_size(text.len()).ok_or(Error::InvalidArgument)?;
        if scratch.len() < need {
            return Err(Error::BufferTooSmall);
        }
        if !(scratch.as_ptr() as usize).is_multiple_of(ALIGN) {
            return Err(Error::Misaligned);
        }
        // Places are packed into 32 bits in `cut_special`.
        if text.len() > u32::MAX as usize {
            return Err(Error::InvalidArgument);
        }
        let claims_len = round_up(text.len() * 4).ok_or(Error::InvalidArgument)?;
        let (claims, scratch) = scratch.split_at_mut(claims_len);
        let claims: &mut [u32] = bytemuck::try_cast_slice_mut(&mut claims[..text.len() * 4])
            .map_err(|_| Error::Misaligned)?;
        let cut = {
            // The candidate places, in the text area (12 bytes per byte),
            // used by the fragments only after this.
            let found: &mut [u64] = bytemuck::try_cast_slice_mut(&mut scratch[..text.len() * 8])
                .map_err(|_| Error::Misaligned)?;
            self.cut_special(text, parse_special, claims, found)
        };
        let mut w = Writer { out, n: 0 };
        if add.bos && self.bos != NONE {
            w.push(self.bos);
        }
        // SentencePiece adds its space prefix to a fragment that follows a
        // special token or starts the text.
        let mut start = 0;
        // Nothing to look at when no special token was looked for.
        let mut pos = if cut { 0 } else { text.len() };
        let mut prev_special = true;
        while pos < text.len() {
            match claims[pos] {
                0 | CLAIMED => pos += 1,
                c => {
                    let id = c - 1;
                    self.fragment(&text[start..pos], prev_special, scratch, &mut w)?;
                    w.push(id);
                    pos += self.token_text(id).len();
                    start = pos;
                    prev_special = true;
                }
            }
        }
        self.fragment(&text[start..], prev_special, scratch, &mut w)?;
        if add.eos && self.eos != NONE {
            w.push(self.eos);
        }
        *needed = w.n;
        if w.n > w.out.len() {
            return Err(Error::BufferTooSmall);
        }
        Ok(w.n)
    }

    /// Marks where special tokens stand in `text`, as llama.cpp cuts them:
    /// each token, longest first, at every place left to right where it
    /// fits between the tokens already cut. `claims[p]`: id + 1 where a
    /// token starts, [`CLAIMED`] inside it, 0 elsewhere. Returns false,
    /// leaving `claims` as it was, when no length had a token to look for.
    ///
    /// In time linear in the text per distinct length of special tokens
    /// (scanning every token at every position cost 22 s for 65,536 tokens
    /// and 100 KB): for each length, longest first, a rolling hash finds
    /// the places where a token of that length may stand (`found`: rank <<
    /// 32 | place), sorted by rank then place; each is checked and cut in
    /// that order. Every token cut before is at least as long, so a place
    /// is free exactly when its first and last bytes are.
    fn cut_special(
        &self,
        text: &[u8],
        parse_special: bool,
        claims: &mut [u32],
        found: &mut [u64],
    ) -> bool {
        // Cleared before the first pass; with no pass, untouched.
        let mut cleared = false;
        let k = self.n_special;
        let n = text.len();
        let base = self.roll_base();
        // Groups longer than the text are skipped at once.
        let mut i = self.special[..k].partition_point(|&id| self.token_text(id).len() > n);
        while i < k {
            let len = self.token_text(self.special[i]).len();
            let mut j = i;
            // Without `parse_special` only user-defined tokens are cut: a
            // length of control tokens alone (all of LLaMA 3's) needs no pass.
            let mut wanted = parse_special;
            while j < k && self.token_text(self.special[j]).len() == len {
                wanted |= self.attr(self.special[j]) & (attr::CONTROL | attr::UNKNOWN) == 0;
                j += 1;
            }
            let group = &self.special_hash[i..j];
            i = j;
            if len == 0 || !wanted {
                continue;
            }
            if !cleared {
                claims.fill(0);
                cleared = true;
            }
            // base^(len - 1), to roll the first byte out.
            let mut top = 1u64;
            let (mut e, mut sq) = (len - 1, base);
            while e > 0 {
                if e & 1 == 1 {
                    top = mul_mod61(top, sq);
                }
                sq = mul_mod61(sq, sq);
                e >>= 1;
            }
            let mut m = 0;
            let mut h = self.window_hash(&text[..len]);
            crate::cost::tick((n - len + 1) as u64);
            for p in 0..=n - len {
                if p > 0 {
                    let out = mul_mod61(text[p - 1] as u64 + 1, top);
                    h = add_mod61(h, M61 - out);
                    h = add_mod61(mul_mod61(h, base), text[p + len - 1] as u64 + 1);
                }
                if claims[p] != 0 || claims[p + len - 1] != 0 {
                    continue;
                }
                let at = group.partition_point(|e| e[0] < h);
                // The first of equal hashes (the lowest rank of equal texts);
                // two texts of one length with one hash are not expected.
                if let Some(e) = group.get(at).filter(|e| e[0] == h) {
                    if m < found.len() {
                        found[m] = e[1] << 32 | p as u64;
                        m += 1;
                    }
                }
            }
            crate::sampler::heap_sort(&mut found[..m], |a, b| a < b);
            for &f in &found[..m] {
                let (rank, p) = ((f >> 32) as usize, (f & 0xffff_ffff) as usize);
                let id = self.special[rank];
                if claims[p] != 0 || claims[p + len - 1] != 0 {
                    continue;
                }
                if !parse_special && self.attr(id) & (attr::CONTROL | attr::UNKNOWN) != 0 {
                    continue;
                }
                if &text[p..p + len] != self.token_text(id) {
                    continue;
                }
                claims[p] = id + 1;
                claims[p + 1..p + len].fill(CLAIMED);
            }
        }
        cleared
    }

    fn fragment(
        &self,
        text: &[u8],
        prefix: bool,
        scratch: &mut [u8],
        w: &mut Writer<'_>,
    ) -> Result<()> {
        if text.is_empty() {
            return Ok(());
        }
        match self.kind {
            VocabKind::Spm => self.spm(text, prefix && self.add_space_prefix, scratch, w),
            VocabKind::Bpe => self.bpe(text, scratch, w),
        }
    }
    fn spm(&self, text: &[u8], prefix: bool, scratch: &mut [u8], w: &mut Writer<'_>) -> Result<()> {
        let cap = text.len() * 3 + 3;
        let text_area = round_up(text.len() * 12 + 16).ok_or(Error::InvalidArgument)?;
        let (esc, rest) = scratch.split_at_mut(text_area);
        let mut n = 0;
        let mut put = |b: &[u8]| {
            esc[n..n + b.len()].copy_from_slice(b);
            n += b.len();
        };
        if prefix {
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
        let (syms, heap, _) = symbols_and_heap(rest, cap)?;
        // Symbols: [start, len, prev, next] (NONE for none), one per UTF-8
        // character (a stray byte is its own symbol).
        let mut ns = 0;
        let mut off = 0;
        while off < esc.len() {
            let len = symbol_len(esc[off]).min(esc.len() - off);
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

    fn bpe(&self, text: &[u8], scratch: &mut [u8], w: &mut Writer<'_>) -> Result<()> {
        let cap = text.len() * 3 + 3;
        let text_area = round_up(text.len() * 12 + 16).ok_or(Error::InvalidArgument)?;
        let (area, rest) = scratch.split_at_mut(text_area);
        let (cut_bytes, area) = area.split_at_mut((text.len() / 64 + 1) * 8);
        let (cp_bytes, word) = area.split_at_mut(text.len() * 4);
        let cps: &mut [u32] =
            bytemuck::try_cast_slice_mut(cp_bytes).map_err(|_| Error::Misaligned)?;
        let cuts: &mut [u64] =
            bytemuck::try_cast_slice_mut(cut_bytes).map_err(|_| Error::Misaligned)?;
        let n_cp = utf8_decode(text, cps);
        let cps = &cps[..n_cp];
        // Pre-tokens first (the matcher works where the symbols go later).
        let work_words = self.pre.work_words(n_cp).ok_or(Error::InvalidArgument)?;
        {
            let work: &mut [u32] = bytemuck::try_cast_slice_mut(
                rest.get_mut(..work_words * 4)
                    .ok_or(Error::BufferTooSmall)?,
            )
            .map_err(|_| Error::Misaligned)?;
            pretokenize::split(self.pre, cps, &mut cuts[..n_cp / 64 + 1], work);
        }
        let (syms, heap, _) = symbols_and_heap(rest, cap)?;
        let heap: &mut [u64] = bytemuck::try_cast_slice_mut(heap).map_err(|_| Error::Misaligned)?;
        let mut pos = 0;
        while pos < cps.len() {
            let end = pretokenize::next_cut(cuts, pos);
            // The word as UTF-8, each byte written as its byte-level character.
            let mut n = 0;
            for &c in &cps[pos..end] {
                let mut u = [0u8; 4];
                let len = utf8_encode(c, &mut u);
                for &b in &u[..len] {
                    let mut e = [0u8; 4];
                    let enc = byte_char(b, &mut e);
                    word[n..n + enc.len()].copy_from_slice(enc);
                    n += enc.len();
                }
            }
            self.bpe_word(&word[..n], syms, heap, w);
            pos = end;
        }
        Ok(())
    }

    fn merge_of(&self, a: u32, b: u32) -> Option<(u32, u32)> {
        let mask = self.merges.len().checked_sub(1)?;
        let mut h = self.hash.pair(a, b) & mask;
        for _ in 0..=self.merge_probe {
            crate::cost::tick(1);
            let e = self.merges[h];
            if e[0] == NONE {
                return None;
            }
            if e[0] == a && e[1] == b {
                return Some((e[2], e[3]));
            }
            h = (h + 1) & mask;
        }
        None
    }

    /// Byte-pair merges of one byte-mapped word, lowest rank first.
    fn bpe_word(&self, word: &[u8], syms: &mut [[u32; 4]], heap: &mut [u64], w: &mut Writer<'_>) {
        // LLaMA 3 and Tekken ignore merges when the whole word is a token.
        if self.ignore_merges {
            if let Some(id) = self.lookup(word) {
                w.push(id);
                return;
            }
        }
        let ns = self.bpe_symbols(word, syms);
        if ns == 0 {
            return;
        }
        if ns < bucket_min() || !self.bucket_merges(syms, ns, heap) {
            if ns >= bucket_min() {
                // The bucket pass gave up half way: start again.
                #[cfg(test)]
                GIVE_UPS.with(|c| c.set(c.get() + 1));
                self.bpe_symbols(word, syms);
            }
            self.heap_merges(syms, ns, heap);
        }
        // The symbols left, in order (each starts where the last ended).
        let (mut i, mut start) = (0u32, 0usize);
        while i != NONE {
            let [len, id, _, next] = syms[i as usize];
            let len = len as usize;
            if id != NONE {
                w.push(id);
            } else {
                // A symbol that is no token falls back to its bytes as
                // one-byte tokens; a byte without one is dropped, as
                // llama.cpp drops it (Falcon's vocabulary has no token for
                // the byte-level character of 0x04, for one).
                for &b in &word[start..start + len] {
                    if let Some(id) = self.lookup(&[b]) {
                        w.push(id);
                    }
                }
            }
            start += len;
            i = next;
        }
    }

    /// The word's characters as symbols `[len, id, prev, next]` (NONE for
    /// none), both links in the entry a merge touches. Returns their count.
    fn bpe_symbols(&self, word: &[u8], syms: &mut [[u32; 4]]) -> usize {
        let mut ns = 0;
        let mut off = 0;
        while off < word.len() {
            let len = symbol_len(word[off]).min(word.len() - off);
            // Byte-level characters are one or two bytes, below BYTE_CHARS.
            let cp = match len {
                1 => word[off] as usize,
                2 => (word[off] as usize & 0x1f) << 6 | (word[off + 1] as usize & 0x3f),
                _ => BYTE_CHARS,
            };
            let id = match self.char_ids.get(cp) {
                Some(&id) => id,
                None => self.lookup(&word[off..off + len]).unwrap_or(NONE),
            };
            let prev = if ns == 0 { NONE } else { ns as u32 - 1 };
            syms[ns] = [len as u32, id, prev, ns as u32 + 1];
            off += len;
            ns += 1;
        }
        if ns > 0 {
            syms[ns - 1][NEXT] = NONE;
        }
        ns
    }

    /// The merges of llama.cpp's order through a heap: the live pair of the
    /// lowest rank first, the leftmost of equal ranks. O(n log n).
    fn heap_merges(&self, syms: &mut [[u32; 4]], ns: usize, heap: &mut [u64]) {
        // Candidate merges keyed `rank << 32 | left`. An entry is checked
        // when it comes out (its left symbol alive, and the pair with its
        // right neighbour now still of that rank), not removed when a merge
        // makes it stale. Every live pair that has a merge has an entry of
        // its key in the heap, so the first entry that checks out is the
        // merge to make (a stale duplicate of the same key makes that same
        // merge).
        let mut q = RankHeap { h: heap, n: 0 };
        let push = |q: &mut RankHeap<'_>, syms: &[[u32; 4]], l: usize, r: usize| {
            if let Some((rank, _)) = self.merge_of(syms[l][ID], syms[r][ID]) {
                q.push((rank as u64) << 32 | l as u64);
            }
        };
        for i in 1..ns {
            push(&mut q, syms, i - 1, i);
        }
        while let Some(key) = q.pop() {
            let (rank, l) = ((key >> 32) as u32, key as u32 as usize);
            let [len, id, prev, r] = syms[l];
            if len == 0 || r == NONE {
                continue;
            }
            let [r_len, r_id, _, next] = syms[r as usize];
            match self.merge_of(id, r_id) {
                Some((now, res)) if now == rank => {
                    syms[l] = [len + r_len, res, prev, next];
                }
                _ => continue,
            }
            syms[r as usize][LEN] = 0;
            if next != NONE {
                syms[next as usize][PREV] = l as u32;
                push(&mut q, syms, l, next as usize);
            }
            if prev != NONE {
                push(&mut q, syms, prev as usize, l);
            }
        }
    }

    /// The same merges as [`Self::heap_merges`] in O(n), for long words:
    /// one bucket of pairs per rank, the ranks in order, and no order by
    /// position within a bucket. Returns false, with the symbols half
    /// merged, when it cannot vouch for the result; the caller then runs the
    /// heap.
    ///
    /// Why it is the same. In a merge table made by training, a pair that a
    /// merge creates always ranks after that merge (its new token did not
    /// exist before). While that holds, all the pairs of rank r are live
    /// before the first of them merges, and no merge of rank r creates
    /// another: the heap merges them left to right with nothing between.
    /// Two pairs of one rank `A B` with A ≠ B cannot overlap, so their
    /// order does not change the symbols; pairs `A A` overlap in runs of
    /// `A`, and a run is merged from its left end, pair by pair, as the
    /// heap does. Every pair created here is checked to rank after r; so is
    /// the one pair the heap's order creates that another order may not
    /// (`C A`, a merged `C = A B` before a pair `A B` whose merge came
    /// first here). A file that breaks the rule (no trained one does)
    /// makes this give up. The rank buckets are found by a table keyed like
    /// the vocabulary's; a probe past [`MAX_PROBE`], more distinct ranks
    /// than symbols or a lack of memory also make it give up.
    fn bucket_merges(&self, syms: &mut [[u32; 4]], ns: usize, mem: &mut [u64]) -> bool {
        // Room for every entry (ns - 1 first pairs, two per merge); of the
        // rest, a fifth for bucket heads, a tenth for their ranks, a fifth
        // for their order, and the largest power of two left for the map
        // (at most half full).
        let n_entries = 3 * ns;
        let Some(rest) = mem.len().checked_sub(n_entries + RankHeap::OFF + 2 + 4) else {
            return false;
        };
        let d_max = (rest / 5).min(n_entries) & !1;
        let (entries, rest) = mem.split_at_mut(n_entries);
        let (heads, rest) = rest.split_at_mut(d_max);
        let (ranks, rest) = rest.split_at_mut(d_max / 2);
        let (order, map) = rest.split_at_mut(d_max + RankHeap::OFF + 1);
        let map_max = 1 << (usize::BITS - 1 - map.len().leading_zeros());
        let map = &mut map[..map_max];
        let map_len = map_max.min(64);
        map[..map_len].fill(u64::MAX);
        let mut b = Buckets {
            entries,
            n_entries: 0,
            heads,
            ranks: bytemuck::cast_slice_mut(ranks),
            n_buckets: 0,
            map,
            map_len,
            recent: [(NONE, 0); 2],
            order: RankHeap { h: order, n: 0 },
        };
        for i in 1..ns {
            if let Some((rank, _)) = self.merge_of(syms[i - 1][ID], syms[i][ID]) {
                if !b.add(&self.hash, rank, i as u32 - 1) {
                    return false;
                }
            }
        }
        while let Some(key) = b.order.pop() {
            let (rank, bucket) = ((key >> 32) as u32, key as u32 as usize);
            // A new pair must rank after this one.
            let floor = rank + 1;
            let add = |b: &mut Buckets<'_>, syms: &[[u32; 4]], l: u32, r: u32| -> bool {
                match self.merge_of(syms[l as usize][ID], syms[r as usize][ID]) {
                    Some((k, _)) if k < floor => false,
                    Some((k, _)) => b.add(&self.hash, k, l),
                    None => true,
                }
            };
            // Merges `l` and its right neighbour into `res`, and files the
            // pairs that makes.
            let merge = |b: &mut Buckets<'_>, syms: &mut [[u32; 4]], l: usize, res: u32| {
                let [len, _, prev, r] = syms[l];
                let [r_len, _, _, next] = syms[r as usize];
                syms[l] = [len + r_len, res, prev, next];
                syms[r as usize][LEN] = 0;
                if next != NONE {
                    syms[next as usize][PREV] = l as u32;
                }
                (next == NONE || add(b, syms, l as u32, next))
                    && (prev == NONE || add(b, syms, prev, l as u32))
            };
            // The pair of this rank, from its first live entry.
            let mut pair: Option<(u32, u32, u32)> = None;
            let mut e = b.heads[bucket] as u32;
            while e != NONE {
                crate::cost::tick(1);
                let entry = b.entries[e as usize];
                e = (entry >> 32) as u32;
                let l = entry as u32 as usize;
                let [len, id, _, r] = syms[l];
                if len == 0 || r == NONE {
                    continue;
                }
                let r_id = syms[r as usize][ID];
                let (a, bb, res) = match pair {
                    Some(p) => p,
                    None => match self.merge_of(id, r_id) {
                        Some((k, res)) if k == rank => {
                            pair = Some((id, r_id, res));
                            (id, r_id, res)
                        }
                        _ => continue,
                    },
                };
                if id != a || r_id != bb {
                    continue;
                }
                if a != bb {
                    if !merge(&mut b, syms, l, res) {
                        return false;
                    }
                    let next = syms[l][NEXT];
                    if next != NONE && syms[next as usize][ID] == res {
                        // The heap, merging left to right, would have met `C A`.
                        if let Some((k, _)) = self.merge_of(res, a) {
                            if k < floor {
                                return false;
                            }
                        }
                    }
                    continue;
                }
                // A run of `A`: from its left end, pair by pair.
                let mut s = l;
                loop {
                    let p = syms[s][PREV];
                    if p == NONE || syms[p as usize][ID] != a {
                        break;
                    }
                    crate::cost::tick(1);
                    s = p as usize;
                }
                loop {
                    let n1 = syms[s][NEXT];
                    if n1 == NONE || syms[n1 as usize][ID] != a {
                        break;
                    }
                    if !merge(&mut b, syms, s, res) {
                        return false;
                    }
                    let nx = syms[s][NEXT];
                    if nx == NONE || syms[nx as usize][ID] != a {
                        break;
                    }
                    s = nx as usize;
                }
            }
        }
        true
    }

    fn try_bigram(&self, esc: &[u8], syms: &[[u32; 4]], q: &mut Heap<'_>, l: usize, r: usize) {
        let (s, len) = (syms[l][0] as usize, (syms[l][1] + syms[r][1]) as usize);
        if let Some(id) = self.lookup(&esc[s..s + len]) {
            q.push([l as u32, r as u32, self.score(id).to_bits(), len as u32]);
        }
    }

    /// The text of token `id` as bytes, as llama.cpp's `token_to_piece`
    /// gives it: control and unknown tokens are empty unless `special`, and
    /// written as stored (as are user-defined ones); SentencePiece's `▁`
    /// becomes a space and `<0xNN>` the byte NN, byte-level characters their
    /// bytes; unused tokens and those of no known type are empty. Any length
    /// (at most the token text's): returns the length, or `BufferTooSmall`
    /// with `*needed` set when `out` is shorter (nothing meaningful written).
    pub fn piece(
        &self,
        id: u32,
        special: bool,
        out: &mut [u8],
        needed: &mut usize,
    ) -> Result<usize> {
        let mut n = 0;
        self.piece_bytes(id, special, &mut |b| {
            if let Some(o) = out.get_mut(n) {
                *o = b;
            }
            n += 1;
        });
        *needed = n;
        if n > out.len() {
            return Err(Error::BufferTooSmall);
        }
        Ok(n)
    }

    /// Calls `f` with each byte of [`Vocab::piece`]'s text, in order.
    pub(crate) fn piece_bytes(&self, id: u32, special: bool, f: &mut dyn FnMut(u8)) {
        let t = self.token_text(id);
        let a = self.attr(id);
        if a & (attr::CONTROL | attr::UNKNOWN) != 0 {
            if special {
                t.iter().for_each(|&b| f(b));
            }
            return;
        }
        if a & attr::USER_DEFINED != 0 {
            t.iter().for_each(|&b| f(b));
            return;
        }
        if a & attr::NORMAL != 0 {
            if self.kind == VocabKind::Bpe {
                // Byte-level characters back to bytes.
                for c in core::str::from_utf8(t).unwrap_or("").chars() {
                    f(char_to_byte(c as u32));
                }
                return;
            }
            let mut i = 0;
            while i < t.len() {
                if t[i..].starts_with("\u{2581}".as_bytes()) {
                    f(b' ');
                    i += 3;
                } else {
                    f(t[i]);
                    i += 1;
                }
            }
            return;
        }
        if a & attr::BYTE != 0 && t.len() == 6 {
            let hex = |c: u8| (c as char).to_digit(16).unwrap_or(0) as u8;
            f(hex(t[3]) << 4 | hex(t[4]));
        }
    }
}

/// The Mersenne prime 2^61 - 1 (the rolling hash's modulus).
const M61: u64 = (1 << 61) - 1;

/// `a * b mod 2^61 - 1` for `a, b < 2^61`.
fn mul_mod61(a: u64, b: u64) -> u64 {
    let p = a as u128 * b as u128;
    let r = (p & M61 as u128) as u64 + (p >> 61) as u64;
    if r >= M61 {
        r - M61
    } else {
        r
    }
}

/// `(a + b) mod M61` for `a, b <= M61` (no division: the rolling hash runs
/// once per byte and special-token length).
#[inline(always)]
fn add_mod61(a: u64, b: u64) -> u64 {
    let r = a + b;
    if r >= M61 {
        r - M61
    } else {
        r
    }
}

/// Inside a special token cut out of the text.
const CLAIMED: u32 = u32::MAX;

/// Scratch words of the largest pre-tokenizer matcher for `n` code points.
fn max_work_words(n: usize) -> Option<usize> {
    let mut need = 0;
    for p in PreTokenizer::ALL {
        need = need.max(p.work_words(n)?);
    }
    Some(need)
}

/// Bytes in the merge symbol that starts with byte `b`: the length its high
/// nibble announces, as llama.cpp reads it (a stray continuation byte is one
/// symbol; 0xF8-0xFF claim four).
fn symbol_len(b: u8) -> usize {
    const LEN: [usize; 16] = [1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4];
    LEN[(b >> 4) as usize]
}

/// A symbol or a bigram: four words whose meaning each encoder documents.
type Entry = [u32; 4];

/// The symbol table (16 bytes each, `cap` of them), the bigram heap (3
/// entries per symbol) and a link per symbol, carved from the scratch after
/// the text area.
type Tables<'s> = (&'s mut [Entry], &'s mut [Entry], &'s mut [u32]);
fn symbols_and_heap(rest: &mut [u8], cap: usize) -> Result<Tables<'_>> {
    let sym_bytes = round_up(cap * 16).ok_or(Error::InvalidArgument)?;
    let (sym_mem, rest) = rest.split_at_mut(sym_bytes);
    let (heap_mem, link_mem) = rest.split_at_mut(round_up(cap * 48).ok_or(Error::InvalidArgument)?);
    let syms =
        bytemuck::try_cast_slice_mut(&mut sym_mem[..cap * 16]).map_err(|_| Error::Misaligned)?;
    let heap =
        bytemuck::try_cast_slice_mut(&mut heap_mem[..cap * 48]).map_err(|_| Error::Misaligned)?;
    let links =
        bytemuck::try_cast_slice_mut(&mut link_mem[..cap * 4]).map_err(|_| Error::Misaligned)?;
    Ok((syms, heap, links))
}

/// The UTF-8 of byte `b`'s byte-level character, in `buf`.
fn byte_char(b: u8, buf: &mut [u8; 4]) -> &[u8] {
    let c = char::from_u32(BYTE_TO_CHAR[b as usize] as u32).unwrap_or('?');
    c.encode_utf8(buf).as_bytes()
}

/// Code points of GPT-2's byte-level characters are below this.
const BYTE_CHARS: usize = 324;

/// GPT-2's byte-to-character map: printable Latin-1 bytes stand for
/// themselves, the others for 256 + their index among them.
const BYTE_TO_CHAR: [u16; 256] = {
    let mut t = [0u16; 256];
    let mut extra = 0;
    let mut b = 0;
    while b < 256 {
        let printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
        if printable {
            t[b] = b as u16;
        } else {
            t[b] = 256 + extra;
            extra += 1;
        }
        b += 1;
    }
    t
};

fn char_to_byte(c: u32) -> u8 {
    let mut b = 0;
    while b < 256 {
        if BYTE_TO_CHAR[b] as u32 == c {
            return b as u8;
        }
        b += 1;
    }
    b'?'
}

/// Decodes UTF-8 into code points the way llama.cpp does: the lead byte
/// gives the length, continuation bytes are checked, overlong forms and
/// surrogates are accepted as they decode; a byte that starts no valid
/// sequence becomes U+FFFD. Returns the count written.
fn utf8_decode(s: &[u8], out: &mut [u32]) -> usize {
    let mut n = 0;
    let mut i = 0;
    while i < s.len() && n < out.len() {
        let b = s[i];
        let (len, init) = if b & 0x80 == 0 {
            (1, b as u32)
        } else if b & 0x40 == 0 {
            (0, 0)
        } else if b & 0x20 == 0 {
            (2, (b & 0x1F) as u32)
        } else if b & 0x10 == 0 {
            (3, (b & 0x0F) as u32)
        } else if b & 0x08 == 0 {
            (4, (b & 0x07) as u32)
        } else {
            (0, 0)
        };
        let ok =
            len > 0 && i + len <= s.len() && s[i + 1..i + len].iter().all(|&c| c & 0xC0 == 0x80);
        if ok {
            let mut cp = init;
            for &c in &s[i + 1..i + len] {
                cp = cp << 6 | (c & 0x3F) as u32;
            }
            out[n] = cp;
            i += len;
        } else {
            out[n] = 0xFFFD;
            i += 1;
        }
        n += 1;
    }
    n
}

/// UTF-8 bytes of any code point up to 0x10FFFF, surrogates included (as
/// llama.cpp writes them); larger values become U+FFFD.
fn utf8_encode(cp: u32, out: &mut [u8; 4]) -> usize {
    match cp {
        0..=0x7F => {
            out[0] = cp as u8;
            1
        }
        0x80..=0x7FF => {
            out[0] = 0xC0 | (cp >> 6) as u8;
            out[1] = 0x80 | (cp & 0x3F) as u8;
            2
        }
        0x800..=0xFFFF => {
            out[0] = 0xE0 | (cp >> 12) as u8;
            out[1] = 0x80 | ((cp >> 6) & 0x3F) as u8;
            out[2] = 0x80 | (cp & 0x3F) as u8;
            3
        }
        0x10000..=0x10FFFF => {
            out[0] = 0xF0 | (cp >> 18) as u8;
            out[1] = 0x80 | ((cp >> 12) & 0x3F) as u8;
            out[2] = 0x80 | ((cp >> 6) & 0x3F) as u8;
            out[3] = 0x80 | (cp & 0x3F) as u8;
            4
        }
        _ => utf8_encode(0xFFFD, out),
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

/// A binary heap of SentencePiece bigrams `[left, right, score bits,
/// size]` in caller scratch: highest score first, then leftmost.
struct Heap<'h> {
    h: &'h mut [[u32; 4]],
    n: usize,
}

impl Heap<'_> {
    #[inline(always)]
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
            crate::cost::tick(1);
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
            crate::cost::tick(1);
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

// A BPE symbol: `[len, id, prev, next]`.
const LEN: usize = 0;
const ID: usize = 1;
const PREV: usize = 2;
const NEXT: usize = 3;

/// Words of at least this many symbols merge through rank buckets
/// ([`Vocab::bucket_merges`]); shorter ones through the heap, whose setup
/// costs nothing.
const BUCKET_MIN: usize = 256;

#[cfg(test)]
std::thread_local! {
    /// The unit tests move [`BUCKET_MIN`] to run either path on any word.
    static BUCKET_MIN_TEST: core::cell::Cell<usize> = const { core::cell::Cell::new(BUCKET_MIN) };
}

#[cfg(test)]
std::thread_local! {
    /// How often [`Vocab::bucket_merges`] gave up (unit tests only).
    static GIVE_UPS: core::cell::Cell<u64> = const { core::cell::Cell::new(0) };
}

fn bucket_min() -> usize {
    #[cfg(test)]
    return BUCKET_MIN_TEST.with(|c| c.get());
    #[cfg(not(test))]
    BUCKET_MIN
}

/// Pairs filed by rank for [`Vocab::bucket_merges`], in caller memory:
/// `entries` hold `left | next entry << 32`, in lists from `heads` (each
/// `first | last << 32`, NONE for none: filed in order, so a list of first
/// pairs runs left to right through the symbols), `ranks` the rank of each
/// bucket, `map` finds a rank's bucket (`rank << 32 | bucket`, all ones for
/// empty; `map_len` slots in use, a power of two at most half full),
/// `recent` the last two found (by the rank's low bit: a run of one letter
/// files its pairs under two ranks in turn) and `order` gives the buckets
/// by rank.
struct Buckets<'m> {
    entries: &'m mut [u64],
    n_entries: usize,
    heads: &'m mut [u64],
    ranks: &'m mut [u32],
    n_buckets: usize,
    map: &'m mut [u64],
    map_len: usize,
    recent: [(u32, u32); 2],
    order: RankHeap<'m>,
}

impl Buckets<'_> {
    /// Files the pair whose left symbol is `left` under `rank`; false when
    /// out of room or probes.
    fn add(&mut self, hash: &Hasher, rank: u32, left: u32) -> bool {
        if self.n_entries == self.entries.len() {
            return false;
        }
        let b = match self.recent[rank as usize & 1] {
            (r, b) if r == rank => b as usize,
            _ => match self.bucket(hash, rank) {
                Some(b) => {
                    self.recent[rank as usize & 1] = (rank, b as u32);
                    b
                }
                None => return false,
            },
        };
        let e = self.n_entries as u32;
        let [first, last] = [self.heads[b] as u32, (self.heads[b] >> 32) as u32];
        if last == NONE {
            self.heads[b] = e as u64 | (e as u64) << 32;
        } else {
            let l = &mut self.entries[last as usize];
            *l = *l & 0xffff_ffff | (e as u64) << 32;
            self.heads[b] = first as u64 | (e as u64) << 32;
        }
        self.entries[e as usize] = left as u64 | (NONE as u64) << 32;
        self.n_entries += 1;
        true
    }

    /// The bucket of `rank`, made when new.
    fn bucket(&mut self, hash: &Hasher, rank: u32) -> Option<usize> {
        let mask = self.map_len - 1;
        let mut h = hash.pair(rank, NONE) & mask;
        for _ in 0..=MAX_PROBE {
            crate::cost::tick(1);
            let e = self.map[h];
            if e == u64::MAX {
                if self.n_buckets == self.heads.len() {
                    return None;
                }
                if 2 * (self.n_buckets + 1) > self.map_len {
                    return if self.grow(hash) {
                        self.bucket(hash, rank)
                    } else {
                        None
                    };
                }
                let b = self.n_buckets;
                self.n_buckets += 1;
                self.map[h] = (rank as u64) << 32 | b as u64;
                self.heads[b] = u64::MAX;
                self.ranks[b] = rank;
                self.order.push((rank as u64) << 32 | b as u64);
                return Some(b);
            }
            if (e >> 32) as u32 == rank {
                return Some(e as u32 as usize);
            }
            h = (h + 1) & mask;
        }
        None
    }

    /// Doubles the map and files every bucket again (amortized O(1) each).
    fn grow(&mut self, hash: &Hasher) -> bool {
        if 2 * self.map_len > self.map.len() {
            return false;
        }
        self.map_len *= 2;
        let mask = self.map_len - 1;
        self.map[..self.map_len].fill(u64::MAX);
        for b in 0..self.n_buckets {
            let rank = self.ranks[b];
            let mut h = hash.pair(rank, NONE) & mask;
            let mut probe = 0;
            while self.map[h] != u64::MAX {
                crate::cost::tick(1);
                h = (h + 1) & mask;
                probe += 1;
                if probe > MAX_PROBE {
                    return false;
                }
            }
            self.map[h] = (rank as u64) << 32 | b as u64;
        }
        true
    }
}

/// An 8-ary min-heap of `u64` keys in caller memory, for the BPE merges.
/// Entry `j` lives at `h[j + 7]`, so the eight children of an entry fill
/// one 64-byte line of the (64-byte aligned) scratch: a sift down a heap
/// too big for the cache costs one line per level, and there are a third
/// as many levels as in a binary heap. (A binary heap of 16-byte entries
/// cost 16 times its 100 KB time at 1 MB of one letter.)
struct RankHeap<'h> {
    h: &'h mut [u64],
    n: usize,
}

impl RankHeap<'_> {
    const D: usize = 8;
    const OFF: usize = Self::D - 1;

    fn push(&mut self, e: u64) {
        if self.n + Self::OFF >= self.h.len() {
            return; // cannot happen: at most 3 pushes per symbol
        }
        let mut i = self.n;
        self.n += 1;
        while i > 0 {
            crate::cost::tick(1);
            let p = (i - 1) / Self::D;
            let up = self.h[p + Self::OFF];
            if e >= up {
                break;
            }
            self.h[i + Self::OFF] = up;
            i = p;
        }
        self.h[i + Self::OFF] = e;
    }

    fn pop(&mut self) -> Option<u64> {
        if self.n == 0 {
            return None;
        }
        let h = &mut *self.h;
        let top = h[Self::OFF];
        self.n -= 1;
        let n = self.n;
        let e = h[n + Self::OFF];
        let mut i = 0;
        loop {
            crate::cost::tick(1);
            let c = Self::D * i + 1;
            if c >= n {
                break;
            }
            let mut m = c;
            let mut v = h[c + Self::OFF];
            for k in c + 1..(c + Self::D).min(n) {
                let x = h[k + Self::OFF];
                if x < v {
                    (m, v) = (k, x);
                }
            }
            if v >= e {
                break;
            }
            h[i + Self::OFF] = v;
            i = m;
        }
        if n > 0 {
            h[i + Self::OFF] = e;
        }
        Some(top)
    }
}

/// Turns a stream of tokens into text, emitting only complete UTF-8: the
/// bytes of a character split across tokens are held back until it is
/// whole. Bytes that can never become valid UTF-8 are passed on as they are.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C)]
pub struct StreamDecoder {
    pending: [u8; 4],
    n: u32,
}

/// Length of the UTF-8 sequence a lead byte starts (0 for a continuation byte
/// or an invalid lead).
fn utf8_len(b: u8) -> usize {
    match b {
        0x00..=0x7F => 1,
        0xC0..=0xDF => 2,
        0xE0..=0xEF => 3,
        0xF0..=0xF7 => 4,
        _ => 0,
    }
}

impl StreamDecoder {
    /// A decoder with nothing pending.
    pub const fn new() -> Self {
        Self {
            pending: [0; 4],
            n: 0,
        }
    }

    /// Appends token `id`'s text and writes what is complete to `out`,
    /// returning its length. When `out` is too small, returns
    /// `BufferTooSmall` with `*needed` set and keeps its state unchanged.
    pub fn push(
        &mut self,
        vocab: &Vocab<'_>,
        id: u32,
        special: bool,
        out: &mut [u8],
        needed: &mut usize,
    ) -> Result<usize> {
        if id as usize >= vocab.n_vocab() {
            return Err(Error::TokenOutOfRange);
        }
        // The pending bytes and the piece, as one stream: its length and
        // its last three bytes first.
        let p = self.n as usize;
        let pending = self.pending;
        let mut total = 0;
        let mut tail = [0u8; 3];
        let mut see = |b: u8| {
            tail = [tail[1], tail[2], b];
            total += 1;
        };
        pending[..p].iter().for_each(|&b| see(b));
        vocab.piece_bytes(id, special, &mut see);
        // Hold back a trailing sequence that is still incomplete.
        let mut keep = 0;
        for back in 1..=3.min(total) {
            let b = tail[3 - back];
            if b & 0xC0 == 0x80 {
                continue; // a continuation byte: look further back
            }
            let len = utf8_len(b);
            if len > back {
                keep = back;
            }
            break;
        }
        let emit = total - keep;
        *needed = emit;
        if emit > out.len() {
            return Err(Error::BufferTooSmall);
        }
        let mut i = 0;
        let mut put = |b: u8| {
            if i < emit {
                out[i] = b;
            } else {
                self.pending[i - emit] = b;
            }
            i += 1;
        };
        pending[..p].iter().for_each(|&b| put(b));
        vocab.piece_bytes(id, special, &mut put);
        self.n = keep as u32;
        Ok(emit)
    }

    /// The bytes held back (at most 3).
    pub fn pending(&self) -> &[u8] {
        &self.pending[..(self.n as usize).min(4)]
    }

    /// Restores held-back bytes (at most 4; more are dropped).
    pub fn set_pending(&mut self, bytes: &[u8]) {
        let n = bytes.len().min(4);
        self.pending[..n].copy_from_slice(&bytes[..n]);
        self.n = n as u32;
    }

    /// Writes out whatever is held back (an incomplete sequence at the end of
    /// the stream), returning its length (at most 3 bytes).
    pub fn flush(&mut self, out: &mut [u8], needed: &mut usize) -> Result<usize> {
        let n = self.n as usize;
        *needed = n;
        if n > out.len() {
            return Err(Error::BufferTooSmall);
        }
        out[..n].copy_from_slice(&self.pending[..n]);
        self.n = 0;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::{Sip, Vocab};
    use crate::cost::{assert_n_log_n, take, Aligned};
    use std::vec::Vec;

    fn vocab_file(name: &str) -> Vec<u8> {
        let dir = std::env!("CARGO_MANIFEST_DIR");
        std::fs::read(std::format!("{dir}/tests/data/vocab/{name}")).unwrap()
    }

    /// The steps `v` counts to tokenize `text`, and the token count.
    fn steps(v: &Vocab<'_>, text: &[u8], special: bool) -> (u64, usize) {
        let n = Vocab::scratch_size(text.len()).unwrap();
        let mut scratch = Aligned::new(n);
        let mut out = std::vec![0u32; text.len() + 2];
        let mut needed = 0;
        take();
        let k = v
            .tokenize(text, false, special, scratch.get(n), &mut out, &mut needed)
            .unwrap();
        (take(), k)
    }

    /// The tokens of `text`, every word merged through the rank buckets
    /// (`buckets`) or through the heap, and the bucket passes given up.
    fn tokens_by(v: &Vocab<'_>, text: &[u8], buckets: bool) -> (Vec<u32>, u64) {
        let n = Vocab::scratch_size(text.len()).unwrap();
        let mut scratch = Aligned::new(n);
        let mut out = std::vec![0u32; 3 * text.len() + 2];
        let mut needed = 0;
        let min = if buckets { 0 } else { usize::MAX };
        super::BUCKET_MIN_TEST.with(|c| c.set(min));
        super::GIVE_UPS.with(|c| c.set(0));
        let k = v.tokenize(text, false, false, scratch.get(n), &mut out, &mut needed);
        super::BUCKET_MIN_TEST.with(|c| c.set(super::BUCKET_MIN));
        out.truncate(k.unwrap());
        (out, super::GIVE_UPS.with(|c| c.get()))
    }

    /// The bucket merges give the heap's tokens on every BPE vocabulary of
    /// llama.cpp's tests, over the corpus and runs made to stress them
    /// (runs of one letter and of two, bytes that are no UTF-8, digits,
    /// spaces, pseudo-random bytes), and never give up on a trained
    /// merge table.
    #[test]
    #[cfg_attr(miri, ignore)] // 8 vocabularies of 0.7-11 MB
    fn bucket_merges_equal_the_heap() {
        let mut texts: Vec<Vec<u8>> = Vec::new();
        for f in ["pretokenize.txt", "llama-bpe.txt", "qwen2.txt", "gpt-2.txt"] {
            texts.push(vocab_file(&std::format!("corpus/{f}")));
        }
        texts.push(b"a".repeat(3001));
        texts.push(b"ab".repeat(1500));
        texts.push(b"aab".repeat(999));
        texts.push(std::vec![0xff; 1001]);
        texts.push(b"1234567890".repeat(200));
        texts.push(b" ".repeat(2000));
        texts.push("ééé€€€".repeat(300).into_bytes());
        let mut x = 12345u32;
        let mut rand = move || {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
            x >> 16
        };
        // Many short texts over small alphabets: every overlap of runs.
        for alphabet in [&b"ab"[..], b"abc", b"aab ", b"01", b"e\xcc\x81a"] {
            for _ in 0..60 {
                let n = 1 + rand() as usize % 200;
                texts.push(
                    (0..n)
                        .map(|_| alphabet[rand() as usize % alphabet.len()])
                        .collect(),
                );
            }
        }
        texts.push(
            (0..5000)
                .map(|_| {
                    // Mostly letters, so the words are long.
                    let b = rand() as u8;
                    if b < 200 {
                        b'a' + b % 3
                    } else {
                        b
                    }
                })
                .collect(),
        );
        for file in [
            "command-r",
            "deepseek-coder",
            "deepseek-llm",
            "falcon",
            "gpt-2",
            "llama-bpe",
            "qwen2",
        ] {
            let bytes = vocab_file(&std::format!("ggml-vocab-{file}.gguf"));
            let size = Vocab::size(&bytes).unwrap();
            let mut mem = Aligned::new(size);
            let v = Vocab::init(&bytes, mem.get(size)).unwrap();
            for (i, t) in texts.iter().enumerate() {
                let (heap, _) = tokens_by(&v, t, false);
                let (buckets, gave_up) = tokens_by(&v, t, true);
                assert_eq!(gave_up, 0, "{file}, text {i}: a trained table");
                assert!(heap == buckets, "{file}, text {i}: buckets and heap differ");
            }
        }
    }

    /// A merge table out of training order (`ab a` before `a b`, so a merge
    /// creates a pair of a lower rank): the bucket pass gives up, and the
    /// heap's tokens come out. "abab" is the case where only the heap's
    /// left-to-right order meets the pair `ab a`; runs of `a` with `aa a`
    /// first are the case within a run.
    #[test]
    fn bucket_merges_give_up_on_an_untrained_order() {
        let toks: Vec<Vec<u8>> = ["a", "b", "ab", "aba", "aa", "aaa", "ba"]
            .iter()
            .map(|t| t.as_bytes().to_vec())
            .collect();
        let types = std::vec![1; toks.len()];
        for (merges, text, want) in [
            (&["ab a", "a b"][..], "abab", &["aba", "b"][..]),
            (&["ab a", "a b"][..], "ababab", &["aba", "b", "ab"][..]),
            (&["aa a", "a a"][..], "aaaa", &["aaa", "a"][..]),
            (&["aa a", "a a"][..], "aaaaaaa", &["aaa", "aaa", "a"][..]),
        ] {
            let bytes = bpe_vocab(&toks, &types, merges);
            let size = Vocab::size(&bytes).unwrap();
            let mut mem = Aligned::new(size);
            let v = Vocab::init(&bytes, mem.get(size)).unwrap();
            let want: Vec<u32> = want
                .iter()
                .map(|t| v.lookup(t.as_bytes()).unwrap())
                .collect();
            let (heap, _) = tokens_by(&v, text.as_bytes(), false);
            let (buckets, gave_up) = tokens_by(&v, text.as_bytes(), true);
            assert_eq!(heap, want, "{merges:?} {text}");
            assert_eq!(buckets, want, "{merges:?} {text}");
            assert_eq!(gave_up, 1, "{merges:?} {text}");
        }
    }

    /// Counted work (heap levels, hash probes) of one long pre-token grows
    /// as n log n, from 1 KB to 100 KB, in both tokenizer kinds: a run of
    /// one letter and a run of bytes that are no UTF-8 (three symbols each
    /// in byte-level BPE). Merging by walking the word back to find the
    /// previous symbol, as the old BPE did, multiplies by 100 per step.
    #[test]
    // Large inputs and files: far too slow under Miri, and the code they
    // count (heaps, tables, the cut) is safe Rust.
    #[cfg_attr(miri, ignore)]
    fn one_long_pre_token_costs_n_log_n() {
        let sizes = [1_000, 10_000, 100_000];
        for (file, byte) in [
            ("ggml-vocab-llama-bpe.gguf", b'a'),
            ("ggml-vocab-llama-bpe.gguf", 0xff),
            ("ggml-vocab-llama-spm.gguf", b'a'),
            ("ggml-vocab-gpt-2.gguf", b' '),
        ] {
            let bytes = vocab_file(file);
            let size = Vocab::size(&bytes).unwrap();
            let mut mem = Aligned::new(size);
            let v = Vocab::init(&bytes, mem.get(size)).unwrap();
            let counted: Vec<u64> = sizes
                .iter()
                .map(|&n| {
                    let (steps, k) = steps(&v, &std::vec![byte; n], false);
                    assert!(k > 0 && k <= 3 * n);
                    steps
                })
                .collect();
            assert_n_log_n(&std::format!("{file} {byte:#x}"), &sizes, &counted);
        }
    }

    /// A minimal GGUF holding a byte-level BPE vocabulary: `tokens` with
    /// their types, and `merges` ("left right", rank order).
    fn bpe_vocab(tokens: &[Vec<u8>], types: &[i32], merges: &[&str]) -> Vec<u8> {
        let mut f = b"GGUF".to_vec();
        let s = |f: &mut Vec<u8>, b: &[u8]| {
            f.extend_from_slice(&(b.len() as u64).to_le_bytes());
            f.extend_from_slice(b);
        };
        f.extend_from_slice(&3u32.to_le_bytes());
        f.extend_from_slice(&0u64.to_le_bytes());
        f.extend_from_slice(&6u64.to_le_bytes());
        s(&mut f, b"tokenizer.ggml.merges");
        f.extend_from_slice(&9u32.to_le_bytes());
        f.extend_from_slice(&8u32.to_le_bytes());
        f.extend_from_slice(&(merges.len() as u64).to_le_bytes());
        for m in merges {
            s(&mut f, m.as_bytes());
        }
        for (k, v) in [
            ("general.architecture", "llama"),
            ("tokenizer.ggml.model", "gpt2"),
            ("tokenizer.ggml.pre", "default"),
        ] {
            s(&mut f, k.as_bytes());
            f.extend_from_slice(&8u32.to_le_bytes());
            s(&mut f, v.as_bytes());
        }
        s(&mut f, b"tokenizer.ggml.tokens");
        f.extend_from_slice(&9u32.to_le_bytes());
        f.extend_from_slice(&8u32.to_le_bytes());
        f.extend_from_slice(&(tokens.len() as u64).to_le_bytes());
        for t in tokens {
            s(&mut f, t);
        }
        s(&mut f, b"tokenizer.ggml.token_type");
        f.extend_from_slice(&9u32.to_le_bytes());
        f.extend_from_slice(&5u32.to_le_bytes());
        f.extend_from_slice(&(types.len() as u64).to_le_bytes());
        for t in types {
            f.extend_from_slice(&t.to_le_bytes());
        }
        while !f.len().is_multiple_of(32) {
            f.push(0);
        }
        f
    }

    /// 65,536 control tokens that start like the text: the special-token
    /// cut scans the text once per token length, so its counted work (and
    /// the tokenizer's) grows linearly with the text; the old cut compared
    /// every token at every place (45 s for 100 KB).
    #[test]
    // Large inputs and files: far too slow under Miri, and the code they
    // count (heaps, tables, the cut) is safe Rust.
    #[cfg_attr(miri, ignore)]
    fn a_special_token_flood_costs_linear_work() {
        let mut tokens: Vec<Vec<u8>> = std::vec![
            b"<unk>".to_vec(),
            b"<s>".to_vec(),
            b"</s>".to_vec(),
            b"a".to_vec()
        ];
        let mut types = std::vec![2, 3, 3, 1];
        for i in 0..1 << 16 {
            tokens.push(std::format!("aa{i:05}").into_bytes());
            types.push(3);
        }
        let bytes = bpe_vocab(&tokens, &types, &[]);
        let size = Vocab::size(&bytes).unwrap();
        let mut mem = Aligned::new(size);
        let v = Vocab::init(&bytes, mem.get(size)).unwrap();
        let sizes = [1_000, 10_000, 100_000];
        let counted: Vec<u64> = sizes
            .iter()
            .map(|&n| {
                let (steps, k) = steps(&v, &std::vec![b'a'; n], true);
                assert_eq!(k, n);
                steps
            })
            .collect();
        assert_n_log_n("special flood", &sizes, &counted);
        // Linear, in fact: a constant number of steps per byte.
        assert!(counted[2] <= 12 * counted[1], "{counted:?}");
    }

    /// The reference vectors of the SipHash paper's appendix (key 00..0f,
    /// messages 00..len-1): SipHash-2-4 of lengths 0, 1, 7, 8, 15, fed
    /// whole and in pieces of every size.
    #[test]
    fn siphash_2_4_matches_the_reference_vectors() {
        let want: [(usize, u64); 5] = [
            (0, 0x726f_db47_dd0e_0e31),
            (1, 0x74f8_39c5_93dc_67fd),
            (7, 0xab02_00f5_8b01_d137),
            (8, 0x93f5_f579_9a93_2462),
            (15, 0xa129_ca61_49be_45e5),
        ];
        let (k0, k1) = (0x0706_0504_0302_0100, 0x0f0e_0d0c_0b0a_0908);
        let msg: [u8; 15] = core::array::from_fn(|i| i as u8);
        for (len, h) in want {
            for piece in 1..=len.max(1) {
                let mut s = Sip::<2, 4>::new(k0, k1);
                for c in msg[..len].chunks(piece) {
                    s.write(c);
                }
                assert_eq!(s.finish(), h, "len {len} pieces of {piece}");
            }
        }
    }
}
