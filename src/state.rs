//! Saved states: the byte format that a context or a sampler writes into a
//! caller buffer and reads back (a save-game, a checkpoint, a fork of a
//! conversation), in this or another process.
//!
//! Every state is little-endian and self-describing:
//!
//! ```text
//! magic     4 bytes   b"NLCX" (context) or b"NLSM" (sampler)
//! version   u32       1
//! ...                 fields of the kind (see `Context::save_state` and
//!                     `Sampler::save_state`)
//! checksum  u64       `hash` of every byte before it
//! ```
//!
//! A state is checked whole before anything is changed: a wrong magic,
//! version, length or checksum is [`Error::StateCorrupt`]; a state written
//! for another model or for incompatible settings is [`Error::StateMismatch`].
//! The checksum finds accidents (a truncated or bit-flipped save file), not
//! forgeries; a state that passes it is still checked field by field, so no
//! state can make the library read or write outside its buffers.

use crate::error::{Error, Result};

/// Format version of both kinds.
pub const VERSION: u32 = 1;
/// Bytes of the trailing checksum.
pub const CHECKSUM_BYTES: usize = 8;

/// A 64-bit hash of `bytes`, continuing from `h` (start from [`HASH_SEED`]):
/// eight bytes at a time, multiply-rotate mixing, a final avalanche. Fast
/// enough for a KV cache of many megabytes; not cryptographic.
pub fn hash(mut h: u64, bytes: &[u8]) -> u64 {
    const K: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut chunks = bytes.chunks_exact(8);
    for c in &mut chunks {
        let w = u64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]);
        h = (h ^ w).wrapping_mul(K).rotate_left(29);
    }
    let rest = chunks.remainder();
    let mut last = [0u8; 8];
    last[..rest.len()].copy_from_slice(rest);
    h = (h ^ u64::from_le_bytes(last) ^ ((rest.len() as u64) << 59))
        .wrapping_mul(K)
        .rotate_left(29);
    h ^= bytes.len() as u64;
    h = (h ^ (h >> 31)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    h ^ (h >> 29)
}

/// Starting value of [`hash`].
pub const HASH_SEED: u64 = 0x6E61_6E6F_6C6C_616D;

/// Writes fields one after another into a buffer already checked to be
/// large enough.
pub struct Writer<'a> {
    buf: &'a mut [u8],
    at: usize,
}

impl<'a> Writer<'a> {
    pub fn new(buf: &'a mut [u8]) -> Self {
        Writer { buf, at: 0 }
    }
    pub fn bytes(&mut self, b: &[u8]) {
        self.buf[self.at..self.at + b.len()].copy_from_slice(b);
        self.at += b.len();
    }
    pub fn u32(&mut self, v: u32) {
        self.bytes(&v.to_le_bytes());
    }
    pub fn u64(&mut self, v: u64) {
        self.bytes(&v.to_le_bytes());
    }
    pub fn f32(&mut self, v: f32) {
        self.bytes(&v.to_le_bytes());
    }
    /// Appends the checksum of everything written; returns the total length.
    pub fn finish(mut self) -> usize {
        let h = hash(HASH_SEED, &self.buf[..self.at]);
        self.u64(h);
        self.at
    }
}

/// Reads fields from a state whose length and checksum have been checked.
pub struct Reader<'a> {
    buf: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    /// Checks `magic`, version and checksum of `state` (the whole state and
    /// nothing else) and returns a reader positioned after the version.
    pub fn open(state: &'a [u8], magic: &[u8; 4]) -> Result<Self> {
        if state.len() < 8 + CHECKSUM_BYTES {
            return Err(Error::StateCorrupt);
        }
        let (body, sum) = state.split_at(state.len() - CHECKSUM_BYTES);
        if &body[..4] != magic
            || u32::from_le_bytes([body[4], body[5], body[6], body[7]]) != VERSION
        {
            return Err(Error::StateCorrupt);
        }
        let want = u64::from_le_bytes([
            sum[0], sum[1], sum[2], sum[3], sum[4], sum[5], sum[6], sum[7],
        ]);
        if hash(HASH_SEED, body) != want {
            return Err(Error::StateCorrupt);
        }
        Ok(Reader { buf: body, at: 8 })
    }
    /// The next `n` bytes, or `StateCorrupt` past the end.
    pub fn bytes(&mut self, n: usize) -> Result<&'a [u8]> {
        let end = self.at.checked_add(n).ok_or(Error::StateCorrupt)?;
        let b = self.buf.get(self.at..end).ok_or(Error::StateCorrupt)?;
        self.at = end;
        Ok(b)
    }
    pub fn u32(&mut self) -> Result<u32> {
        let b = self.bytes(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
    pub fn u64(&mut self) -> Result<u64> {
        let b = self.bytes(8)?;
        Ok(u64::from_le_bytes([
            b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7],
        ]))
    }
    pub fn f32(&mut self) -> Result<f32> {
        Ok(f32::from_bits(self.u32()?))
    }
    /// Bytes not yet read (before the checksum).
    pub fn remaining(&self) -> usize {
        self.buf.len() - self.at
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_sees_every_byte_and_the_length() {
        let a = [7u8; 37];
        let h = hash(HASH_SEED, &a);
        for i in 0..a.len() {
            for bit in 0..8 {
                let mut b = a;
                b[i] ^= 1 << bit;
                assert_ne!(hash(HASH_SEED, &b), h, "byte {i} bit {bit}");
            }
        }
        assert_ne!(hash(HASH_SEED, &a[..36]), h);
        assert_ne!(hash(HASH_SEED, &[]), hash(HASH_SEED, &[0]));
        assert_ne!(hash(HASH_SEED, &[0; 8]), hash(HASH_SEED, &[0; 16]));
    }

    #[test]
    fn writer_reader_round_trip_and_refusals() {
        let mut buf = [0u8; 40];
        let mut w = Writer::new(&mut buf);
        w.bytes(b"TEST");
        w.u32(VERSION);
        w.u32(5);
        w.u64(u64::MAX - 1);
        w.f32(-2.5);
        let n = w.finish();
        assert_eq!(n, 4 + 4 + 4 + 8 + 4 + 8);
        let mut r = Reader::open(&buf[..n], b"TEST").unwrap();
        assert_eq!(r.u32(), Ok(5));
        assert_eq!(r.u64(), Ok(u64::MAX - 1));
        assert_eq!(r.f32(), Ok(-2.5));
        assert_eq!(r.remaining(), 0);
        assert_eq!(r.u32(), Err(Error::StateCorrupt));
        assert_eq!(
            Reader::open(&buf[..n], b"TESX").err(),
            Some(Error::StateCorrupt)
        );
        assert_eq!(
            Reader::open(&buf[..n - 1], b"TEST").err(),
            Some(Error::StateCorrupt)
        );
        assert_eq!(
            Reader::open(&buf[..15], b"TEST").err(),
            Some(Error::StateCorrupt)
        );
        for i in 0..n {
            let mut b = buf;
            b[i] ^= 0x10;
            assert_eq!(
                Reader::open(&b[..n], b"TEST").err(),
                Some(Error::StateCorrupt),
                "{i}"
            );
        }
    }
}
