//! Tokenizers against llama.cpp's own test vectors.
mod common;
use common::AlignedBuf;
use nanollama::tokenizer::Vocab;
use std::path::PathBuf;

fn data(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/vocab")
        .join(name)
}

/// The (text, ids) pairs of a llama.cpp vector file.
fn vectors(base: &str) -> Vec<(Vec<u8>, Vec<u32>)> {
    let inp = std::fs::read(data(&format!("{base}.inp"))).unwrap();
    let out = std::fs::read_to_string(data(&format!("{base}.out"))).unwrap();
    let sep = b"\n__ggml_vocab_test__\n";
    let mut texts = Vec::new();
    let mut rest = &inp[..];
    while let Some(i) = rest.windows(sep.len()).position(|w| w == sep) {
        texts.push(rest[..i].to_vec());
        rest = &rest[i + sep.len()..];
    }
    let ids: Vec<Vec<u32>> = out
        .lines()
        .map(|l| l.split_whitespace().map(|t| t.parse().unwrap()).collect())
        .collect();
    assert_eq!(texts.len(), ids.len());
    texts.into_iter().zip(ids).collect()
}

fn check(base: &str) -> usize {
    let bytes = std::fs::read(data(base)).unwrap();
    let mut mem = AlignedBuf::new(Vocab::size(&bytes).unwrap());
    let v = Vocab::init(&bytes, mem.as_mut_slice()).unwrap();
    let cases = vectors(base);
    let mut fails = Vec::new();
    for (text, want) in &cases {
        let mut scratch = AlignedBuf::new(Vocab::scratch_size(text.len()).unwrap());
        let mut out = vec![0u32; text.len() * 2 + 4];
        let mut needed = 0;
        let n = v
            .tokenize(
                text,
                false,
                false,
                scratch.as_mut_slice(),
                &mut out,
                &mut needed,
            )
            .unwrap();
        if out[..n] != want[..] {
            fails.push(format!(
                "{:?}: got {:?} want {want:?}",
                String::from_utf8_lossy(text),
                &out[..n]
            ));
        }
    }
    assert!(
        fails.is_empty(),
        "{} of {} differ:\n{}",
        fails.len(),
        cases.len(),
        fails.join("\n")
    );
    cases.len()
}

/// The vocabularies of tests/data/vocab that come with llama.cpp's vectors.
const VECTOR_VOCABS: [&str; 9] = [
    "llama-spm",
    "llama-bpe",
    "gpt-2",
    "starcoder",
    "qwen2",
    "deepseek-llm",
    "deepseek-coder",
    "falcon",
    "command-r",
];

/// Every vocabulary of tests/data/vocab with llama.cpp's vectors (46 strings
/// each), all ids equal.
#[test]
fn vectors_of_every_vocab_match_llama_cpp() {
    for name in VECTOR_VOCABS {
        assert_eq!(check(&format!("ggml-vocab-{name}.gguf")), 46, "{name}");
    }
}

#[test]
fn spm_round_trip_and_buffers() {
    let bytes = std::fs::read(data("ggml-vocab-llama-spm.gguf")).unwrap();
    let mut mem = AlignedBuf::new(Vocab::size(&bytes).unwrap());
    let v = Vocab::init(&bytes, mem.as_mut_slice()).unwrap();
    assert_eq!((v.n_vocab(), v.bos(), v.eos()), (32000, 1, 2));
    let text = "Hello  wörld\t🦙 ∑ 12345 \u{1F600}x".as_bytes();
    let mut scratch = AlignedBuf::new(Vocab::scratch_size(text.len()).unwrap());
    let mut out = vec![0u32; 64];
    let mut needed = 0;
    let n = v
        .tokenize(
            text,
            true,
            false,
            scratch.as_mut_slice(),
            &mut out,
            &mut needed,
        )
        .unwrap();
    assert_eq!(out[0], 1);
    let mut back = Vec::new();
    let mut buf = [0u8; 256];
    for &t in &out[1..n] {
        let mut k = 0;
        v.piece(t, false, &mut buf, &mut k).unwrap();
        back.extend_from_slice(&buf[..k]);
    }
    // SentencePiece adds one leading space.
    assert_eq!(&back[1..], text);
    assert_eq!(back[0], b' ');
    // Too small an output: the size needed is reported.
    let mut small = vec![0u32; 2];
    let r = v.tokenize(
        text,
        true,
        false,
        scratch.as_mut_slice(),
        &mut small,
        &mut needed,
    );
    assert_eq!(r, Err(nanollama::Error::BufferTooSmall));
    assert_eq!(needed, n);
}

#[test]
fn bpe_round_trip() {
    let bytes = std::fs::read(data("ggml-vocab-llama-bpe.gguf")).unwrap();
    let mut mem = AlignedBuf::new(Vocab::size(&bytes).unwrap());
    let v = Vocab::init(&bytes, mem.as_mut_slice()).unwrap();
    assert_eq!(v.n_vocab(), 128256);
    for text in [
        "Hello  wörld\t🦙 ∑ 12345 \u{1F600}x\n\n  end ",
        "I've been 'there' — d'accord? ÇA VA'LL\r\n\r\n",
        "日本語のテキストと中文。 Ünïcödé ñ  ",
        "fn main() {\n    println!(\"{}\", 1_000_000);\n}\n",
    ] {
        let text = text.as_bytes();
        let mut scratch = AlignedBuf::new(Vocab::scratch_size(text.len()).unwrap());
        let mut out = vec![0u32; 256];
        let mut needed = 0;
        let n = v
            .tokenize(
                text,
                false,
                false,
                scratch.as_mut_slice(),
                &mut out,
                &mut needed,
            )
            .unwrap();
        let mut back = Vec::new();
        let mut buf = [0u8; 256];
        for &t in &out[..n] {
            let mut k = 0;
            v.piece(t, false, &mut buf, &mut k).unwrap();
            back.extend_from_slice(&buf[..k]);
        }
        assert_eq!(back, text, "{:?}", String::from_utf8_lossy(text));
    }
}

fn unhex(h: &str) -> Vec<u8> {
    (0..h.len() / 2)
        .map(|i| u8::from_str_radix(&h[2 * i..2 * i + 2], 16).unwrap())
        .collect()
}

fn ids(s: &str) -> Vec<u32> {
    s.split_whitespace().map(|t| t.parse().unwrap()).collect()
}

/// The 2400 strings of tools/make_tokenizer_corpus.py.
fn corpus() -> Vec<Vec<u8>> {
    let text = std::fs::read_to_string(data("corpus/strings.txt")).unwrap();
    text.lines().map(unhex).collect()
}

/// The corpus on every vocabulary, with llama.cpp's ids (llama_tokenize,
/// add_special false), without and with special-token parsing.
#[test]
fn corpus_matches_llama_cpp_on_every_vocab() {
    let strings = corpus();
    assert_eq!(strings.len(), 2400);
    let mut fails = Vec::new();
    let mut count = 0;
    for name in VECTOR_VOCABS.iter().chain(&["smollm2"]) {
        let bytes = std::fs::read(data(&format!("ggml-vocab-{name}.gguf"))).unwrap();
        let mut mem = AlignedBuf::new(Vocab::size(&bytes).unwrap());
        let v = Vocab::init(&bytes, mem.as_mut_slice()).unwrap();
        let want = std::fs::read_to_string(data(&format!("corpus/{name}.txt"))).unwrap();
        let mut scratch = AlignedBuf::new(Vocab::scratch_size(4096).unwrap());
        let mut out = vec![0u32; 4096];
        let mut n_lines = 0;
        for (s, line) in strings.iter().zip(want.lines()) {
            n_lines += 1;
            let (plain, special) = line.split_once('\t').unwrap();
            let plain = ids(plain);
            let special = if special == "=" {
                plain.clone()
            } else {
                ids(special)
            };
            for (parse, want) in [(false, &plain), (true, &special)] {
                let mut needed = 0;
                let n = v
                    .tokenize(
                        s,
                        false,
                        parse,
                        scratch.as_mut_slice(),
                        &mut out,
                        &mut needed,
                    )
                    .unwrap();
                count += 1;
                if out[..n] != want[..] && fails.len() < 20 {
                    fails.push(format!(
                        "{name} special={parse} {:?}:\n  got  {:?}\n  want {want:?}",
                        String::from_utf8_lossy(s),
                        &out[..n]
                    ));
                }
            }
        }
        assert_eq!(n_lines, strings.len(), "{name}");
    }
    assert_eq!(count, 2400 * 10 * 2);
    assert!(fails.is_empty(), "{}", fails.join("\n"));
}

/// Code points as llama.cpp (and the tokenizer) read UTF-8: the lead byte
/// gives the length, overlong forms and surrogates decode as they are, a
/// byte that starts no complete sequence is U+FFFD.
fn llama_cpp_code_points(s: &[u8]) -> Vec<u32> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < s.len() {
        let b = s[i];
        let (len, init) = match b {
            0x00..=0x7F => (1, b as u32),
            0xC0..=0xDF => (2, (b & 0x1F) as u32),
            0xE0..=0xEF => (3, (b & 0x0F) as u32),
            0xF0..=0xF7 => (4, (b & 0x07) as u32),
            _ => (0, 0),
        };
        let tail = s.get(i + 1..i + len.max(1));
        match tail {
            Some(t) if len > 0 && t.iter().all(|&c| c & 0xC0 == 0x80) => {
                out.push(t.iter().fold(init, |cp, &c| cp << 6 | (c & 0x3F) as u32));
                i += len;
            }
            _ => {
                out.push(0xFFFD);
                i += 1;
            }
        }
    }
    out
}

/// The corpus split by the pre-tokenizers no vocabulary here has, against
/// llama.cpp's own unicode_regex_split (code points per pre-token).
#[test]
fn corpus_pre_tokens_match_llama_cpp() {
    use nanollama::pretokenize::{next_cut, split, PreTokenizer};
    let strings = corpus();
    let want = std::fs::read_to_string(data("corpus/pretokenize.txt")).unwrap();
    let families = [
        PreTokenizer::Default,
        PreTokenizer::DeepSeekV3,
        PreTokenizer::Tekken,
    ];
    let mut fails = Vec::new();
    for (s, line) in strings.iter().zip(want.lines()) {
        let cps = llama_cpp_code_points(s);
        for (pre, col) in families.iter().zip(line.split('\t')) {
            let mut cuts = vec![0u64; cps.len() / 64 + 1];
            let mut work = vec![0u32; pre.work_words(cps.len()).unwrap()];
            split(*pre, &cps, &mut cuts, &mut work);
            let mut got = Vec::new();
            let mut a = 0;
            while a < cps.len() {
                let b = next_cut(&cuts, a);
                got.push((b - a).to_string());
                a = b;
            }
            if got.join(" ") != col && fails.len() < 20 {
                fails.push(format!(
                    "{pre:?} {:?}: got {got:?} want {col}",
                    String::from_utf8_lossy(s)
                ));
            }
        }
    }
    assert!(fails.is_empty(), "{}", fails.join("\n"));
}

#[test]
fn stream_decoder_emits_only_whole_characters() {
    use nanollama::tokenizer::StreamDecoder;
    let bytes = std::fs::read(data("ggml-vocab-llama-spm.gguf")).unwrap();
    let mut mem = AlignedBuf::new(Vocab::size(&bytes).unwrap());
    let v = Vocab::init(&bytes, mem.as_mut_slice()).unwrap();
    // The llama emoji is 4 byte tokens in this vocabulary.
    let text = "a🦙b ∑é".as_bytes();
    let mut scratch = AlignedBuf::new(Vocab::scratch_size(text.len()).unwrap());
    let mut ids = vec![0u32; 64];
    let mut needed = 0;
    let n = v
        .tokenize(
            text,
            false,
            false,
            scratch.as_mut_slice(),
            &mut ids,
            &mut needed,
        )
        .unwrap();
    let mut d = StreamDecoder::new();
    let mut all = Vec::new();
    let mut buf = [0u8; 300];
    let mut held_back = 0;
    for &t in &ids[..n] {
        let k = d.push(&v, t, false, &mut buf, &mut needed).unwrap();
        assert!(std::str::from_utf8(&buf[..k]).is_ok(), "{:?}", &buf[..k]);
        held_back += usize::from(k == 0);
        all.extend_from_slice(&buf[..k]);
    }
    assert!(held_back >= 3, "the emoji's first bytes were held back");
    assert_eq!(d.flush(&mut buf, &mut needed).unwrap(), 0);
    assert_eq!(&all[1..], text);
    // A stream cut inside a character gives its bytes back on flush.
    let mut d = StreamDecoder::new();
    let first_byte = v.lookup(b"<0xF0>").unwrap();
    assert_eq!(
        d.push(&v, first_byte, false, &mut buf, &mut needed)
            .unwrap(),
        0
    );
    assert_eq!(d.flush(&mut buf, &mut needed).unwrap(), 1);
    assert_eq!(buf[0], 0xF0);
    assert_eq!(
        d.push(&v, 99999, false, &mut buf, &mut needed),
        Err(nanollama::Error::TokenOutOfRange)
    );
}

/// BOS, EOS, EOT, add_bos, add_eos and the end-of-generation set of every
/// vocabulary, as llama.cpp (llama-cpp-python 0.3.36) reports them
/// (`llama_vocab_bos`, ..., `llama_vocab_is_eog` over all ids).
#[test]
fn special_ids_and_eog_sets_match_llama_cpp() {
    const N: u32 = nanollama::tokenizer::NONE;
    /// Vocabulary, BOS, EOS, EOT, add_bos, add_eos, EOG set.
    type Case = (&'static str, u32, u32, u32, bool, bool, &'static [u32]);
    let cases: [Case; 9] = [
        (
            "llama-bpe",
            128000,
            128001,
            128009,
            true,
            false,
            &[128001, 128009],
        ),
        ("llama-spm", 1, 2, N, true, false, &[2]),
        (
            "qwen2",
            151643,
            151643,
            151645,
            false,
            false,
            &[128247, 151643, 151645],
        ),
        ("command-r", 5, 255001, N, true, false, &[0, 255001]),
        (
            "deepseek-llm",
            100000,
            100001,
            100001,
            true,
            false,
            &[100001],
        ),
        ("starcoder", 0, 0, 0, false, false, &[0, 4]),
        ("gpt-2", 50256, 50256, 50256, false, false, &[50256]),
        ("falcon", 11, 11, 11, false, false, &[11]),
        ("deepseek-coder", 32013, 32014, 32014, true, false, &[32014]),
    ];
    for (name, bos, eos, eot, add_bos, add_eos, eog) in cases {
        let bytes = std::fs::read(data(&format!("ggml-vocab-{name}.gguf"))).unwrap();
        let mut mem = AlignedBuf::new(Vocab::size(&bytes).unwrap());
        let v = Vocab::init(&bytes, mem.as_mut_slice()).unwrap();
        let got = (v.bos(), v.eos(), v.eot(), v.add_bos(), v.add_eos());
        assert_eq!(got, (bos, eos, eot, add_bos, add_eos), "{name}");
        let mut set: Vec<u32> = v.eog_tokens().to_vec();
        set.sort();
        assert_eq!(set, eog, "{name}");
        assert!(eog.iter().all(|&t| v.is_eog(t)) && !v.is_eog(N), "{name}");
    }
}

/// A byte whose byte-level character is not in the vocabulary is dropped,
/// as llama.cpp drops it (found by the tokenizer fuzz target: Falcon has no
/// token for 0x04). llama.cpp's ids: "He\x04" -> [1595], "\x04" -> [],
/// "a\x01b" -> [76, 187, 77].
#[test]
fn bytes_without_a_token_are_dropped_as_llama_cpp_drops_them() {
    let bytes = std::fs::read(data("ggml-vocab-falcon.gguf")).unwrap();
    let mut mem = AlignedBuf::new(Vocab::size(&bytes).unwrap());
    let v = Vocab::init(&bytes, mem.as_mut_slice()).unwrap();
    for (text, want) in [
        (&b"He\x04"[..], &[1595u32][..]),
        (b"\x04", &[]),
        (b"a\x01b", &[76, 187, 77]),
    ] {
        let mut scratch = AlignedBuf::new(Vocab::scratch_size(text.len()).unwrap());
        let mut out = [0u32; 8];
        let mut need = 0;
        let n = v
            .tokenize(
                text,
                false,
                false,
                scratch.as_mut_slice(),
                &mut out,
                &mut need,
            )
            .unwrap();
        assert_eq!(&out[..n], want, "{text:?}");
    }
}
