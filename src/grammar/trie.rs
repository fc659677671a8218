//! The vocabulary as a byte trie, for walking a grammar over every token at
//! once.
//!
//! Each token's text is llama.cpp's `token_to_piece` with special tokens
//! written out (what its grammar sampler matches), cut at a NUL byte (its
//! UTF-8 decoder stops there). Tokens whose text is empty or starts with
//! NUL can never be taken; end-of-generation tokens are decided by whether
//! the grammar may end, not by their text: neither is in the trie.
//!
//! Layout: the nodes in depth-first preorder (children in byte order), each
//! with its byte, the index past its subtree, and the index of its first
//! token in the list of tokens sorted by text. The tokens ending at node
//! `n` are `ids[tok[n]..tok[n + 1]]`, and a whole subtree's tokens are one
//! range too. Built once per vocabulary, read-only afterwards: many
//! samplers (conversations) share one.

use crate::error::{Error, Result};
use crate::model::ALIGN;
use crate::tokenizer::Vocab;

/// Most end-of-generation tokens kept (the vocabulary keeps fewer).
const MAX_EOG: usize = 16;

/// A vocabulary's token texts and their trie, in caller memory.
pub struct TokenTrie<'a> {
    n_vocab: usize,
    /// Per token, (offset, length) of its text in `text`; length 0 when the
    /// token is not in the trie.
    span: &'a [[u32; 2]],
    text: &'a [u8],
    /// Tokens in the trie, sorted by text (then id).
    ids: &'a [u32],
    byte: &'a [u8],
    end: &'a [u32],
    tok: &'a [u32],
    eog: [u32; MAX_EOG],
    n_eog: usize,
    depth: usize,
}

struct Layout {
    n_vocab: usize,
    /// Bytes of text over the tokens kept (an upper bound on the nodes).
    bytes: usize,
    longest: usize,
}

/// The grammar's text of token `id`: its piece cut at NUL, or empty when
/// the token is not in the trie.
fn piece_len(v: &Vocab<'_>, id: u32, mut f: impl FnMut(u8)) -> usize {
    if v.is_eog(id) {
        return 0;
    }
    let mut n = 0;
    let mut stopped = false;
    v.piece_bytes(id, true, &mut |b| {
        if b == 0 {
            stopped = true;
        }
        if !stopped {
            f(b);
            n += 1;
        }
    });
    n
}

impl Layout {
    fn new(v: &Vocab<'_>) -> Result<Self> {
        let n_vocab = v.n_vocab();
        let mut bytes = 0usize;
        let mut longest = 0;
        for id in 0..n_vocab as u32 {
            let n = piece_len(v, id, |_| {});
            bytes += n;
            longest = longest.max(n);
        }
        if bytes >= u32::MAX as usize || n_vocab >= u32::MAX as usize {
            return Err(Error::InvalidArgument);
        }
        Ok(Self {
            n_vocab,
            bytes,
            longest,
        })
    }

    fn total(&self) -> Option<usize> {
        let parts = [
            self.n_vocab.checked_mul(8)?,
            self.bytes,
            self.n_vocab.checked_mul(4)?,
            self.bytes,
            self.bytes.checked_mul(4)?,
            self.bytes.checked_add(1)?.checked_mul(4)?,
            self.longest.checked_add(1)?.checked_mul(4)?,
        ];
        crate::model::padded_total(&parts)
    }
}

impl<'a> TokenTrie<'a> {
    /// Bytes [`TokenTrie::init`] needs for `vocab` (at most about 14 bytes
    /// per byte of token text plus 12 per token: 4.6 MB for LLaMA 3's
    /// 128,256 tokens).
    pub fn size(vocab: &Vocab<'_>) -> Result<usize> {
        Layout::new(vocab)?.total().ok_or(Error::InvalidArgument)
    }

    /// Builds the trie of `vocab` in `mem` (64-byte aligned, at least
    /// [`TokenTrie::size`] bytes). Linear in the text but for the sort
    /// (n log n comparisons of texts).
    pub fn init(vocab: &Vocab<'_>, mem: &'a mut [u8]) -> Result<Self> {
        let lay = Layout::new(vocab)?;
        let total = lay.total().ok_or(Error::InvalidArgument)?;
        if !(mem.as_ptr() as usize).is_multiple_of(ALIGN) {
            return Err(Error::Misaligned);
        }
        if mem.len() < total {
            return Err(Error::BufferTooSmall);
        }
        let mut rest = &mut mem[..total];
        let span: &mut [[u32; 2]] = super::carve(&mut rest, lay.n_vocab);
        let text: &mut [u8] = super::carve(&mut rest, lay.bytes);
        let ids: &mut [u32] = super::carve(&mut rest, lay.n_vocab);
        let byte: &mut [u8] = super::carve(&mut rest, lay.bytes);
        let end: &mut [u32] = super::carve(&mut rest, lay.bytes);
        let tok: &mut [u32] = super::carve(&mut rest, lay.bytes + 1);
        let path: &mut [u32] = super::carve(&mut rest, lay.longest + 1);

        let mut at = 0usize;
        let mut n_ids = 0;
        for id in 0..lay.n_vocab as u32 {
            let start = at;
            let n = piece_len(vocab, id, |b| {
                text[at] = b;
                at += 1;
            });
            span[id as usize] = [start as u32, n as u32];
            if n > 0 {
                ids[n_ids] = id;
                n_ids += 1;
            }
        }
        let (text, span) = (&*text, &*span);
        let of = |id: u32| {
            let [o, l] = span[id as usize];
            &text[o as usize..(o + l) as usize]
        };
        let ids = &mut ids[..n_ids];
        crate::sampler::heap_sort(ids, |&a, &b| of(a).cmp(of(b)).then(a.cmp(&b)).is_lt());

        // Preorder: a token adds the nodes past its common prefix with the
        // one before; nodes deeper than that prefix are closed first.
        let mut n_nodes = 0usize;
        let mut prev: &[u8] = &[];
        for (k, &id) in ids.iter().enumerate() {
            let s = of(id);
            let lcp = prev.iter().zip(s).take_while(|(a, b)| a == b).count();
            for &p in &path[lcp..prev.len()] {
                end[p as usize] = n_nodes as u32;
            }
            for (d, &b) in s.iter().enumerate().skip(lcp) {
                path[d] = n_nodes as u32;
                byte[n_nodes] = b;
                tok[n_nodes] = k as u32;
                n_nodes += 1;
            }
            prev = s;
        }
        for &p in &path[..prev.len()] {
            end[p as usize] = n_nodes as u32;
        }
        tok[n_nodes] = n_ids as u32;

        let mut eog = [u32::MAX; MAX_EOG];
        let list = vocab.eog_tokens();
        let n_eog = list.len().min(MAX_EOG);
        eog[..n_eog].copy_from_slice(&list[..n_eog]);
        Ok(TokenTrie {
            n_vocab: lay.n_vocab,
            span,
            text,
            ids,
            byte: &byte[..n_nodes],
            end: &end[..n_nodes],
            tok: &tok[..n_nodes + 1],
            eog,
            n_eog,
            depth: lay.longest,
        })
    }

    /// Tokens in the vocabulary.
    pub fn n_vocab(&self) -> usize {
        self.n_vocab
    }

    /// The text the grammar matches for token `id` (empty for tokens never
    /// taken by their text, and for end-of-generation tokens).
    pub fn piece(&self, id: u32) -> &'a [u8] {
        match self.span.get(id as usize) {
            Some(&[o, l]) => &self.text[o as usize..(o + l) as usize],
            None => &[],
        }
    }

    /// Whether `id` ends generation.
    pub fn is_eog(&self, id: u32) -> bool {
        self.eog[..self.n_eog].contains(&id)
    }

    /// The end-of-generation tokens.
    pub fn eog(&self) -> &[u32] {
        &self.eog[..self.n_eog]
    }

    /// Nodes of the trie.
    pub fn n_nodes(&self) -> usize {
        self.byte.len()
    }

    /// The longest token text, in bytes (the trie's depth).
    pub fn depth(&self) -> usize {
        self.depth
    }

    /// Tokens in the trie.
    pub(super) fn ids(&self) -> &'a [u32] {
        self.ids
    }

    /// The byte of node `n`, the index past its subtree, and the tokens
    /// ending there.
    #[inline]
    pub(super) fn node(&self, n: usize) -> (u8, usize, &'a [u32]) {
        let (a, b) = (self.tok[n] as usize, self.tok[n + 1] as usize);
        (self.byte[n], self.end[n] as usize, &self.ids[a..b])
    }
}
