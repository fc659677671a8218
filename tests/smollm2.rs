//! SmolLM2-135M-Instruct, a real model, against llama.cpp and a float64
//! evaluation: the published Q4_1 file and its requantizations by
//! llama.cpp's quantizer (Q8_0, Q4_K_M, Q5_K_M). The weights are not in the
//! repository: `bash tools/fetch-smollm2.sh --requantize` puts them under
//! models/. Without them these tests print that they did not run (and fail
//! under CI, which fetches them first). The fixtures in tests/data/smollm2/
//! come from `python3 tools/smollm2.py fixtures` (see its docstring); each
//! names the SHA-256 of the file it was made from, checked here.
//!
//! Per file and for each of four chat prompts:
//! - the prompt (chat markup, special tokens parsed, BOS as the file asks)
//!   tokenizes to llama.cpp's ids;
//! - with f32 matrix-product inputs the logits of every prompt position are
//!   far closer to float64 than llama.cpp's (mean KL);
//! - with the default inputs (int8 blocks, as llama.cpp rounds them) the
//!   mean KL is within `DEFAULT_KL_SLACK` of llama.cpp's: both carry the
//!   same kind of rounding, and which of the two lands closer is decided by
//!   last-bit differences (see `DEFAULT_KL_SLACK`);
//! - greedy decoding writes llama.cpp's tokens up to the first step at which
//!   llama.cpp's two best logits are closer than `TIE_GAP` (from there on the
//!   choice is decided by the rounding noise of either engine: llama.cpp
//!   itself writes other text from the same prompt fed in batches of one
//!   token, after 10, 1 and 51 tokens on three of the four Q8_0 prompts,
//!   `python3 tools/smollm2.py llama-batch Q8_0`), and stops where it stops
//!   when all its tokens agree.
mod common;
use common::AlignedBuf;
use nanollama::host::ThreadPool;
use nanollama::tokenizer::Vocab;
use nanollama::{Context, ContextParams, Model, Parallel};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

/// Files and their fixtures.
const TYPES: [&str; 4] = ["Q4_1", "Q8_0", "Q4_K_M", "Q5_K_M"];
/// Default inputs: our mean KL to float64 may exceed llama.cpp's by this
/// factor at most. On this model a difference in the last bit of one
/// activation moves an int8 rounding across its boundary, and from there
/// every later rounding of the token differs (measured: one block gives
/// logits within 1e-5 of llama.cpp's, thirty blocks within 0.15-0.65), so
/// the two engines' KLs are two draws of the same noise: 0.76x-1.23x
/// llama.cpp's on these four files with the AVX-512 kernels, and with the
/// AVX2 kernels (a Zen 3, 2026-12-02) 0.83x, 0.91x, 1.07x and 1.55x (Q8_0;
/// 1.54x with the scalar kernels, whose products are exact too: the draw,
/// not the arithmetic; this test prints them). The bound that checks the
/// arithmetic is the f32-input one below.
const DEFAULT_KL_SLACK: f64 = 1.7;
/// f32 inputs: at most this fraction of llama.cpp's mean KL.
const EXACT_KL_SHARE: f64 = 1e-3;
/// Steps where llama.cpp's top-2 logit gap is below this are near ties.
const TIE_GAP: f32 = 0.5;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

struct Prompt {
    text: String,
    ids: Vec<u32>,
    greedy: Vec<u32>,
    gaps: Vec<f32>,
    kl_full: f64,
    kl_coarse: f64,
}

struct Fixture {
    sha256: String,
    prompts: Vec<Prompt>,
    /// Per prompt, per position: (token id, float64 log-probability) x TOP_K.
    refs: Vec<Vec<Vec<(u32, f64)>>>,
}

const TOP_K: usize = 256;

fn ids(l: &str) -> Vec<u32> {
    l.split_whitespace().map(|t| t.parse().unwrap()).collect()
}

/// A JSON string literal as written by Python's json.dumps (ASCII escapes).
fn json_string(s: &str) -> String {
    let s = s.trim();
    let inner = &s[1..s.len() - 1];
    let mut out = String::new();
    let mut it = inner.chars();
    while let Some(c) = it.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match it.next().unwrap() {
            'n' => out.push('\n'),
            't' => out.push('\t'),
            'r' => out.push('\r'),
            '"' => out.push('"'),
            '\\' => out.push('\\'),
            '/' => out.push('/'),
            'u' => {
                let h: String = it.by_ref().take(4).collect();
                out.push(char::from_u32(u32::from_str_radix(&h, 16).unwrap()).unwrap());
            }
            e => panic!("escape \\{e}"),
        }
    }
    out
}

fn fixture(t: &str) -> Fixture {
    let dir = root().join("tests/data/smollm2");
    let text = std::fs::read_to_string(dir.join(format!("{t}.txt"))).unwrap();
    let lines: Vec<&str> = text.lines().filter(|l| !l.starts_with('#')).collect();
    let sha256 = lines[0].trim().to_string();
    let mut prompts = Vec::new();
    for p in lines[1..].chunks(5) {
        let kl: Vec<f64> = p[4]
            .split_whitespace()
            .map(|v| v.parse().unwrap())
            .collect();
        prompts.push(Prompt {
            text: json_string(p[0]),
            ids: ids(p[1]),
            greedy: ids(p[2]),
            gaps: p[3]
                .split_whitespace()
                .map(|v| v.parse().unwrap())
                .collect(),
            kl_full: kl[0],
            kl_coarse: kl[1],
        });
    }
    assert_eq!(prompts.len(), 4, "{t}: four prompts");
    let raw = std::fs::read(dir.join(format!("{t}.ref"))).unwrap();
    let mut refs = Vec::new();
    let mut off = 0;
    for p in &prompts {
        let mut rows = Vec::new();
        for _ in 0..p.ids.len() {
            let row: Vec<(u32, f64)> = (0..TOP_K)
                .map(|k| {
                    let b = &raw[off + 12 * k..off + 12 * k + 12];
                    (
                        u32::from_le_bytes(b[..4].try_into().unwrap()),
                        f64::from_le_bytes(b[4..].try_into().unwrap()),
                    )
                })
                .collect();
            off += 12 * TOP_K;
            rows.push(row);
        }
        refs.push(rows);
    }
    assert_eq!(off, raw.len(), "{t}.ref size");
    Fixture {
        sha256,
        prompts,
        refs,
    }
}

/// The SHA-256 of `bytes`, in hex, as the fixtures name their files.
fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The model file, or None (said loudly) when it has not been fetched.
fn model_file(t: &str) -> Option<PathBuf> {
    let p = root().join(format!("models/SmolLM2-135M-Instruct.{t}.gguf"));
    if p.exists() {
        return Some(p);
    }
    let msg = format!(
        "NOT RUN: {} is missing; `bash tools/fetch-smollm2.sh --requantize` fetches it",
        p.display()
    );
    if std::env::var_os("CI").is_some() {
        panic!("{msg} (CI must fetch it first)");
    }
    eprintln!("\n*** {msg} ***\n");
    None
}

/// KL over the reference's top tokens plus one bin for the rest (as
/// tools/smollm2.py computes llama.cpp's).
fn kl_coarse(top: &[(u32, f64)], logits: &[f32]) -> f64 {
    let max = logits.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v)) as f64;
    let lse = max
        + logits
            .iter()
            .map(|&v| (v as f64 - max).exp())
            .sum::<f64>()
            .ln();
    let (mut k, mut p_top, mut q_top) = (0.0, 0.0, 0.0);
    for &(id, lp) in top {
        let lq = logits[id as usize] as f64 - lse;
        let p = lp.exp();
        k += p * (lp - lq);
        p_top += p;
        q_top += lq.exp();
    }
    let p_rest = (1.0 - p_top).max(0.0);
    let q_rest = (1.0 - q_top).max(1e-300);
    if p_rest > 0.0 {
        k += p_rest * (p_rest.ln() - q_rest.ln());
    }
    k
}

fn argmax(l: &[f32]) -> u32 {
    (0..l.len()).fold(0, |b, i| if l[i] > l[b] { i } else { b }) as u32
}

fn prompt_kl(model: &Model<'_>, p: &Prompt, refs: &[Vec<(u32, f64)>], f32_act: bool) -> Vec<f64> {
    let params = ContextParams {
        n_ctx: 512,
        n_batch: 512,
        logits_all: true,
        f32_activations: f32_act,
        ..ContextParams::default()
    };
    let mut mem = AlignedBuf::new(Context::size(model, &params).unwrap());
    let mut ctx = Context::init(model, &params, mem.as_mut_slice()).unwrap();
    let pool = ThreadPool::new(2);
    ctx.decode(&p.ids, &pool).unwrap();
    let n_vocab = model.config().n_vocab;
    let logits = ctx.logits();
    (0..p.ids.len())
        .map(|i| kl_coarse(&refs[i], &logits[i * n_vocab..(i + 1) * n_vocab]))
        .collect()
}

/// Greedy tokens after `prompt`, up to the first that differs from `want`
/// (what follows a difference says nothing more), an end of generation, or
/// `want`'s length.
fn greedy(
    model: &Model<'_>,
    vocab: &Vocab<'_>,
    prompt: &[u32],
    want: &[u32],
    par: &dyn Parallel,
) -> Vec<u32> {
    let p = ContextParams {
        n_ctx: 512,
        ..ContextParams::default()
    };
    let mut mem = AlignedBuf::new(Context::size(model, &p).unwrap());
    let mut ctx = Context::init(model, &p, mem.as_mut_slice()).unwrap();
    ctx.decode(prompt, par).unwrap();
    let mut out = Vec::new();
    while out.len() < want.len() {
        let t = argmax(ctx.last_logits());
        out.push(t);
        if vocab.is_eog(t) || t != want[out.len() - 1] {
            break;
        }
        ctx.decode(&[t], par).unwrap();
    }
    out
}

fn check(t: &str) {
    let Some(path) = model_file(t) else { return };
    let fx = fixture(t);
    let bytes = std::fs::read(&path).unwrap();
    assert_eq!(
        sha256_hex(&bytes),
        fx.sha256,
        "{t}: this file is not the one the fixtures were made from (another llama.cpp quantizer?)"
    );
    let mut mm = AlignedBuf::new(Model::size(&bytes).unwrap());
    let model = Model::init(&bytes, mm.as_mut_slice()).unwrap();
    let mut vm = AlignedBuf::new(Vocab::size(&bytes).unwrap());
    let vocab = Vocab::init(&bytes, vm.as_mut_slice()).unwrap();
    let pool = ThreadPool::new(2);
    let (mut ours, mut exact, mut llama, mut n) = (0.0, 0.0, 0.0, 0usize);
    for (i, p) in fx.prompts.iter().enumerate() {
        // Tokenization: special tokens parsed, BOS/EOS as the file asks.
        let mut scratch = AlignedBuf::new(Vocab::scratch_size(p.text.len()).unwrap());
        let mut out = vec![0u32; p.text.len() + 8];
        let mut need = 0;
        let k = vocab
            .tokenize_with(
                p.text.as_bytes(),
                vocab.add_special(),
                true,
                scratch.as_mut_slice(),
                &mut out,
                &mut need,
            )
            .unwrap();
        assert_eq!(&out[..k], &p.ids[..], "{t}: prompt {i} tokens");

        let kd = prompt_kl(&model, p, &fx.refs[i], false);
        let ke = prompt_kl(&model, p, &fx.refs[i], true);
        ours += kd.iter().sum::<f64>();
        exact += ke.iter().sum::<f64>();
        llama += p.kl_coarse * p.ids.len() as f64;
        n += p.ids.len();

        let par: &dyn Parallel = if i % 2 == 0 {
            &nanollama::Inline
        } else {
            &pool
        };
        let g = greedy(&model, &vocab, &p.ids, &p.greedy, par);
        let same = g.iter().zip(&p.greedy).take_while(|(a, b)| a == b).count();
        let first_tie = p
            .gaps
            .iter()
            .position(|&gap| gap < TIE_GAP)
            .unwrap_or(p.gaps.len());
        println!(
            "{t} prompt {i}: {} tokens; greedy identical for {same} of {} (first near tie at step {first_tie}); \
             llama.cpp KL {:.4e} (full vocabulary {:.4e})",
            p.ids.len(),
            p.greedy.len(),
            p.kl_coarse,
            p.kl_full
        );
        assert!(
            same >= first_tie.min(p.greedy.len()),
            "{t} prompt {i}: greedy parts from llama.cpp's at step {same}, before the first near tie ({first_tie})\n ours {g:?}\n llama.cpp {:?}",
            p.greedy
        );
        if same == p.greedy.len() {
            assert_eq!(
                g.len(),
                p.greedy.len(),
                "{t} prompt {i}: stops where llama.cpp stops"
            );
        }
    }
    let (ours, exact, llama) = (ours / n as f64, exact / n as f64, llama / n as f64);
    println!(
        "{t}: mean KL to float64 over {n} positions: llama.cpp {llama:.4e}, ours {ours:.4e} ({:.3}x), \
         ours with f32 inputs {exact:.3e}",
        ours / llama
    );
    assert!(
        exact <= llama * EXACT_KL_SHARE,
        "{t}: f32 inputs {exact:e} vs llama.cpp {llama:e}"
    );
    assert!(
        ours <= llama * DEFAULT_KL_SLACK,
        "{t}: default inputs {ours:e} vs llama.cpp {llama:e}"
    );
}

#[test]
fn q4_1_as_published() {
    check(TYPES[0]);
}

#[test]
fn q8_0_requantized() {
    check(TYPES[1]);
}

#[test]
fn q4_k_m_requantized() {
    check(TYPES[2]);
}

#[test]
fn q5_k_m_requantized() {
    check(TYPES[3]);
}

/// The three-turn conversation of `tools/smollm2.py chat` (a system prompt
/// and three user turns, answered greedily by llama.cpp from the whole
/// conversation rendered by its chat template): through
/// `nanollama::conversation`, each turn decodes only its new tokens on top
/// of the cache, the context then holds as many tokens as llama.cpp's whole
/// prompt, and the answers are llama.cpp's tokens, ending at `<|im_end|>`.
fn chat_turns(t: &str) {
    use nanollama::chat::{detect, Template};
    use nanollama::conversation::{Conversation, ConversationParams};
    use nanollama::{Sampler, SamplerParams};
    let Some(path) = model_file(t) else { return };
    let text =
        std::fs::read_to_string(root().join(format!("tests/data/smollm2/chat-{t}.txt"))).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let bytes = std::fs::read(&path).unwrap();
    assert_eq!(
        sha256_hex(&bytes),
        lines[0],
        "{t}: not the file the chat fixture was made from"
    );
    let mut mm = AlignedBuf::new(Model::size(&bytes).unwrap());
    let model = Model::init(&bytes, mm.as_mut_slice()).unwrap();
    let mut vm = AlignedBuf::new(Vocab::size(&bytes).unwrap());
    let vocab = Vocab::init(&bytes, vm.as_mut_slice()).unwrap();
    let tmpl = detect(vocab.chat_template().unwrap()).unwrap();
    assert_eq!(
        tmpl,
        Template::Chatml,
        "{t}: SmolLM2's template is chatml to llama.cpp"
    );
    let params = ContextParams {
        n_ctx: 512,
        n_batch: 512,
        ..ContextParams::default()
    };
    let mut cm = AlignedBuf::new(Context::size(&model, &params).unwrap());
    let mut ctx = Context::init(&model, &params, cm.as_mut_slice()).unwrap();
    let sp = SamplerParams {
        temp: 0.0,
        ..SamplerParams::default()
    };
    let n_vocab = model.config().n_vocab;
    let mut sm = AlignedBuf::new(Sampler::size(n_vocab, &sp, 0).unwrap());
    let mut sampler = Sampler::init(n_vocab, &sp, &[], sm.as_mut_slice()).unwrap();
    let cp = ConversationParams::default();
    let mut vmem = AlignedBuf::new(Conversation::size(&cp).unwrap());
    let mut conv = Conversation::init(&vocab, tmpl, &cp, vmem.as_mut_slice()).unwrap();
    conv.push(
        b"system",
        b"You are a helpful AI assistant named SmolLM, trained by Hugging Face",
    )
    .unwrap();
    let pool = ThreadPool::new(2);
    let ids = |s: &str| -> Vec<u32> { s.split_whitespace().map(|x| x.parse().unwrap()).collect() };
    let mut decoded = Vec::new();
    for turn in 0..3 {
        let l = &lines[1 + 5 * turn..6 + 5 * turn];
        let user: String = serde_json::from_str(l[0]).unwrap();
        let (prompt_ids, gen_ids) = (ids(l[2]), ids(l[3]));
        let answer: String = serde_json::from_str(l[4]).unwrap();
        conv.push(b"user", user.as_bytes()).unwrap();
        let before = ctx.pos();
        let k = conv.prompt(&mut ctx, &mut sampler, &pool).unwrap();
        assert_eq!(ctx.pos(), before + k);
        // What the cache holds is llama.cpp's whole prompt for this turn.
        assert_eq!(
            ctx.pos(),
            prompt_ids.len(),
            "{t}: turn {turn} prompt length"
        );
        decoded.push(k);
        let mut text = Vec::new();
        let r = conv
            .generate(
                &mut ctx,
                &mut sampler,
                96,
                &mut |p| {
                    text.extend_from_slice(p);
                    true
                },
                &pool,
            )
            .unwrap();
        assert_eq!(
            String::from_utf8(text).unwrap(),
            answer,
            "{t}: turn {turn} answer"
        );
        assert_eq!(r.generated, gen_ids.len(), "{t}: turn {turn} tokens");
        assert!(r.stopped_at_eog && vocab.is_eog(*gen_ids.last().unwrap()));
        assert_eq!(
            conv.message(conv.len() - 1).unwrap().content,
            answer.as_bytes()
        );
    }
    eprintln!(
        "{t}: tokens decoded per turn {decoded:?} (the whole prompt each time would be {})",
        (0..3)
            .map(|k| ids(lines[3 + 5 * k]).len().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    );
    assert!(decoded[1] < ids(lines[8]).len() && decoded[2] < ids(lines[13]).len());
}

#[test]
fn q4_1_chat_three_turns() {
    chat_turns("Q4_1");
}

#[test]
fn q8_0_chat_three_turns() {
    chat_turns("Q8_0");
}

/// The same three turns through `nanollama chat --temp 0` (the command a
/// user runs): llama.cpp's answers, one line each, and the new tokens only
/// decoded per turn (32, 18, 18; on stderr).
#[test]
fn q4_1_chat_command() {
    use std::process::Command;
    let Some(path) = model_file("Q4_1") else {
        return;
    };
    let text = std::fs::read_to_string(root().join("tests/data/smollm2/chat-Q4_1.txt")).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let json = |s: &str| -> String { serde_json::from_str(s).unwrap() };
    let input: String = (0..3).map(|k| json(lines[1 + 5 * k]) + "\n").collect();
    let (out, err) = common::native::with_stdin(
        Command::new(common::cli_exe())
            .arg("chat")
            .arg(&path)
            .args(["--temp", "0", "-n", "96", "--system"])
            .arg("You are a helpful AI assistant named SmolLM, trained by Hugging Face"),
        &input,
    );
    let got: Vec<&str> = out.lines().collect();
    assert_eq!(got.len(), 3, "{out}");
    for (k, line) in got.iter().enumerate() {
        assert_eq!(*line, json(lines[5 + 5 * k]), "turn {k}");
    }
    for (k, n) in [32, 18, 18].iter().enumerate() {
        assert!(
            err.contains(&format!("[turn {}: prompt {n} tokens", k + 1)),
            "{err}"
        );
    }
    assert!(!err.contains("no end-of-turn token"), "{err}");
}
