//! The tokenizer on arbitrary bytes, with eight vocabularies of
//! tests/data/vocab: LLaMA's SentencePiece one and seven byte-level BPE ones
//! whose pre-tokenizers cover the hand-written splitters (LLaMA 3, GPT-2,
//! Qwen2) and the pattern engine (StarCoder/SmolLM2, DeepSeek LLM and
//! Coder, Falcon). First byte: bits 0, 4 and 5 pick the vocabulary (bit 0
//! alone keeps the two old seeds on SPM and LLaMA 3), bit 1 adds BOS, bit 2
//! parses special tokens, bit 3 gives too small an output first. Every token id
//! returned is in the vocabulary, and streaming the pieces back never fails.
#![no_main]
use libfuzzer_sys::fuzz_target;
use nanollama::host::AlignedBuf;
use nanollama::tokenizer::{StreamDecoder, Vocab};
use nanollama::Error;
use std::sync::OnceLock;

static SPM: &[u8] = include_bytes!("../../tests/data/vocab/ggml-vocab-llama-spm.gguf");
static BPE: &[u8] = include_bytes!("../../tests/data/vocab/ggml-vocab-llama-bpe.gguf");
static OTHERS: [&[u8]; 6] = [
    include_bytes!("../../tests/data/vocab/ggml-vocab-smollm2.gguf"),
    include_bytes!("../../tests/data/vocab/ggml-vocab-qwen2.gguf"),
    include_bytes!("../../tests/data/vocab/ggml-vocab-gpt-2.gguf"),
    include_bytes!("../../tests/data/vocab/ggml-vocab-deepseek-llm.gguf"),
    include_bytes!("../../tests/data/vocab/ggml-vocab-deepseek-coder.gguf"),
    include_bytes!("../../tests/data/vocab/ggml-vocab-falcon.gguf"),
];

struct Loaded(Vocab<'static>);

/// GPT-2's byte-level character of byte `b`: printable Latin-1 stands for
/// itself, every other byte for U+0100 onwards in byte order.
fn byte_char(b: u8) -> char {
    let printable = |c: u8| matches!(c, 33..=126 | 161..=172 | 174..=255);
    if printable(b) {
        return b as char;
    }
    let n = (0..b).filter(|&c| !printable(c)).count() as u32;
    char::from_u32(256 + n).unwrap()
}

fn vocab(bytes: &'static [u8]) -> Vocab<'static> {
    let need = Vocab::size(bytes).unwrap();
    Vocab::init(bytes, AlignedBuf::new(need).leak()).unwrap()
}

fn vocabs() -> &'static [Loaded; 8] {
    static V: OnceLock<[Loaded; 8]> = OnceLock::new();
    V.get_or_init(|| {
        let mut all = [SPM, BPE]
            .into_iter()
            .chain(OTHERS)
            .map(|b| Loaded(vocab(b)));
        core::array::from_fn(|_| all.next().unwrap())
    })
}

fuzz_target!(init: {
    // Eight vocabularies take seconds to index under ASan: before the clock.
    vocabs();
}, |data: &[u8]| {
    let Some((&flags, text)) = data.split_first() else {
        return;
    };
    let which = (flags & 1) | ((flags >> 3) & 6);
    let v = &vocabs()[which as usize].0;
    let (add_bos, special, short) = (flags & 2 != 0, flags & 4 != 0, flags & 8 != 0);
    let mut scratch = AlignedBuf::new(Vocab::scratch_size(text.len()).unwrap());
    let mut needed = 0;
    let mut tokenize = |out: &mut [u32], needed: &mut usize| {
        v.tokenize(text, add_bos, special, scratch.as_mut_slice(), out, needed)
    };
    if short {
        match tokenize(&mut [0u32; 1], &mut needed) {
            Ok(n) => assert!(n <= 1),
            Err(Error::BufferTooSmall) => assert!(needed > 1),
            Err(e) => panic!("{e:?}"),
        }
    }
    let mut out = vec![0u32; text.len() + 2];
    let n = match tokenize(&mut out, &mut needed) {
        Ok(n) => n,
        // Invalid UTF-8 can take more tokens than bytes (a lead byte takes
        // the next bytes into its symbol, which then falls back to one token
        // per byte): the size it asks for is then exactly enough.
        Err(Error::BufferTooSmall) => {
            assert!(needed > out.len());
            out = vec![0u32; needed];
            let n = tokenize(&mut out, &mut needed).expect("the size asked for is enough");
            assert_eq!(n, out.len());
            n
        }
        Err(e) => panic!("{e:?}"),
    };
    let ids = &out[..n];
    assert!(ids.iter().all(|&t| (t as usize) < v.n_vocab()));
    if add_bos {
        assert_eq!(ids.first(), Some(&v.bos()));
    }
    let mut dec = StreamDecoder::new();
    let mut text_out = Vec::new();
    let mut buf = [0u8; 300];
    for &t in ids {
        let k = dec.push(v, t, special, &mut buf, &mut needed).unwrap();
        text_out.extend_from_slice(&buf[..k]);
    }
    let k = dec.flush(&mut buf, &mut needed).unwrap();
    text_out.extend_from_slice(&buf[..k]);
    // Without special tokens, the text comes back as it went in: the
    // vocabularies fall back to bytes, so nothing is lost, except that
    // SentencePiece adds a leading space and reads its space mark U+2581 in
    // the text as a space (as SentencePiece and llama.cpp do).
    if !special && std::str::from_utf8(text).is_ok() {
        if which == 0 {
            let want = std::str::from_utf8(text).unwrap().replace('\u{2581}', " ");
            let back = text_out.strip_prefix(b" ").unwrap_or(&text_out);
            assert_eq!(back, want.as_bytes(), "round trip");
        } else {
            // Some vocabularies (SmolLM2's, Falcon's) have no token for the
            // byte-level character of a few bytes (0x04, ...): those bytes
            // are dropped, as llama.cpp drops them.
            let want: Vec<u8> = text
                .iter()
                .copied()
                .filter(|&b| v.lookup(byte_char(b).encode_utf8(&mut [0; 4]).as_bytes()).is_some())
                .collect();
            assert_eq!(text_out, want, "round trip");
        }
    }
});
