//! GBNF text and a token sequence, both from the input: the parser refuses
//! or builds a grammar (never panics, never reads outside the text), and on
//! a built grammar the stage's fast mask agrees with the token-by-token
//! check, accept takes exactly what allows allows, and a saved state loads
//! back (a damaged one is refused, the state unchanged).
//! Input: grammar text, a 0xFF byte, then two bytes per step (which token).
//! Runs with `-timeout=30` in tools/fuzz.sh (a step walks the whole
//! vocabulary under the sanitizer).
#![no_main]
use libfuzzer_sys::fuzz_target;
use nanollama::grammar::{Grammar, GrammarParams, GrammarStage, MatcherParams, TokenTrie};
use nanollama::host::AlignedBuf;
use nanollama::tokenizer::Vocab;
use std::sync::OnceLock;

/// A small vocabulary (LLaMA's first 3,000 SentencePiece tokens: the byte
/// tokens that make partial UTF-8 common, and short pieces), as a GGUF
/// written here so that one run is fast under the sanitizer; built once.
fn trie() -> &'static TokenTrie<'static> {
    static T: OnceLock<(&'static Vocab<'static>, TokenTrie<'static>)> = OnceLock::new();
    &T.get_or_init(|| {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/data/vocab/ggml-vocab-llama-spm.gguf");
        let bytes = std::fs::read(path).unwrap();
        let mut mem = AlignedBuf::new(Vocab::size(&bytes).unwrap());
        let full = Vocab::init(&bytes, mem.as_mut_slice()).unwrap();
        let small: &'static [u8] = small_vocab(&full, 3000).leak();
        let mem = AlignedBuf::new(Vocab::size(small).unwrap()).leak();
        let v: &'static Vocab<'static> = Box::leak(Box::new(Vocab::init(small, mem).unwrap()));
        let mem = AlignedBuf::new(TokenTrie::size(v).unwrap()).leak();
        (v, TokenTrie::init(v, mem).unwrap())
    })
    .1
}

/// A SentencePiece vocabulary GGUF of `full`'s first `n` tokens.
fn small_vocab(full: &Vocab<'_>, n: usize) -> Vec<u8> {
    let s = |o: &mut Vec<u8>, t: &[u8]| {
        o.extend_from_slice(&(t.len() as u64).to_le_bytes());
        o.extend_from_slice(t);
    };
    let mut o = b"GGUF".to_vec();
    o.extend_from_slice(&3u32.to_le_bytes());
    o.extend_from_slice(&0u64.to_le_bytes());
    o.extend_from_slice(&7u64.to_le_bytes());
    s(&mut o, b"general.architecture");
    o.extend_from_slice(&8u32.to_le_bytes());
    s(&mut o, b"llama");
    s(&mut o, b"tokenizer.ggml.model");
    o.extend_from_slice(&8u32.to_le_bytes());
    s(&mut o, b"llama");
    s(&mut o, b"tokenizer.ggml.tokens");
    o.extend_from_slice(&9u32.to_le_bytes());
    o.extend_from_slice(&8u32.to_le_bytes());
    o.extend_from_slice(&(n as u64).to_le_bytes());
    for id in 0..n as u32 {
        s(&mut o, full.token_text(id));
    }
    s(&mut o, b"tokenizer.ggml.scores");
    o.extend_from_slice(&9u32.to_le_bytes());
    o.extend_from_slice(&6u32.to_le_bytes());
    o.extend_from_slice(&(n as u64).to_le_bytes());
    for id in 0..n {
        o.extend_from_slice(&(-(id as f32)).to_le_bytes());
    }
    s(&mut o, b"tokenizer.ggml.token_type");
    o.extend_from_slice(&9u32.to_le_bytes());
    o.extend_from_slice(&5u32.to_le_bytes());
    o.extend_from_slice(&(n as u64).to_le_bytes());
    for id in 0..n as u32 {
        o.extend_from_slice(&full.token_type(id).to_le_bytes());
    }
    for (k, v) in [("tokenizer.ggml.bos_token_id", 1u32), ("tokenizer.ggml.eos_token_id", 2)] {
        s(&mut o, k.as_bytes());
        o.extend_from_slice(&4u32.to_le_bytes());
        o.extend_from_slice(&v.to_le_bytes());
    }
    o
}

fn bit(m: &[u64], id: u32) -> bool {
    m[id as usize >> 6] >> (id & 63) & 1 == 1
}

fuzz_target!(|data: &[u8]| {
    let cut = data.iter().position(|&b| b == 0xFF).unwrap_or(data.len());
    let (text, steps) = (&data[..cut], data.get(cut + 1..).unwrap_or(&[]));
    let Ok(size) = Grammar::size(text) else { return };
    let mut gmem = AlignedBuf::new(size);
    let Ok(g) = Grammar::init(text, gmem.as_mut_slice()) else { return };
    let t = trie();
    let n = t.n_vocab() as u32;
    // Small bounds: the limits are met often, and must be statuses.
    let gp = GrammarParams {
        matcher: MatcherParams { max_stacks: 64, max_positions: 4096 },
        cache_entries: 4,
        walk_frames: 512,
        walk_positions: 4096,
        ..GrammarParams::default()
    };
    let mut smem = AlignedBuf::new(GrammarStage::size(t, &gp).unwrap());
    let Ok(mut st) = GrammarStage::init(&g, t, &gp, smem.as_mut_slice()) else { return };
    let mut cmem = AlignedBuf::new(GrammarStage::size(t, &gp).unwrap());
    let mut check = GrammarStage::init(&g, t, &gp, cmem.as_mut_slice()).unwrap();
    for (k, pair) in steps.chunks_exact(2).take(16).enumerate() {
        let Ok(mask) = st.allowed() else { return };
        let mask = mask.to_vec();
        let allowed: Vec<u32> = (0..n).filter(|&id| bit(&mask, id)).collect();
        // The fast mask against the one-token check, on a spread of ids.
        for j in 0..48u32 {
            let id = (j.wrapping_mul(2654435761) ^ k as u32 * 977) % n;
            match check.allows(id) {
                Ok(a) => assert_eq!(a, bit(&mask, id), "token {id}"),
                Err(_) => return,
            }
        }
        for &id in allowed.iter().take(16) {
            assert!(check.allows(id).unwrap_or(true), "token {id}");
        }
        let pick = u16::from_le_bytes([pair[0], pair[1]]) as u32;
        // Even picks: an allowed token (must be taken); odd: any token.
        let id = if pick & 1 == 0 && !allowed.is_empty() {
            allowed[(pick >> 1) as usize % allowed.len()]
        } else {
            (pick >> 1) % n
        };
        let Ok(ok) = check.allows(id) else { return };
        let mut before = vec![0u8; st.state_size() + 64];
        let mut w = nanollama::state::Writer::new(&mut before);
        st.save(&mut w);
        let len = st.state_size();
        match st.accept(id) {
            Ok(()) => {
                assert!(ok, "accepted a refused token {id}");
                check.accept(id).unwrap();
            }
            Err(nanollama::Error::GrammarLimit) => return,
            Err(e) => {
                assert!(!ok, "refused an allowed token {id}: {e:?}");
                // Refused: unchanged.
                let mut after = vec![0u8; st.state_size() + 64];
                let mut w = nanollama::state::Writer::new(&mut after);
                st.save(&mut w);
                assert_eq!(before[..len], after[..st.state_size()]);
            }
        }
        if t.is_eog(id) {
            break;
        }
    }
});
