//! The tokenizer on arbitrary bytes, with both vocabulary kinds (LLaMA's
//! SentencePiece vocabulary and LLaMA 3's BPE one, from tests/data/vocab).
//! First byte: bit 0 picks the vocabulary, bit 1 adds BOS, bit 2 parses
//! special tokens, bit 3 gives too small an output first. Every token id
//! returned is in the vocabulary, and streaming the pieces back never fails.
#![no_main]
use libfuzzer_sys::fuzz_target;
use nanollama::host::AlignedBuf;
use nanollama::tokenizer::{StreamDecoder, Vocab};
use nanollama::Error;
use std::sync::OnceLock;

static SPM: &[u8] = include_bytes!("../../tests/data/vocab/ggml-vocab-llama-spm.gguf");
static BPE: &[u8] = include_bytes!("../../tests/data/vocab/ggml-vocab-llama-bpe.gguf");

struct Loaded(Vocab<'static>);

fn vocab(bytes: &'static [u8]) -> Vocab<'static> {
    let need = Vocab::size(bytes).unwrap();
    Vocab::init(bytes, AlignedBuf::new(need).leak()).unwrap()
}

fn vocabs() -> &'static [Loaded; 2] {
    static V: OnceLock<[Loaded; 2]> = OnceLock::new();
    V.get_or_init(|| [Loaded(vocab(SPM)), Loaded(vocab(BPE))])
}

fuzz_target!(|data: &[u8]| {
    let Some((&flags, text)) = data.split_first() else {
        return;
    };
    let v = &vocabs()[(flags & 1) as usize].0;
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
    // Without special tokens, the text comes back as it went in: both
    // vocabularies fall back to bytes, so nothing is lost, except that
    // SentencePiece adds a leading space and reads its space mark U+2581 in
    // the text as a space (as SentencePiece and llama.cpp do).
    if !special && std::str::from_utf8(text).is_ok() {
        if flags & 1 == 0 {
            let want = std::str::from_utf8(text).unwrap().replace('\u{2581}', " ");
            let back = text_out.strip_prefix(b" ").unwrap_or(&text_out);
            assert_eq!(back, want.as_bytes(), "round trip");
        } else {
            assert_eq!(text_out, text, "round trip");
        }
    }
});
