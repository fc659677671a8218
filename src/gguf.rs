//! Zero-copy reader of GGUF files (versions 2 and 3, little-endian).
//!
//! [`Gguf::parse`] walks the whole header, every metadata value and every
//! tensor record once, checking each count, length and offset against the
//! bytes actually given. After it succeeds, lookups re-walk the same bytes and
//! cannot run past them. Nothing is copied: strings, arrays and tensor data are
//! slices of the caller's bytes.
//!
//! Layout (all little-endian): magic `GGUF`, version u32, tensor count u64,
//! metadata count u64, metadata (key string, value type u32, value), tensor
//! records (name string, n_dims u32, dims u64 × n_dims, type u32, offset u64),
//! padding to `general.alignment` (default 32), tensor data. A string is a u64
//! length and that many bytes; an array is an element type u32, a u64 count
//! and the elements.

use crate::error::{Error, Result};

/// The default alignment of the data section and of every tensor offset.
pub const DEFAULT_ALIGNMENT: u64 = 32;
/// The most dimensions a tensor may have.
pub const MAX_DIMS: usize = 4;
/// The most metadata entries a file may have (real files have under 100);
/// keys are checked for duplicates against each other.
pub const MAX_KV: usize = 512;
/// The most tensors a file may have (real LLaMA files have a few hundred to
/// about 1200); names are checked for duplicates against each other.
pub const MAX_TENSORS: usize = 8192;

/// A metadata value type id.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum ValueType {
    U8 = 0,
    I8 = 1,
    U16 = 2,
    I16 = 3,
    U32 = 4,
    I32 = 5,
    F32 = 6,
    Bool = 7,
    String = 8,
    Array = 9,
    U64 = 10,
    I64 = 11,
    F64 = 12,
}

impl ValueType {
    fn from_u32(v: u32) -> Result<Self> {
        Ok(match v {
            0 => Self::U8,
            1 => Self::I8,
            2 => Self::U16,
            3 => Self::I16,
            4 => Self::U32,
            5 => Self::I32,
            6 => Self::F32,
            7 => Self::Bool,
            8 => Self::String,
            9 => Self::Array,
            10 => Self::U64,
            11 => Self::I64,
            12 => Self::F64,
            _ => return Err(Error::UnknownType),
        })
    }

    /// Bytes of one value of a fixed-size type; `None` for strings and arrays.
    fn fixed_size(self) -> Option<usize> {
        match self {
            Self::U8 | Self::I8 | Self::Bool => Some(1),
            Self::U16 | Self::I16 => Some(2),
            Self::U32 | Self::I32 | Self::F32 => Some(4),
            Self::U64 | Self::I64 | Self::F64 => Some(8),
            Self::String | Self::Array => None,
        }
    }
}

/// A ggml tensor type id with its block geometry. Every type GGUF defines is
/// listed so that any valid file parses; which of them the model can compute
/// with is [`crate::quant::WeightType`]'s business.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GgmlType(pub u32);

impl GgmlType {
    pub const F32: Self = Self(0);
    pub const F16: Self = Self(1);
    pub const Q4_0: Self = Self(2);
    pub const Q4_1: Self = Self(3);
    pub const Q5_0: Self = Self(6);
    pub const Q5_1: Self = Self(7);
    pub const Q8_0: Self = Self(8);
    pub const Q8_1: Self = Self(9);
    pub const Q2_K: Self = Self(10);
    pub const Q3_K: Self = Self(11);
    pub const Q4_K: Self = Self(12);
    pub const Q5_K: Self = Self(13);
    pub const Q6_K: Self = Self(14);
    pub const Q8_K: Self = Self(15);
    pub const BF16: Self = Self(30);

    /// `(elements per block, bytes per block)`, or `None` for an id GGUF does
    /// not define (ids 4, 5, 31-33 and 36-38 were removed from ggml).
    pub const fn geometry(self) -> Option<(u64, u64)> {
        Some(match self.0 {
            0 => (1, 4),
            1 => (1, 2),
            2 => (32, 18),
            3 => (32, 20),
            6 => (32, 22),
            7 => (32, 24),
            8 => (32, 34),
            9 => (32, 36),
            10 => (256, 84),
            11 => (256, 110),
            12 => (256, 144),
            13 => (256, 176),
            14 => (256, 210),
            15 => (256, 292),
            16 => (256, 66),  // IQ2_XXS
            17 => (256, 74),  // IQ2_XS
            18 => (256, 98),  // IQ3_XXS
            19 => (256, 50),  // IQ1_S
            20 => (32, 18),   // IQ4_NL
            21 => (256, 110), // IQ3_S
            22 => (256, 82),  // IQ2_S
            23 => (256, 136), // IQ4_XS
            24 => (1, 1),     // I8
            25 => (1, 2),     // I16
            26 => (1, 4),     // I32
            27 => (1, 8),     // I64
            28 => (1, 8),     // F64
            29 => (256, 56),  // IQ1_M
            30 => (1, 2),     // BF16
            34 => (256, 54),  // TQ1_0
            35 => (256, 66),  // TQ2_0
            39 => (32, 17),   // MXFP4
            _ => return None,
        })
    }

    /// The name ggml gives the type.
    pub const fn name(self) -> &'static str {
        match self.0 {
            0 => "F32",
            1 => "F16",
            2 => "Q4_0",
            3 => "Q4_1",
            6 => "Q5_0",
            7 => "Q5_1",
            8 => "Q8_0",
            9 => "Q8_1",
            10 => "Q2_K",
            11 => "Q3_K",
            12 => "Q4_K",
            13 => "Q5_K",
            14 => "Q6_K",
            15 => "Q8_K",
            16 => "IQ2_XXS",
            17 => "IQ2_XS",
            18 => "IQ3_XXS",
            19 => "IQ1_S",
            20 => "IQ4_NL",
            21 => "IQ3_S",
            22 => "IQ2_S",
            23 => "IQ4_XS",
            24 => "I8",
            25 => "I16",
            26 => "I32",
            27 => "I64",
            28 => "F64",
            29 => "IQ1_M",
            30 => "BF16",
            34 => "TQ1_0",
            35 => "TQ2_0",
            39 => "MXFP4",
            _ => "unknown",
        }
    }
}

/// A bounds-checked little-endian reader over the file bytes.
#[derive(Clone)]
struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }
    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        let end = self.pos.checked_add(n).ok_or(Error::Truncated)?;
        let s = self.buf.get(self.pos..end).ok_or(Error::Truncated)?;
        self.pos = end;
        Ok(s)
    }
    fn array<const N: usize>(&mut self) -> Result<[u8; N]> {
        let s = self.take(N)?;
        let mut a = [0u8; N];
        a.copy_from_slice(s);
        Ok(a)
    }
    fn u32(&mut self) -> Result<u32> {
        Ok(u32::from_le_bytes(self.array()?))
    }
    fn u64(&mut self) -> Result<u64> {
        Ok(u64::from_le_bytes(self.array()?))
    }
    /// A u64 length and that many bytes.
    fn string(&mut self) -> Result<&'a [u8]> {
        let len = self.u64()?;
        if len > self.remaining() as u64 {
            return Err(Error::StringPastEnd);
        }
        self.take(len as usize)
    }
}

/// One metadata value, borrowing the file bytes.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Value<'a> {
    U8(u8),
    I8(i8),
    U16(u16),
    I16(i16),
    U32(u32),
    I32(i32),
    F32(f32),
    Bool(bool),
    /// Raw bytes; GGUF says UTF-8 but the reader does not insist.
    String(&'a [u8]),
    U64(u64),
    I64(i64),
    F64(f64),
    Array(Array<'a>),
}

impl<'a> Value<'a> {
    /// Any integer value that is not negative, widened.
    pub fn as_u64(&self) -> Option<u64> {
        match *self {
            Value::U8(v) => Some(v as u64),
            Value::U16(v) => Some(v as u64),
            Value::U32(v) => Some(v as u64),
            Value::U64(v) => Some(v),
            Value::I8(v) => u64::try_from(v).ok(),
            Value::I16(v) => u64::try_from(v).ok(),
            Value::I32(v) => u64::try_from(v).ok(),
            Value::I64(v) => u64::try_from(v).ok(),
            _ => None,
        }
    }
    /// A float value (F32, or F64 narrowed).
    pub fn as_f32(&self) -> Option<f32> {
        match *self {
            Value::F32(v) => Some(v),
            Value::F64(v) => Some(v as f32),
            _ => None,
        }
    }
    /// A string value.
    pub fn as_bytes(&self) -> Option<&'a [u8]> {
        match *self {
            Value::String(s) => Some(s),
            _ => None,
        }
    }
    /// An array value.
    pub fn as_array(&self) -> Option<Array<'a>> {
        match *self {
            Value::Array(a) => Some(a),
            _ => None,
        }
    }
    /// The value's type.
    pub fn value_type(&self) -> ValueType {
        match self {
            Value::U8(_) => ValueType::U8,
            Value::I8(_) => ValueType::I8,
            Value::U16(_) => ValueType::U16,
            Value::I16(_) => ValueType::I16,
            Value::U32(_) => ValueType::U32,
            Value::I32(_) => ValueType::I32,
            Value::F32(_) => ValueType::F32,
            Value::Bool(_) => ValueType::Bool,
            Value::String(_) => ValueType::String,
            Value::U64(_) => ValueType::U64,
            Value::I64(_) => ValueType::I64,
            Value::F64(_) => ValueType::F64,
            Value::Array(_) => ValueType::Array,
        }
    }
}

/// An array value: its element type, count and the bytes of its elements
/// (already checked to hold `len` elements). Arrays of arrays are refused at
/// parse time.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Array<'a> {
    elem: ValueType,
    len: usize,
    bytes: &'a [u8],
}

impl<'a> Array<'a> {
    /// Element type.
    pub fn elem_type(&self) -> ValueType {
        self.elem
    }
    /// Number of elements.
    pub fn len(&self) -> usize {
        self.len
    }
    /// True when the array has no elements.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
    /// Element `i`; O(1) for fixed-size types, O(i) for strings.
    pub fn get(&self, i: usize) -> Option<Value<'a>> {
        if i >= self.len {
            return None;
        }
        let mut c = Cursor {
            buf: self.bytes,
            pos: 0,
        };
        match self.elem.fixed_size() {
            Some(size) => {
                c.pos = i.checked_mul(size)?;
                read_scalar(&mut c, self.elem).ok()
            }
            None => {
                for _ in 0..i {
                    c.string().ok()?;
                }
                c.string().ok().map(Value::String)
            }
        }
    }
    /// The elements in order.
    pub fn iter(&self) -> ArrayIter<'a> {
        ArrayIter {
            arr: *self,
            cur: Cursor {
                buf: self.bytes,
                pos: 0,
            },
            i: 0,
        }
    }
}

/// Iterator over an [`Array`]'s elements.
pub struct ArrayIter<'a> {
    arr: Array<'a>,
    cur: Cursor<'a>,
    i: usize,
}

impl<'a> Iterator for ArrayIter<'a> {
    type Item = Value<'a>;
    fn next(&mut self) -> Option<Value<'a>> {
        if self.i >= self.arr.len {
            return None;
        }
        self.i += 1;
        if self.arr.elem == ValueType::String {
            self.cur.string().ok().map(Value::String)
        } else {
            read_scalar(&mut self.cur, self.arr.elem).ok()
        }
    }
}

fn read_scalar<'a>(c: &mut Cursor<'a>, t: ValueType) -> Result<Value<'a>> {
    Ok(match t {
        ValueType::U8 => Value::U8(c.array::<1>()?[0]),
        ValueType::I8 => Value::I8(c.array::<1>()?[0] as i8),
        ValueType::U16 => Value::U16(u16::from_le_bytes(c.array()?)),
        ValueType::I16 => Value::I16(i16::from_le_bytes(c.array()?)),
        ValueType::U32 => Value::U32(c.u32()?),
        ValueType::I32 => Value::I32(i32::from_le_bytes(c.array()?)),
        ValueType::F32 => Value::F32(f32::from_le_bytes(c.array()?)),
        ValueType::Bool => match c.array::<1>()?[0] {
            0 => Value::Bool(false),
            1 => Value::Bool(true),
            _ => return Err(Error::BadMetadata),
        },
        ValueType::U64 => Value::U64(c.u64()?),
        ValueType::I64 => Value::I64(i64::from_le_bytes(c.array()?)),
        ValueType::F64 => Value::F64(f64::from_le_bytes(c.array()?)),
        ValueType::String => Value::String(c.string()?),
        ValueType::Array => return Err(Error::BadMetadata),
    })
}

/// Reads one value of type `t`, checking every length against the bytes.
fn read_value<'a>(c: &mut Cursor<'a>, t: ValueType) -> Result<Value<'a>> {
    if t != ValueType::Array {
        return read_scalar(c, t);
    }
    let elem = ValueType::from_u32(c.u32()?)?;
    if elem == ValueType::Array {
        return Err(Error::BadMetadata);
    }
    let count = c.u64()?;
    let start = c.pos;
    match elem.fixed_size() {
        Some(size) => {
            let bytes = count
                .checked_mul(size as u64)
                .filter(|&b| b <= c.remaining() as u64)
                .ok_or(Error::CountTooLarge)?;
            c.take(bytes as usize)?;
            if elem == ValueType::Bool {
                let bools = c.buf.get(start..c.pos).ok_or(Error::Truncated)?;
                if bools.iter().any(|&b| b > 1) {
                    return Err(Error::BadMetadata);
                }
            }
        }
        None => {
            // Each string needs at least its 8-byte length.
            if count > (c.remaining() / 8) as u64 {
                return Err(Error::CountTooLarge);
            }
            for _ in 0..count {
                c.string()?;
            }
        }
    }
    let bytes = c.buf.get(start..c.pos).ok_or(Error::Truncated)?;
    Ok(Value::Array(Array {
        elem,
        len: count as usize,
        bytes,
    }))
}

/// One tensor record, with its data already located and bounds-checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TensorInfo<'a> {
    /// Name bytes (`blk.0.attn_q.weight`).
    pub name: &'a [u8],
    /// Number of dimensions used (1 to 4).
    pub n_dims: u32,
    /// Dimensions, fastest-varying first (`ne[0]` is the row length); unused
    /// dimensions are 1.
    pub ne: [u64; MAX_DIMS],
    /// Storage type.
    pub ty: GgmlType,
    /// Offset of the data from the start of the file bytes.
    pub offset: usize,
    /// Size of the data in bytes.
    pub size: usize,
}

impl TensorInfo<'_> {
    /// Total number of elements.
    pub fn n_elements(&self) -> u64 {
        // Checked at parse time not to overflow.
        self.ne.iter().product()
    }
}

/// A parsed GGUF file over the caller's bytes.
#[derive(Clone, Copy, Debug)]
pub struct Gguf<'a> {
    bytes: &'a [u8],
    version: u32,
    n_tensors: usize,
    n_kv: usize,
    kv_start: usize,
    tensors_start: usize,
    data_start: usize,
    alignment: u64,
}

/// Smallest possible metadata entry: empty key (8), type (4), one byte value.
const MIN_KV_BYTES: usize = 13;
/// Smallest possible tensor record: empty name (8), n_dims (4), one dim (8),
/// type (4), offset (8).
const MIN_TENSOR_BYTES: usize = 32;

impl<'a> Gguf<'a> {
    /// Parses and validates the whole header, metadata and tensor table.
    pub fn parse(bytes: &'a [u8]) -> Result<Self> {
        let mut c = Cursor { buf: bytes, pos: 0 };
        let magic = c.array::<4>().map_err(|_| {
            if b"GGUF".starts_with(bytes) {
                Error::Truncated
            } else {
                Error::BadMagic
            }
        })?;
        if &magic != b"GGUF" {
            return Err(Error::BadMagic);
        }
        let version = c.u32()?;
        if version != 2 && version != 3 {
            return Err(Error::UnsupportedVersion);
        }
        let n_tensors = c.u64()?;
        let n_kv = c.u64()?;
        if n_kv > (c.remaining() / MIN_KV_BYTES) as u64 || n_kv > MAX_KV as u64 {
            return Err(Error::CountTooLarge);
        }
        let kv_start = c.pos;
        let mut alignment = DEFAULT_ALIGNMENT;
        // Where each key lies, to refuse duplicates (as ggml does).
        let mut key_at = [0u64; MAX_KV];
        let mut key_len = [0u32; MAX_KV];
        for i in 0..n_kv as usize {
            let at = c.pos + 8;
            let key = c.string()?;
            for (&o, &l) in key_at[..i].iter().zip(&key_len[..i]) {
                let (o, l) = (o as usize, l as usize);
                if bytes.get(o..o.saturating_add(l)) == Some(key) {
                    return Err(Error::BadMetadata);
                }
            }
            key_at[i] = at as u64;
            key_len[i] = u32::try_from(key.len()).map_err(|_| Error::BadMetadata)?;
            let t = ValueType::from_u32(c.u32()?)?;
            let v = read_value(&mut c, t)?;
            if core::str::from_utf8(key).is_err() {
                return Err(Error::BadMetadata);
            }
            if key == b"general.alignment" {
                alignment = match v {
                    Value::U32(a) => a as u64,
                    _ => return Err(Error::BadMetadata),
                };
                if alignment == 0 || !alignment.is_power_of_two() {
                    return Err(Error::DataMisaligned);
                }
            }
        }
        if n_tensors > (c.remaining() / MIN_TENSOR_BYTES) as u64 || n_tensors > MAX_TENSORS as u64 {
            return Err(Error::CountTooLarge);
        }
        let tensors_start = c.pos;
        let mut g = Gguf {
            bytes,
            version,
            n_tensors: n_tensors as usize,
            n_kv: n_kv as usize,
            kv_start,
            tensors_start,
            data_start: 0,
            alignment,
        };
        // First pass: records are well formed and their sizes do not overflow.
        for _ in 0..n_tensors {
            read_tensor_record(&mut c, alignment)?;
        }
        let end_of_table = c.pos as u64;
        let data_start = end_of_table.div_ceil(alignment) * alignment;
        // Second pass: every tensor's data lies inside the bytes, after the
        // data of the tensor listed before it (llama.cpp requires exactly
        // the next aligned offset; gaps are allowed here, overlap is not: two
        // tensors sharing bytes is a lie about one of them).
        let data_len = (bytes.len() as u64).saturating_sub(data_start);
        let mut c = Cursor {
            buf: bytes,
            pos: tensors_start,
        };
        let mut prev_end = 0u64;
        for _ in 0..n_tensors {
            let r = read_tensor_record(&mut c, alignment)?;
            let end = r.offset.checked_add(r.size).ok_or(Error::TensorPastEnd)?;
            if end > data_len {
                return Err(Error::TensorPastEnd);
            }
            if r.offset < prev_end {
                return Err(Error::TensorOverlap);
            }
            prev_end = end;
        }
        unique_names(bytes, tensors_start, n_tensors as usize)?;
        // data_start <= bytes.len() whenever a tensor exists (checked above);
        // clamp so that an empty table with no padding is still valid.
        g.data_start = data_start.min(bytes.len() as u64) as usize;
        Ok(g)
    }

    /// The file bytes this view reads.
    pub fn bytes(&self) -> &'a [u8] {
        self.bytes
    }
    /// GGUF version (2 or 3).
    pub fn version(&self) -> u32 {
        self.version
    }
    /// Number of tensors.
    pub fn n_tensors(&self) -> usize {
        self.n_tensors
    }
    /// Number of metadata entries.
    pub fn n_kv(&self) -> usize {
        self.n_kv
    }
    /// `general.alignment`, or 32.
    pub fn alignment(&self) -> u64 {
        self.alignment
    }
    /// Offset of the data section from the start of the bytes.
    pub fn data_offset(&self) -> usize {
        self.data_start
    }

    /// The metadata entries in file order.
    pub fn metadata(&self) -> MetaIter<'a> {
        MetaIter {
            c: Cursor {
                buf: self.bytes,
                pos: self.kv_start,
            },
            left: self.n_kv,
        }
    }

    /// The value of metadata `key`, if present.
    pub fn get(&self, key: &str) -> Option<Value<'a>> {
        self.metadata()
            .find(|(k, _)| *k == key.as_bytes())
            .map(|(_, v)| v)
    }

    /// The value of `{prefix}.{suffix}` (for architecture keys such as
    /// `llama.block_count`), without building the string.
    pub fn get2(&self, prefix: &str, suffix: &str) -> Option<Value<'a>> {
        let (p, s) = (prefix.as_bytes(), suffix.as_bytes());
        self.metadata()
            .find(|(k, _)| {
                k.len() == p.len() + 1 + s.len()
                    && k.starts_with(p)
                    && k[p.len()] == b'.'
                    && k.ends_with(s)
            })
            .map(|(_, v)| v)
    }

    /// The tensor records in file order.
    pub fn tensors(&self) -> TensorIter<'a> {
        TensorIter {
            c: Cursor {
                buf: self.bytes,
                pos: self.tensors_start,
            },
            left: self.n_tensors,
            alignment: self.alignment,
            data_start: self.data_start,
        }
    }

    /// The tensor named `name`, if present.
    pub fn tensor(&self, name: &str) -> Option<TensorInfo<'a>> {
        self.tensors().find(|t| t.name == name.as_bytes())
    }

    /// A tensor's data bytes.
    pub fn tensor_data(&self, t: &TensorInfo<'_>) -> Option<&'a [u8]> {
        self.bytes.get(t.offset..t.offset.checked_add(t.size)?)
    }
}

/// A raw tensor record, offset relative to the data section.
struct RawTensor<'a> {
    name: &'a [u8],
    n_dims: u32,
    ne: [u64; MAX_DIMS],
    ty: GgmlType,
    offset: u64,
    size: u64,
}

/// Names checked per pass of [`unique_names`].
const NAME_CHUNK: usize = 256;

/// Tensor names are unique (GGUF requires it; ggml checks it). The names
/// of `NAME_CHUNK` records at a time are hashed and sorted on the stack,
/// and every later record's name is looked up among them: about
/// `T² / (2 · NAME_CHUNK)` hashes for `T` records, where comparing each
/// name with every earlier one cost 0.8 s for 8,192 long names sharing a
/// prefix (a 1 MB file). The hash is SipHash under a fixed key: equal
/// hashes are compared as names, and a file would need many distinct names
/// with one 64-bit hash to slow this down. The records were checked well
/// formed by the caller.
fn unique_names(bytes: &[u8], tensors_start: usize, n: usize) -> Result<()> {
    // The record at `c`: its name, and `c` moved past it.
    fn next<'a>(c: &mut Cursor<'a>) -> Result<&'a [u8]> {
        let name = c.string()?;
        let n_dims = c.u32()? as usize;
        c.take(n_dims * 8 + 12)?;
        Ok(name)
    }
    let hash = |name: &[u8]| {
        let mut h =
            crate::tokenizer::Sip::<1, 3>::new(0x6767_7566_6e61_6d65, 0x7465_6e73_6f72_7321);
        h.write(name);
        h.finish()
    };
    let name_at = |pos: usize| {
        let mut c = Cursor { buf: bytes, pos };
        c.string()
    };
    let mut chunk = [(0u64, 0usize); NAME_CHUNK];
    let mut c = Cursor {
        buf: bytes,
        pos: tensors_start,
    };
    let mut done = 0;
    while done < n {
        let m = NAME_CHUNK.min(n - done);
        for e in chunk[..m].iter_mut() {
            let pos = c.pos;
            *e = (hash(next(&mut c)?), pos);
        }
        crate::sampler::heap_sort(&mut chunk[..m], |a, b| a.0 < b.0);
        for i in 0..m {
            let mut j = i + 1;
            while j < m && chunk[j].0 == chunk[i].0 {
                if name_at(chunk[i].1)? == name_at(chunk[j].1)? {
                    return Err(Error::DuplicateTensor);
                }
                j += 1;
            }
        }
        done += m;
        let mut later = Cursor {
            buf: bytes,
            pos: c.pos,
        };
        for _ in done..n {
            let name = next(&mut later)?;
            let h = hash(name);
            let mut k = chunk[..m].partition_point(|e| e.0 < h);
            while k < m && chunk[k].0 == h {
                if name_at(chunk[k].1)? == name {
                    return Err(Error::DuplicateTensor);
                }
                k += 1;
            }
        }
    }
    Ok(())
}

fn read_tensor_record<'a>(c: &mut Cursor<'a>, alignment: u64) -> Result<RawTensor<'a>> {
    let name = c.string()?;
    let n_dims = c.u32()?;
    if n_dims == 0 || n_dims as usize > MAX_DIMS {
        return Err(Error::BadDimensions);
    }
    let mut ne = [1u64; MAX_DIMS];
    for d in ne.iter_mut().take(n_dims as usize) {
        *d = c.u64()?;
    }
    let ty = GgmlType(c.u32()?);
    let offset = c.u64()?;
    let (block, type_size) = ty.geometry().ok_or(Error::UnknownType)?;
    let mut n: u64 = 1;
    for &d in &ne {
        if d == 0 {
            return Err(Error::BadDimensions);
        }
        n = n.checked_mul(d).ok_or(Error::BadDimensions)?;
    }
    // Keep element counts well inside i64 as ggml does.
    if n > i64::MAX as u64 / 8 || ne[0] % block != 0 {
        return Err(Error::BadDimensions);
    }
    let size = (n / block)
        .checked_mul(type_size)
        .ok_or(Error::BadDimensions)?;
    if offset % alignment != 0 {
        return Err(Error::DataMisaligned);
    }
    Ok(RawTensor {
        name,
        n_dims,
        ne,
        ty,
        offset,
        size,
    })
}

/// Iterator over metadata `(key, value)` pairs.
pub struct MetaIter<'a> {
    c: Cursor<'a>,
    left: usize,
}

impl<'a> Iterator for MetaIter<'a> {
    type Item = (&'a [u8], Value<'a>);
    fn next(&mut self) -> Option<Self::Item> {
        if self.left == 0 {
            return None;
        }
        self.left -= 1;
        let key = self.c.string().ok()?;
        let t = ValueType::from_u32(self.c.u32().ok()?).ok()?;
        let v = read_value(&mut self.c, t).ok()?;
        Some((key, v))
    }
}

/// Iterator over tensor records.
pub struct TensorIter<'a> {
    c: Cursor<'a>,
    left: usize,
    alignment: u64,
    data_start: usize,
}

impl<'a> Iterator for TensorIter<'a> {
    type Item = TensorInfo<'a>;
    fn next(&mut self) -> Option<Self::Item> {
        if self.left == 0 {
            return None;
        }
        self.left -= 1;
        let r = read_tensor_record(&mut self.c, self.alignment).ok()?;
        // Parse checked offset + size <= len - data_start, so these fit.
        let offset = (self.data_start as u64).checked_add(r.offset)?;
        Some(TensorInfo {
            name: r.name,
            n_dims: r.n_dims,
            ne: r.ne,
            ty: r.ty,
            offset: usize::try_from(offset).ok()?,
            size: usize::try_from(r.size).ok()?,
        })
    }
}
