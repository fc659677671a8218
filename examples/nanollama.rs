//! The nanollama command-line program.
//!
//! ```text
//! cargo run --release --example nanollama -- info MODEL.gguf
//! cargo run --release --example nanollama -- logits MODEL.gguf --tokens 1,2,3 \
//!     [--threads N] [--kv f32|f16] [--f32-act] --out FILE
//! cargo run --release --example nanollama -- template (NAME | MODEL.gguf) \
//!     --messages FILE.json [--add-assistant]
//! ```
//!
//! Exits 0 on success; otherwise prints one line naming the problem to stderr
//! and exits 1 (2 for a usage error).
use nanollama::gguf::{Gguf, Value};
use nanollama::host::{pool_or_inline, AlignedBuf, FileBytes};
use nanollama::model::slot;
use nanollama::sampler::LogitBias;
use nanollama::tokenizer::{AddTokens, Vocab};
use nanollama::{
    Batch, BatchParams, Context, ContextParams, KvType, Model, Parallel, Sampler, SamplerParams,
    Stage,
};
use std::io::Write;
use std::path::Path;

#[path = "support/json_schema.rs"]
mod json_schema;
use std::process::ExitCode;

const USAGE: &str = "usage: nanollama info MODEL.gguf
       nanollama bench MODEL.gguf [--pp 128] [--tg 64] [--threads N] [--reps R] [--f32-act] [--hugepages]
                 [--parallel N]   (N conversations: --pp-token prompts, then --tg steps of N tokens)
       nanollama logits MODEL.gguf --tokens 1,2,3 [--threads N] [--kv f32|f16] [--f32-act] --out FILE
       nanollama generate [MODEL.gguf] [--prompt TEXT] [-n N] [--threads N] [--ctx N] [--kv f32|f16]
                 [--f32-act] [--ids] [--special] [--grammar FILE.gbnf | --json-schema FILE.json]
                 [SAMPLER OPTIONS]
       nanollama tokenize MODEL.gguf [--no-bos] [--bos] [--special] [--time] [--file PATH | [--] TEXT]
       nanollama detokenize MODEL.gguf ID...
       nanollama template (NAME | MODEL.gguf) --messages FILE.json [--add-assistant]
       nanollama chat [MODEL.gguf] [--system TEXT] [--file TURNS.txt] [--template NAME] [-n N]
                 [--threads N] [--ctx N] [SAMPLER OPTIONS]   (nanollama chat --help)
                 (FILE.json: [{\"role\": ..., \"content\": ...}, ...]; - for stdin)
       nanollama json-schema FILE.json   (the GBNF grammar of a JSON Schema, llama.cpp's conventions)
       nanollama sample --logits FILE --n-vocab N [SAMPLER OPTIONS] [--history 1,2,3]
                 [--logit-bias ID:BIAS,...] [--dump | --bench CALLS]
       nanollama sample --grammar G.gbnf --vocab MODEL.gguf (--text FILE | --tokens IDS) [--bench STEPS]
                 [--cache N]   (times the grammar stage over the whole vocabulary,
                 replaying FILE's tokens; documents separated by lines of ---)
sampler options: --seed S --temp T --top-k K --top-p P --min-p P --typical-p P
       --repeat-penalty R --frequency-penalty F --presence-penalty P --penalty-last-n N
       --xtc-probability P --xtc-threshold T --mirostat 0|2 --mirostat-tau T
       --mirostat-eta E --min-keep N --order STAGES (comma list of logit_bias,
       penalties,top_k,typical,top_p,min_p,xtc,temperature,grammar)";

/// A one-line failure: the message and the exit code.
struct Fail(String, u8);

fn usage(msg: &str) -> Fail {
    Fail(format!("{msg} (nanollama --help for usage)"), 2)
}

fn main() -> ExitCode {
    // Die quietly on a closed pipe (`nanollama info M | head`), as Unix tools
    // do, instead of panicking in println!.
    #[cfg(unix)]
    {
        extern "C" {
            fn signal(sig: i32, handler: usize) -> usize;
        }
        // SAFETY: restores the default action of SIGPIPE (13) before any
        // thread starts; no handler code is involved.
        unsafe { signal(13, 0) };
    }
    // NANOLLAMA_KERNELS=scalar|avx2 caps the kernels (comparisons).
    match std::env::var("NANOLLAMA_KERNELS").as_deref() {
        Ok("scalar") => nanollama::simd::limit(nanollama::simd::Level::Scalar),
        Ok("avx2") => nanollama::simd::limit(nanollama::simd::Level::Avx2),
        _ => {}
    }
    let args: Vec<String> = std::env::args().skip(1).collect();
    let r = match args.first().map(String::as_str) {
        Some("info") => info(&args[1..]),
        Some("logits") => logits(&args[1..]),
        Some("sample") => sample(&args[1..]),
        Some("json-schema") => json_schema_cmd(&args[1..]),
        Some("tokenize") => tokenize(&args[1..]),
        Some("generate") => generate(&args[1..]),
        Some("detokenize") => detokenize(&args[1..]),
        Some("bench") => bench(&args[1..]),
        Some("template") => template(&args[1..]),
        Some("chat") => chat(&args[1..]),
        Some("-h" | "--help" | "help") => {
            println!("{USAGE}");
            Ok(())
        }
        Some(other) => Err(usage(&format!("unknown subcommand '{other}'"))),
        None => Err(usage("missing subcommand")),
    };
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(Fail(msg, code)) => {
            eprintln!("nanollama: {msg}");
            ExitCode::from(code)
        }
    }
}

fn open(path: &str) -> Result<FileBytes, Fail> {
    FileBytes::open(Path::new(path)).map_err(|e| Fail(format!("{path}: {e}"), 1))
}

fn load<'a>(path: &str, bytes: &'a [u8], mem: &'a mut AlignedBuf) -> Result<Model<'a>, Fail> {
    let need = Model::size(bytes).map_err(|e| Fail(format!("{path}: {e}"), 1))?;
    *mem = AlignedBuf::new(need);
    Model::init(bytes, mem.as_mut_slice()).map_err(|e| Fail(format!("{path}: {e}"), 1))
}

fn show_value(v: &Value<'_>) -> String {
    match v {
        Value::String(s) => format!("{:?}", String::from_utf8_lossy(s)),
        Value::Array(a) => format!("[{:?} x {}]", a.elem_type(), a.len()),
        Value::F32(x) => format!("{x}"),
        Value::F64(x) => format!("{x}"),
        Value::Bool(b) => format!("{b}"),
        other => other
            .as_u64()
            .map_or_else(|| format!("{other:?}"), |n| n.to_string()),
    }
}

fn info(args: &[String]) -> Result<(), Fail> {
    let [path] = args else {
        return Err(usage("info takes one MODEL.gguf"));
    };
    let file = open(path)?;
    let bytes = file.bytes();
    let g = Gguf::parse(bytes).map_err(|e| Fail(format!("{path}: {e}"), 1))?;
    println!("file: {path} ({} bytes)", bytes.len());
    println!(
        "gguf: version {}, {} metadata entries, {} tensors, alignment {}, data at {}",
        g.version(),
        g.n_kv(),
        g.n_tensors(),
        g.alignment(),
        g.data_offset()
    );
    println!("metadata:");
    for (k, v) in g.metadata() {
        println!("  {} = {}", String::from_utf8_lossy(k), show_value(&v));
    }
    println!("tensors:");
    for t in g.tensors() {
        let dims: Vec<String> = t.ne[..t.n_dims as usize]
            .iter()
            .map(u64::to_string)
            .collect();
        println!(
            "  {:<28} {:<7} [{}] {} bytes",
            String::from_utf8_lossy(t.name),
            t.ty.name(),
            dims.join(", "),
            t.size
        );
    }
    let mut mem = AlignedBuf::new(0);
    let m = load(path, bytes, &mut mem)?;
    let i = m.info();
    let c = i.config;
    println!(
        "model: {}, {} parameters, {} bytes of weights",
        c.arch.name(),
        i.n_params,
        i.weight_bytes
    );
    println!(
        "  dim {}  layers {}  heads {}  kv_heads {}  head_dim {}  ffn {}",
        c.dim, c.n_layers, c.n_heads, c.n_kv_heads, c.head_dim, c.ffn_dim
    );
    println!(
        "  vocab {}  context {}  rope_dim {}  rope_base {}  rms_eps {:e}",
        c.n_vocab, c.n_ctx_train, c.rope_dim, c.rope_base, c.rms_eps
    );
    let r = c.rope_scaling;
    if r.kind != nanollama::RopeScalingType::None || r.attn_factor != 1.0 || i.rope_freqs {
        println!(
            "  rope scaling {:?}  factor {}  attn_factor {}  original context {}{}",
            r.kind,
            r.factor,
            r.attn_factor,
            r.n_ctx_orig,
            if i.rope_freqs { "  rope_freqs" } else { "" }
        );
    }
    if i.n_biases > 0 {
        println!("  biases: {} block tensors", i.n_biases);
    }
    println!(
        "  token_embd {:?}  output {:?}{}",
        i.embd_type,
        i.output_type,
        if i.tied_output {
            " (tied to token_embd)"
        } else {
            ""
        }
    );
    // What a host allocates for a conversation with the default settings
    // over the whole training context.
    let ctx = Context::size(&m, &ContextParams::default()).map_err(|e| Fail(e.to_string(), 1))?;
    let one = ContextParams {
        n_batch: 1,
        ..ContextParams::default()
    };
    let ctx1 = Context::size(&m, &one).map_err(|e| Fail(e.to_string(), 1))?;
    let smp = Sampler::size(c.n_vocab, &SamplerParams::default(), 0)
        .map_err(|e| Fail(e.to_string(), 1))?;
    println!(
        "memory: model table {} bytes; context (n_ctx {}, F16 KV) {ctx} bytes \
         ({ctx1} with n_batch 1); sampler {smp} bytes",
        Model::size(bytes).unwrap_or(0),
        c.n_ctx_train
    );
    println!("fingerprint: {:016x}", m.fingerprint());
    Ok(())
}

fn kv_type(v: &str) -> Result<KvType, Fail> {
    match v {
        "f32" => Ok(KvType::F32),
        "f16" => Ok(KvType::F16),
        other => Err(usage(&format!("bad --kv '{other}' (f32 or f16)"))),
    }
}

fn logits(args: &[String]) -> Result<(), Fail> {
    let mut path = None;
    let mut tokens: Option<Vec<u32>> = None;
    let mut threads = 1usize;
    let mut kv = KvType::F32;
    let mut out = None;
    let mut f32_act = false;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut val = |name: &str| {
            it.next()
                .cloned()
                .ok_or_else(|| usage(&format!("{name} needs a value")))
        };
        match a.as_str() {
            "--tokens" => {
                let v = val("--tokens")?;
                let t: Result<Vec<u32>, _> =
                    v.split(',').map(|s| s.trim().parse::<u32>()).collect();
                tokens = Some(t.map_err(|_| usage(&format!("bad --tokens '{v}'")))?);
            }
            "--threads" => {
                let v = val("--threads")?;
                threads = v
                    .parse()
                    .ok()
                    .filter(|&n| n >= 1)
                    .ok_or_else(|| usage(&format!("bad --threads '{v}'")))?;
            }
            "--kv" => kv = kv_type(&val("--kv")?)?,
            "--out" => out = Some(val("--out")?),
            "--f32-act" => f32_act = true,
            s if s.starts_with('-') => return Err(usage(&format!("unknown option '{s}'"))),
            s if path.is_none() => path = Some(s.to_string()),
            s => return Err(usage(&format!("unexpected argument '{s}'"))),
        }
    }
    let path = path.ok_or_else(|| usage("logits needs MODEL.gguf"))?;
    let tokens = tokens.ok_or_else(|| usage("logits needs --tokens"))?;
    let out = out.ok_or_else(|| usage("logits needs --out FILE"))?;
    if tokens.is_empty() {
        return Err(usage("--tokens is empty"));
    }
    let file = open(&path)?;
    let mut model_mem = AlignedBuf::new(0);
    let model = load(&path, file.bytes(), &mut model_mem)?;
    let params = ContextParams {
        n_ctx: tokens.len() as u32,
        n_batch: tokens.len() as u32,
        kv_type: kv,
        logits_all: true,
        f32_activations: f32_act,
    };
    let fail = |e: nanollama::Error| Fail(e.to_string(), 1);
    let need = Context::size(&model, &params).map_err(fail)?;
    let mut mem = AlignedBuf::new(need);
    let mut ctx = Context::init(&model, &params, mem.as_mut_slice()).map_err(fail)?;
    let par = pool_or_inline(threads);
    ctx.decode(&tokens, par.as_ref()).map_err(fail)?;
    let mut bytes = Vec::with_capacity(ctx.logits().len() * 4);
    for v in ctx.logits() {
        bytes.extend_from_slice(&v.to_le_bytes());
    }
    std::fs::File::create(&out)
        .and_then(|mut f| f.write_all(&bytes))
        .map_err(|e| Fail(format!("{out}: {e}"), 1))?;
    Ok(())
}

fn parse<T: std::str::FromStr>(name: &str, v: &str) -> Result<T, Fail> {
    v.parse().map_err(|_| usage(&format!("bad {name} '{v}'")))
}

fn parse_list(name: &str, v: &str) -> Result<Vec<u32>, Fail> {
    if v.is_empty() {
        return Ok(Vec::new());
    }
    v.split(',').map(|t| parse(name, t.trim())).collect()
}

/// Applies one sampler option; `Ok(false)` when `flag` is not one.
fn sampler_option(p: &mut SamplerParams, flag: &str, v: &str) -> Result<bool, Fail> {
    match flag {
        "--seed" => p.seed = parse(flag, v)?,
        "--temp" => p.temp = parse(flag, v)?,
        "--top-k" => p.top_k = parse(flag, v)?,
        "--top-p" => p.top_p = parse(flag, v)?,
        "--min-p" => p.min_p = parse(flag, v)?,
        "--typical-p" => p.typical_p = parse(flag, v)?,
        "--repeat-penalty" => p.penalty_repeat = parse(flag, v)?,
        "--frequency-penalty" => p.penalty_freq = parse(flag, v)?,
        "--presence-penalty" => p.penalty_present = parse(flag, v)?,
        "--penalty-last-n" => p.penalty_last_n = parse(flag, v)?,
        "--xtc-probability" => p.xtc_probability = parse(flag, v)?,
        "--xtc-threshold" => p.xtc_threshold = parse(flag, v)?,
        "--mirostat" => p.mirostat = parse(flag, v)?,
        "--mirostat-tau" => p.mirostat_tau = parse(flag, v)?,
        "--mirostat-eta" => p.mirostat_eta = parse(flag, v)?,
        "--min-keep" => p.min_keep = parse(flag, v)?,
        "--order" => {
            let names = [
                "logit_bias",
                "penalties",
                "top_k",
                "typical",
                "top_p",
                "min_p",
                "xtc",
                "temperature",
                "grammar",
            ];
            let mut n = 0;
            for name in v.split(',').filter(|s| !s.is_empty()) {
                let i = names
                    .iter()
                    .position(|x| *x == name)
                    .ok_or_else(|| usage(&format!("unknown stage '{name}'")))?;
                if n == p.order.len() {
                    return Err(usage("too many stages"));
                }
                p.order[n] = Stage::from_u8(i as u8).unwrap_or(Stage::Temperature);
                n += 1;
            }
            p.n_stages = n as u32;
        }
        _ => return Ok(false),
    }
    Ok(true)
}

fn sample(args: &[String]) -> Result<(), Fail> {
    if args.iter().any(|a| a == "--grammar") {
        return sample_grammar(args);
    }
    let mut p = SamplerParams::default();
    let (mut logits_path, mut n_vocab, mut history, mut dump) = (None, None, Vec::new(), false);
    let mut bias: Vec<LogitBias> = Vec::new();
    let mut bench = 0usize;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        if a == "--dump" {
            dump = true;
            continue;
        }
        let v = it
            .next()
            .ok_or_else(|| usage(&format!("{a} needs a value")))?;
        match a.as_str() {
            "--logits" => logits_path = Some(v.clone()),
            "--n-vocab" => n_vocab = Some(parse::<usize>(a, v)?),
            "--history" => history = parse_list(a, v)?,
            "--bench" => bench = parse(a, v)?,
            "--logit-bias" => {
                for item in v.split(',').filter(|s| !s.is_empty()) {
                    let (t, b) = item
                        .split_once(':')
                        .ok_or_else(|| usage(&format!("bad --logit-bias '{item}'")))?;
                    bias.push(LogitBias {
                        token: parse(a, t)?,
                        bias: parse(a, b)?,
                    });
                }
            }
            _ if sampler_option(&mut p, a, v)? => {}
            _ => return Err(usage(&format!("unknown option '{a}'"))),
        }
    }
    let path = logits_path.ok_or_else(|| usage("sample needs --logits FILE"))?;
    let n_vocab = n_vocab.ok_or_else(|| usage("sample needs --n-vocab N"))?;
    let bytes = std::fs::read(&path).map_err(|e| Fail(format!("{path}: {e}"), 1))?;
    if bytes.len() < n_vocab * 4 {
        return Err(Fail(
            format!(
                "{path}: {} bytes, fewer than one row of {n_vocab} floats",
                bytes.len()
            ),
            1,
        ));
    }
    let logits: Vec<f32> = bytes[..n_vocab * 4]
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    let fail = |e: nanollama::Error| Fail(e.to_string(), 1);
    let mut mem = AlignedBuf::new(Sampler::size(n_vocab, &p, bias.len()).map_err(fail)?);
    let mut s = Sampler::init(n_vocab, &p, &bias, mem.as_mut_slice()).map_err(fail)?;
    for &t in &history {
        s.accept(t).map_err(fail)?;
    }
    if bench > 0 {
        // Median wall time of one `sample` call (the whole chain and the draw).
        let mut times = Vec::with_capacity(bench);
        for _ in 0..bench {
            let t = std::time::Instant::now();
            std::hint::black_box(s.sample(&logits).map_err(fail)?);
            times.push(t.elapsed().as_secs_f64() * 1e6);
        }
        times.sort_by(f64::total_cmp);
        println!(
            "sample: n_vocab {n_vocab}, {bench} calls, median {:.1} us, min {:.1} us",
            times[bench / 2],
            times[0]
        );
        return Ok(());
    }
    if dump {
        let mut out = String::new();
        for c in s.candidates(&logits).map_err(fail)? {
            out.push_str(&format!("{} {:.9}\n", c.id, c.p));
        }
        print!("{out}");
    } else {
        println!("{}", s.sample(&logits).map_err(fail)?);
    }
    Ok(())
}

fn load_vocab<'a>(path: &str, bytes: &'a [u8], mem: &'a mut AlignedBuf) -> Result<Vocab<'a>, Fail> {
    let need = Vocab::size(bytes).map_err(|e| Fail(format!("{path}: {e}"), 1))?;
    *mem = AlignedBuf::new(need);
    Vocab::init(bytes, mem.as_mut_slice()).map_err(|e| Fail(format!("{path}: {e}"), 1))
}

/// The tokens of `text`, however many (asked again at the size the
/// tokenizer says when the first guess is short).
fn tokens_of(
    v: &Vocab<'_>,
    text: &[u8],
    add: AddTokens,
    special: bool,
) -> Result<Vec<u32>, nanollama::Error> {
    let mut scratch = AlignedBuf::new(Vocab::scratch_size(text.len()).unwrap_or(0));
    let sc = scratch.as_mut_slice();
    let mut toks = vec![0u32; text.len() + 2];
    let mut needed = 0;
    let n = match v.tokenize_with(text, add, special, sc, &mut toks, &mut needed) {
        Err(nanollama::Error::BufferTooSmall) => {
            toks.resize(needed, 0);
            v.tokenize_with(text, add, special, sc, &mut toks, &mut needed)
        }
        r => r,
    }?;
    toks.truncate(n);
    Ok(toks)
}

/// `sample --grammar G.gbnf --vocab V.gguf --text T [--bench STEPS]
/// [--check-first] [--cache N]`: replays the tokens of T's documents
/// (separated by lines holding `---`, each from the grammar's start) and
/// times the grammar stage over every token of the vocabulary at each step
/// (the candidates are refilled outside the clock). Without --bench, checks
/// that every token is allowed and prints the allowed count per step.
fn sample_grammar(args: &[String]) -> Result<(), Fail> {
    use nanollama::grammar::{Grammar, GrammarParams, GrammarStage, TokenTrie};
    use nanollama::sampler::Candidate;
    let (mut gpath, mut vpath, mut tpath, mut bench) = (None, None, None, 0usize);
    let mut tokens: Option<Vec<u32>> = None;
    let mut gp = GrammarParams::default();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        if a == "--check-first" {
            gp.check_first = true;
            continue;
        }
        let v = it
            .next()
            .ok_or_else(|| usage(&format!("{a} needs a value")))?;
        match a.as_str() {
            "--grammar" => gpath = Some(v.clone()),
            "--vocab" => vpath = Some(v.clone()),
            "--text" => tpath = Some(v.clone()),
            "--tokens" => tokens = Some(parse_list(a, v)?),
            "--bench" => bench = parse(a, v)?,
            "--cache" => gp.cache_entries = parse(a, v)?,
            _ => return Err(usage(&format!("unknown option '{a}'"))),
        }
    }
    let gpath = gpath.ok_or_else(|| usage("sample --grammar needs FILE"))?;
    let vpath = vpath.ok_or_else(|| usage("sample --grammar needs --vocab MODEL.gguf"))?;
    let read = |p: &str| std::fs::read(p).map_err(|e| Fail(format!("{p}: {e}"), 1));
    let gtext = read(&gpath)?;
    let text = match (&tpath, &tokens) {
        (Some(p), None) => read(p)?,
        (None, Some(_)) => Vec::new(),
        _ => return Err(usage("sample --grammar needs --text FILE or --tokens IDS")),
    };
    let fail = |e: nanollama::Error| Fail(e.to_string(), 1);
    let file = open(&vpath)?;
    let mut vmem = AlignedBuf::new(0);
    let v = load_vocab(&vpath, file.bytes(), &mut vmem)?;
    let t0 = std::time::Instant::now();
    let mut tmem = AlignedBuf::new(TokenTrie::size(&v).map_err(fail)?);
    let trie = TokenTrie::init(&v, tmem.as_mut_slice()).map_err(fail)?;
    let trie_ms = t0.elapsed().as_secs_f64() * 1e3;
    let size = Grammar::size(&gtext).map_err(|e| Fail(format!("{gpath}: {e:?}"), 1))?;
    let mut gmem = AlignedBuf::new(size);
    let g = Grammar::init(&gtext, gmem.as_mut_slice())
        .map_err(|e| Fail(format!("{gpath}: {:?} at byte {}", e.error, e.offset), 1))?;
    let mut smem = AlignedBuf::new(GrammarStage::size(&trie, &gp).map_err(fail)?);
    let mut st = GrammarStage::init(&g, &trie, &gp, smem.as_mut_slice()).map_err(fail)?;
    let n = v.n_vocab();
    let mut cand = vec![Candidate::default(); n];
    let (mut times, mut allowed, mut ids_hash) = (Vec::new(), Vec::new(), 0xcbf2_9ce4_8422_2325u64);
    let text = String::from_utf8_lossy(&text).into_owned();
    let mut docs = Vec::new();
    if let Some(t) = tokens {
        docs.push(t);
    } else {
        for doc in text.split("\n---\n") {
            let doc = doc.strip_suffix('\n').unwrap_or(doc);
            docs.push(tokens_of(&v, doc.as_bytes(), AddTokens::NONE, false).map_err(fail)?);
        }
    }
    let mut hashes = Vec::new();
    'docs: for ids in &docs {
        st.reset().map_err(fail)?;
        for &id in ids {
            if bench > 0 && times.len() == bench {
                break 'docs;
            }
            for (i, c) in cand.iter_mut().enumerate() {
                *c = Candidate {
                    id: i as u32,
                    logit: 0.0,
                    p: 0.0,
                };
            }
            let t = std::time::Instant::now();
            st.apply(&mut cand).map_err(fail)?;
            times.push(t.elapsed().as_secs_f64() * 1e6);
            allowed.push(cand.iter().filter(|c| c.logit == 0.0).count());
            // FNV-1a over the allowed ids in order (as tools/grammar_parity.py).
            hashes.push(
                cand.iter()
                    .filter(|c| c.logit == 0.0)
                    .fold(0xcbf2_9ce4_8422_2325u64, |h, c| {
                        (h ^ u64::from(c.id)).wrapping_mul(0x100_0000_01b3)
                    }),
            );
            if cand[id as usize].logit != 0.0 {
                return Err(Fail(
                    format!("step {}: the grammar refuses token {id}", times.len()),
                    1,
                ));
            }
            st.accept(id).map_err(fail)?;
            if v.is_eog(id) {
                break;
            }
            ids_hash = (ids_hash ^ u64::from(id)).wrapping_mul(0x100_0000_01b3);
        }
    }
    if bench == 0 {
        for (i, (a, h)) in allowed.iter().zip(&hashes).enumerate() {
            println!("step {i}: {a} allowed {h:016x}");
        }
        println!(
            "end: {}",
            if st.can_end() {
                "may end"
            } else {
                "may not end"
            }
        );
        return Ok(());
    }
    let steps = times.len();
    let mut sorted = times.clone();
    sorted.sort_by(f64::total_cmp);
    let (hits, misses) = st.cache_stats();
    println!(
        "grammar stage: {steps} steps over {n} candidates (token ids fnv {ids_hash:016x}): median {:.1} us, mean {:.1} us, p90 {:.1} us, max {:.1} us; first step {:.1} us; kept sets {hits} hits, {misses} walks; trie {} nodes built in {trie_ms:.0} ms",
        sorted[steps / 2],
        times.iter().sum::<f64>() / steps as f64,
        sorted[steps * 9 / 10],
        sorted[steps - 1],
        times[0],
        trie.n_nodes(),
    );
    Ok(())
}

/// Token ids of TEXT, separated by spaces, on one line: BOS and EOS where
/// the file asks for them (`--no-bos`: neither; `--bos`: BOS whatever the
/// file says), special-token text read as those tokens with `--special`.
fn tokenize(args: &[String]) -> Result<(), Fail> {
    let (mut path, mut text) = (None, None);
    let (mut bos, mut special, mut options) = (None, false, true);
    let (mut file_arg, mut time) = (false, false);
    for a in args {
        if file_arg {
            let bytes = std::fs::read(a).map_err(|e| Fail(format!("{a}: {e}"), 1))?;
            text = Some(bytes);
            file_arg = false;
            continue;
        }
        match a.as_str() {
            "--file" if options => file_arg = true,
            "--time" if options => time = true,
            "--no-bos" if options => bos = Some(false),
            "--bos" if options => bos = Some(true),
            "--special" if options => special = true,
            "--" if options => options = false,
            s if options && s.starts_with('-') && path.is_some() => {
                return Err(usage(&format!(
                    "unknown option '{s}' (use -- before a text that starts with '-')"
                )))
            }
            s if path.is_none() => path = Some(s.to_string()),
            s if text.is_none() => text = Some(s.as_bytes().to_vec()),
            s => return Err(usage(&format!("unexpected argument '{s}'"))),
        }
    }
    let path = path.ok_or_else(|| usage("tokenize needs MODEL.gguf"))?;
    let text = text.ok_or_else(|| usage("tokenize needs TEXT (or --file PATH)"))?;
    let file = open(&path)?;
    let mut mem = AlignedBuf::new(0);
    let v = load_vocab(&path, file.bytes(), &mut mem)?;
    let t = &text[..];
    let scratch_len =
        Vocab::scratch_size(t.len()).ok_or_else(|| Fail("text too long".into(), 1))?;
    let mut scratch = AlignedBuf::new(scratch_len);
    // One token per byte plus BOS and EOS is the usual most; a byte that is
    // no UTF-8 becomes U+FFFD, up to three tokens: then ask again with the
    // size the tokenizer says it needs.
    let mut out = vec![0u32; t.len() + 5];
    let mut needed = 0;
    let add = match bos {
        None => v.add_special(),
        Some(false) => AddTokens::NONE,
        Some(true) => AddTokens {
            bos: true,
            eos: v.add_eos(),
        },
    };
    let start = std::time::Instant::now();
    let mut run = |out: &mut [u32], needed: &mut usize| {
        v.tokenize_with(t, add, special, scratch.as_mut_slice(), out, needed)
    };
    let n = match run(&mut out, &mut needed) {
        Err(nanollama::Error::BufferTooSmall) if needed > out.len() => {
            out.resize(needed, 0);
            run(&mut out, &mut needed)
        }
        r => r,
    }
    .map_err(|e| Fail(e.to_string(), 1))?;
    if time {
        // Only the timing, for benchmarks: the ids of a large file are noise.
        let secs = start.elapsed().as_secs_f64();
        println!(
            "{} bytes -> {n} tokens in {:.1} ms ({:.2} MB/s)",
            t.len(),
            secs * 1e3,
            t.len() as f64 / secs / 1e6
        );
        return Ok(());
    }
    let ids: Vec<String> = out[..n].iter().map(u32::to_string).collect();
    println!("{}", ids.join(" "));
    Ok(())
}

/// The text of the given token ids, written as raw bytes.
fn detokenize(args: &[String]) -> Result<(), Fail> {
    let [path, ids @ ..] = args else {
        return Err(usage("detokenize needs MODEL.gguf"));
    };
    let file = open(path)?;
    let mut mem = AlignedBuf::new(0);
    let v = load_vocab(path, file.bytes(), &mut mem)?;
    let mut out = Vec::new();
    let mut buf = vec![0u8; 256];
    for id in ids {
        let id: u32 = parse("token id", id)?;
        if id as usize >= v.n_vocab() {
            return Err(Fail(format!("token id {id} outside the vocabulary"), 1));
        }
        let mut k = 0;
        if v.piece(id, false, &mut buf, &mut k).is_err() {
            buf.resize(k, 0);
            v.piece(id, false, &mut buf, &mut k)
                .map_err(|e| Fail(format!("token {id}: {e:?}"), 1))?;
        }
        out.extend_from_slice(&buf[..k]);
    }
    std::io::stdout()
        .write_all(&out)
        .map_err(|e| Fail(e.to_string(), 1))?;
    Ok(())
}

/// The model that ships in the repository, used when none is named.
const SHIPPED_MODEL: &str = "models/kjv-llama.gguf";

/// The shipped model, from the repository root or wherever the binary was
/// built from.
fn shipped_model_path() -> String {
    let here = Path::new(SHIPPED_MODEL);
    let built = Path::new(env!("CARGO_MANIFEST_DIR")).join(SHIPPED_MODEL);
    if here.exists() || !built.exists() {
        here.to_path_buf()
    } else {
        built
    }
    .to_string_lossy()
    .into_owned()
}

/// Generates text from a prompt, streaming it as tokens arrive; prints the
/// prompt and generation speeds on stderr at the end.
/// `json-schema FILE.json`: the GBNF grammar of a JSON Schema, on stdout.
fn json_schema_cmd(args: &[String]) -> Result<(), Fail> {
    let [path] = args else {
        return Err(usage("json-schema needs FILE.json"));
    };
    let text = std::fs::read_to_string(path).map_err(|e| Fail(format!("{path}: {e}"), 1))?;
    let g = json_schema::to_gbnf(&text).map_err(|e| Fail(format!("{path}: {e}"), 1))?;
    print!("{g}");
    Ok(())
}

/// The grammar stage for `generate --grammar FILE`: the grammar, the
/// vocabulary's trie and the stage in memory kept for the process.
fn grammar_stage(
    gpath: &str,
    schema: bool,
    vocab: &Vocab<'_>,
) -> Result<nanollama::grammar::GrammarStage<'static>, Fail> {
    use nanollama::grammar::{Grammar, GrammarParams, GrammarStage, TokenTrie};
    let fail = |e: nanollama::Error| Fail(format!("{gpath}: {e}"), 1);
    let mut text = std::fs::read(gpath).map_err(|e| Fail(format!("{gpath}: {e}"), 1))?;
    if schema {
        let s = String::from_utf8_lossy(&text).into_owned();
        text = json_schema::to_gbnf(&s)
            .map_err(|e| Fail(format!("{gpath}: {e}"), 1))?
            .into_bytes();
    }
    let at = |e: nanollama::grammar::GrammarError| {
        Fail(format!("{gpath}: {} at byte {}", e.error, e.offset), 1)
    };
    let gmem = AlignedBuf::new(Grammar::size(&text).map_err(at)?).leak();
    let g: &'static Grammar<'static> = Box::leak(Box::new(Grammar::init(&text, gmem).map_err(at)?));
    let tmem = AlignedBuf::new(TokenTrie::size(vocab).map_err(fail)?).leak();
    let t: &'static TokenTrie<'static> =
        Box::leak(Box::new(TokenTrie::init(vocab, tmem).map_err(fail)?));
    let gp = GrammarParams::default();
    let smem = AlignedBuf::new(GrammarStage::size(t, &gp).map_err(fail)?).leak();
    GrammarStage::init(g, t, &gp, smem).map_err(fail)
}

fn generate(args: &[String]) -> Result<(), Fail> {
    let mut p = SamplerParams::default();
    let (mut path, mut prompt, mut n_gen, mut threads, mut n_ctx) =
        (None, String::new(), 128usize, 1usize, 0u32);
    let (mut print_ids, mut special) = (false, false);
    let (mut f32_act, mut kv) = (false, KvType::F16);
    let mut grammar: Option<(String, bool)> = None;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        if a == "--ids" {
            print_ids = true;
            continue;
        }
        if a == "--special" {
            special = true;
            continue;
        }
        if a == "--f32-act" {
            f32_act = true;
            continue;
        }
        if !a.starts_with('-') {
            if path.is_some() {
                return Err(usage(&format!("unexpected argument '{a}'")));
            }
            path = Some(a.clone());
            continue;
        }
        let v = it
            .next()
            .ok_or_else(|| usage(&format!("{a} needs a value")))?;
        match a.as_str() {
            "--prompt" | "-p" => prompt = v.clone(),
            "-n" | "--n-predict" => n_gen = parse(a, v)?,
            "--threads" | "-t" => {
                threads = parse(a, v)?;
                if threads == 0 {
                    return Err(usage("bad --threads '0'"));
                }
            }
            "--ctx" => n_ctx = parse(a, v)?,
            "--kv" => kv = kv_type(v)?,
            "--grammar" => grammar = Some((v.clone(), false)),
            "--json-schema" => grammar = Some((v.clone(), true)),
            _ if sampler_option(&mut p, a, v)? => {}
            _ => return Err(usage(&format!("unknown option '{a}'"))),
        }
    }
    let path = path.unwrap_or_else(shipped_model_path);
    let file = open(&path)?;
    let bytes = file.bytes();
    let mut model_mem = AlignedBuf::new(0);
    let model = load(&path, bytes, &mut model_mem)?;
    let mut vocab_mem = AlignedBuf::new(0);
    let vocab = load_vocab(&path, bytes, &mut vocab_mem)?;
    let fail = |e: nanollama::Error| Fail(e.to_string(), 1);

    let text = prompt.as_bytes();
    // BOS and EOS where the file asks for them, as llama.cpp does.
    let mut toks = tokens_of(&vocab, text, vocab.add_special(), special).map_err(fail)?;
    let mut needed = 0;
    if toks.is_empty() {
        if vocab.bos() == nanollama::tokenizer::NONE {
            return Err(Fail(
                "an empty prompt, and no BOS token to start from".into(),
                1,
            ));
        }
        toks.push(vocab.bos());
    }
    let train_ctx = model.config().n_ctx_train as u32;
    let n_ctx = if n_ctx == 0 { train_ctx } else { n_ctx };
    if toks.len() >= n_ctx as usize {
        return Err(Fail(
            format!(
                "the prompt ({} tokens) does not fit the context ({n_ctx})",
                toks.len()
            ),
            1,
        ));
    }
    let params = ContextParams {
        n_ctx,
        n_batch: toks.len() as u32,
        kv_type: kv,
        logits_all: false,
        f32_activations: f32_act,
    };
    let mut ctx_mem = AlignedBuf::new(Context::size(&model, &params).map_err(fail)?);
    let mut ctx = Context::init(&model, &params, ctx_mem.as_mut_slice()).map_err(fail)?;
    let n_vocab = model.config().n_vocab;
    let mut s_mem = AlignedBuf::new(Sampler::size(n_vocab, &p, 0).map_err(fail)?);
    let mut sampler = Sampler::init(n_vocab, &p, &[], s_mem.as_mut_slice()).map_err(fail)?;
    let par = pool_or_inline(threads);

    let mut out = std::io::stdout().lock();
    let mut dec = nanollama::tokenizer::StreamDecoder::new();
    let mut buf = [0u8; 300];
    // Echo the prompt as the model reads it.
    for &t in toks.iter().filter(|_| !print_ids) {
        let k = dec
            .push(&vocab, t, special, &mut buf, &mut needed)
            .map_err(fail)?;
        out.write_all(&buf[..k])
            .map_err(|e| Fail(e.to_string(), 1))?;
    }
    let t0 = std::time::Instant::now();
    ctx.decode(&toks, par.as_ref()).map_err(fail)?;
    let prompt_secs = t0.elapsed().as_secs_f64();
    for &t in &toks {
        sampler.accept(t).map_err(fail)?;
    }
    // The grammar constrains what is generated, not the prompt: attached
    // after the prompt's tokens are in the penalty history.
    if let Some((gpath, schema)) = &grammar {
        sampler
            .set_grammar(Some(grammar_stage(gpath, *schema, &vocab)?))
            .map_err(fail)?;
    }
    let t1 = std::time::Instant::now();
    let mut generated = 0usize;
    while generated < n_gen && ctx.pos() < ctx.n_ctx() {
        let t = sampler.sample(ctx.last_logits()).map_err(fail)?;
        sampler.accept(t).map_err(fail)?;
        generated += 1;
        // EOS, end of turn, <|im_end|>, ...: llama.cpp's end-of-generation set.
        if vocab.is_eog(t) {
            break;
        }
        if print_ids {
            write!(out, "{t} ").map_err(|e| Fail(e.to_string(), 1))?;
        } else {
            // A new verse starts with BOS in the training text: show it as a
            // line break.
            let k = if t == vocab.bos() {
                buf[0] = b'\n';
                1
            } else {
                dec.push(&vocab, t, false, &mut buf, &mut needed)
                    .map_err(fail)?
            };
            out.write_all(&buf[..k])
                .and_then(|_| out.flush())
                .map_err(|e| Fail(e.to_string(), 1))?;
        }
        if ctx.pos() == ctx.n_ctx() {
            break;
        }
        ctx.decode(&[t], par.as_ref()).map_err(fail)?;
    }
    let k = dec.flush(&mut buf, &mut needed).map_err(fail)?;
    out.write_all(&buf[..k])
        .map_err(|e| Fail(e.to_string(), 1))?;
    let gen_secs = t1.elapsed().as_secs_f64();
    drop(out);
    println!();
    std::io::stdout()
        .flush()
        .map_err(|e| Fail(e.to_string(), 1))?;
    eprintln!(
        "prompt: {} tokens, {:.1} tok/s; generation: {generated} tokens, {:.1} tok/s",
        toks.len(),
        toks.len() as f64 / prompt_secs,
        generated as f64 / gen_secs
    );
    Ok(())
}

/// `bench`: speed as llama.cpp's llama-bench measures it. pp: a prompt of
/// `pp` tokens in one batch into an empty context; tg: `tg` tokens decoded
/// one at a time into an empty context. Token ids are seeded and spread over
/// the vocabulary. Each is run `reps` times after one warm-up; the median
/// is printed.
fn bench(args: &[String]) -> Result<(), Fail> {
    let (mut path, mut pp, mut tg, mut threads, mut reps) =
        (None, 128usize, 64usize, 1usize, 5usize);
    let mut f32_act = false;
    let mut huge = false;
    let mut parallel = 0usize;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        if a == "--f32-act" {
            f32_act = true;
            continue;
        }
        if a == "--hugepages" {
            huge = true;
            continue;
        }
        if !a.starts_with('-') {
            if path.is_some() {
                return Err(usage(&format!("unexpected argument '{a}'")));
            }
            path = Some(a.clone());
            continue;
        }
        let v = it
            .next()
            .ok_or_else(|| usage(&format!("{a} needs a value")))?;
        match a.as_str() {
            "--pp" => pp = parse(a, v)?,
            "--tg" => tg = parse(a, v)?,
            "--threads" | "-t" => threads = parse(a, v)?,
            "--reps" | "-r" => reps = parse(a, v)?,
            "--parallel" => parallel = parse(a, v)?,
            _ => return Err(usage(&format!("unknown option '{a}'"))),
        }
    }
    if parallel > 0 && (tg == 0 || parallel > 4096) {
        return Err(usage(
            "--parallel needs --tg above 0 and at most 4096 conversations",
        ));
    }
    if threads == 0 || reps == 0 || (pp == 0 && tg == 0) {
        return Err(usage(
            "--threads, --reps and one of --pp/--tg must be positive",
        ));
    }
    let path = path.ok_or_else(|| usage("bench needs MODEL.gguf"))?;
    let file = if huge {
        FileBytes::open_huge(Path::new(&path)).map_err(|e| Fail(format!("{path}: {e}"), 1))?
    } else {
        open(&path)?
    };
    let mut model_mem = AlignedBuf::new(0);
    let model = load(&path, file.bytes(), &mut model_mem)?;
    let fail = |e: nanollama::Error| Fail(e.to_string(), 1);
    let n_vocab = model.config().n_vocab as u64;
    let params = ContextParams {
        n_ctx: pp.max(tg).max(1) as u32,
        n_batch: pp.max(1) as u32,
        kv_type: KvType::F16,
        logits_all: false,
        f32_activations: f32_act,
    };
    let mut mem = AlignedBuf::new(Context::size(&model, &params).map_err(fail)?);
    let mut ctx = Context::init(&model, &params, mem.as_mut_slice()).map_err(fail)?;
    // The weight types of the matrix products that run the scalar
    // reference kernels at this level (a benchmark row should say so).
    let mut slow: Vec<&str> = Vec::new();
    let mut mats = vec![model.output()];
    for l in 0..model.config().n_layers {
        for k in [
            slot::ATTN_Q,
            slot::ATTN_K,
            slot::ATTN_V,
            slot::ATTN_OUTPUT,
            slot::FFN_GATE,
            slot::FFN_UP,
            slot::FFN_DOWN,
        ] {
            mats.push(model.layer_matrix(l, k));
        }
    }
    for m in mats {
        let name = m.ty.ggml().name();
        if !f32_act && !nanollama::simd::has_fast_kernel(m.ty) && !slow.contains(&name) {
            slow.push(name);
        }
    }
    if f32_act {
        println!("scalar kernels: all (--f32-act)");
    } else if slow.is_empty() {
        println!("scalar kernels: none");
    } else {
        println!("scalar kernels: {}", slow.join(","));
    }
    let par = pool_or_inline(threads);
    let mut rng = nanollama::sampler::Rng(42);
    let tokens: Vec<u32> = (0..pp.max(tg))
        .map(|_| (rng.next_u64() % n_vocab) as u32)
        .collect();
    let median = |mut v: Vec<f64>| {
        v.sort_by(|a, b| a.partial_cmp(b).unwrap());
        v[v.len() / 2]
    };
    if parallel > 0 {
        let rates = bench_parallel(&model, &params, parallel, pp, tg, reps, par.as_ref())?;
        println!("tg{tg} parallel {parallel}: {:.2} tok/s", median(rates));
        return Ok(());
    }
    if pp > 0 {
        let mut rates = Vec::new();
        for r in 0..=reps {
            ctx.reset();
            let t = std::time::Instant::now();
            ctx.decode(&tokens[..pp], par.as_ref()).map_err(fail)?;
            if r > 0 {
                rates.push(pp as f64 / t.elapsed().as_secs_f64());
            }
        }
        println!("pp{pp}: {:.2} tok/s", median(rates));
    }
    if tg > 0 {
        let mut rates = Vec::new();
        for r in 0..=reps {
            ctx.reset();
            let t = std::time::Instant::now();
            for tok in &tokens[..tg] {
                ctx.decode(&[*tok], par.as_ref()).map_err(fail)?;
            }
            if r > 0 {
                rates.push(tg as f64 / t.elapsed().as_secs_f64());
            }
        }
        println!("tg{tg}: {:.2} tok/s", median(rates));
    }
    Ok(())
}

/// `bench --parallel N`: `n` conversations, each with its own `pp`-token
/// prompt (seeded, decoded alone and not timed), then `tg` steps that
/// append one token to every conversation with one `decode_many` call.
/// Returns the aggregate rate of each of `reps` runs (after a warm-up),
/// `n × tg` tokens over the seconds of the steps.
fn bench_parallel(
    model: &Model<'_>,
    params: &ContextParams,
    n: usize,
    pp: usize,
    tg: usize,
    reps: usize,
    par: &dyn Parallel,
) -> Result<Vec<f64>, Fail> {
    let fail = |e: nanollama::Error| Fail(e.to_string(), 1);
    let n_vocab = model.config().n_vocab as u64;
    let params = ContextParams {
        n_ctx: (pp + tg) as u32,
        ..*params
    };
    let size = Context::size(model, &params).map_err(fail)?;
    let mut mems: Vec<AlignedBuf> = (0..n).map(|_| AlignedBuf::new(size)).collect();
    let mut ctxs = mems
        .iter_mut()
        .map(|m| Context::init(model, &params, m.as_mut_slice()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(fail)?;
    let bp = BatchParams {
        max_tokens: n as u32,
    };
    let mut bmem = AlignedBuf::new(Batch::size(model, &bp).map_err(fail)?);
    let mut batch = Batch::init(model, &bp, bmem.as_mut_slice()).map_err(fail)?;
    let mut rng = nanollama::sampler::Rng(7);
    let mut tok = || (rng.next_u64() % n_vocab) as u32;
    let prompts: Vec<Vec<u32>> = (0..n).map(|_| (0..pp).map(|_| tok()).collect()).collect();
    let steps: Vec<Vec<u32>> = (0..tg).map(|_| (0..n).map(|_| tok()).collect()).collect();
    let mut rates = Vec::new();
    for r in 0..=reps {
        for (c, p) in ctxs.iter_mut().zip(&prompts) {
            c.reset();
            if !p.is_empty() {
                c.decode(p, par).map_err(fail)?;
            }
        }
        let mut all: Vec<&mut Context<'_>> = ctxs.iter_mut().collect();
        let t = std::time::Instant::now();
        for s in &steps {
            batch.decode_many(&mut all, s, None, par).map_err(fail)?;
        }
        if r > 0 {
            rates.push((n * tg) as f64 / t.elapsed().as_secs_f64());
        }
    }
    Ok(rates)
}

/// `template`: the conversation in a JSON file rendered with a built-in
/// chat template or the model's own (`tokenizer.chat_template`), written
/// to stdout byte for byte.
fn template(args: &[String]) -> Result<(), Fail> {
    use nanollama::chat::{apply_template, Message, Template};
    let mut which = None;
    let mut messages = None;
    let mut add_assistant = false;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--messages" => {
                let v = it.next().ok_or_else(|| usage("--messages needs a value"))?;
                messages = Some(v.clone());
            }
            "--add-assistant" => add_assistant = true,
            s if s.starts_with('-') && s != "-" => {
                return Err(usage(&format!("unknown option '{s}'")))
            }
            s if which.is_none() => which = Some(s.to_string()),
            s => return Err(usage(&format!("unexpected argument '{s}'"))),
        }
    }
    let which = which.ok_or_else(|| usage("template needs a NAME or MODEL.gguf"))?;
    let messages = messages.ok_or_else(|| usage("template needs --messages FILE.json"))?;
    let json = if messages == "-" {
        let mut v = Vec::new();
        std::io::Read::read_to_end(&mut std::io::stdin(), &mut v)
            .map_err(|e| Fail(format!("stdin: {e}"), 1))?;
        v
    } else {
        std::fs::read(&messages).map_err(|e| Fail(format!("{messages}: {e}"), 1))?
    };
    let bad = |what: &str| Fail(format!("{messages}: {what}"), 1);
    let v: serde_json::Value =
        serde_json::from_slice(&json).map_err(|e| bad(&format!("not JSON: {e}")))?;
    let list = v
        .as_array()
        .ok_or_else(|| bad("not a JSON array of messages"))?;
    let mut owned = Vec::with_capacity(list.len());
    for (i, m) in list.iter().enumerate() {
        let field = |k: &str| {
            m.get(k)
                .and_then(serde_json::Value::as_str)
                .ok_or_else(|| bad(&format!("message {i} has no string \"{k}\"")))
        };
        owned.push((field("role")?, field("content")?));
    }
    let msgs: Vec<Message<'_>> = owned
        .iter()
        .map(|(r, c)| Message {
            role: r.as_bytes(),
            content: c.as_bytes(),
        })
        .collect();
    // A built-in name is a name; anything else is a GGUF file whose own
    // template is used.
    let file;
    let tmpl: &[u8] = if Template::from_name(which.as_bytes()).is_some() {
        which.as_bytes()
    } else {
        file = open(&which)?;
        nanollama::chat::gguf_chat_template(file.bytes())
            .map_err(|e| Fail(format!("{which}: tokenizer.chat_template: {e}"), 1))?
    };
    let mut needed = 0;
    let mut out = Vec::new();
    let fail = |e: nanollama::Error| Fail(format!("{which}: {e}"), 1);
    if let Err(e) = apply_template(tmpl, &msgs, add_assistant, &mut out, &mut needed) {
        if e != nanollama::Error::BufferTooSmall {
            return Err(fail(e));
        }
        out = vec![0; needed];
        apply_template(tmpl, &msgs, add_assistant, &mut out, &mut needed).map_err(fail)?;
    }
    let mut so = std::io::stdout().lock();
    so.write_all(&out)
        .and_then(|()| so.flush())
        .map_err(|e| Fail(format!("stdout: {e}"), 1))
}

const CHAT_HELP: &str =
    "usage: nanollama chat [MODEL.gguf] [--system TEXT] [--file TURNS.txt] [--template NAME]
                 [-n N] [--threads N] [--ctx N] [--kv f32|f16] [SAMPLER OPTIONS]
One user turn per line, from the terminal or from --file; the answer streams
to stdout, each turn's prompt and generation speed to stderr. Lines that are
commands: /reset (forget the conversation), /save FILE and /load FILE (the
conversation, its context and its sampler, in one file), /quit.
The template is the model's own (tokenizer.chat_template, recognised as
llama.cpp recognises it), or --template NAME (chatml, llama3, ...; see
`nanollama template --list`). Each turn decodes only its new messages on top
of the KV cache; when the context is full the oldest turn is dropped (the
system prompt kept) and the rest decoded again, with a note on stderr.
Without a model, the shipped one: a plain-text model trained on the King
James Bible, with no chat template. chat then uses chatml, whose markers it
has never seen (its vocabulary spells them out as text): it continues the
conversation as Bible-flavoured text, it does not answer. Use an instruct
model (SmolLM2-135M-Instruct: tools/fetch-smollm2.sh) for a real chat.";

/// A conversation's save file: its history, then the context's and the
/// sampler's states, each as `u64 length, bytes`.
const CHAT_SAVE_MAGIC: &[u8; 8] = b"NLCHAT01";

fn chat(args: &[String]) -> Result<(), Fail> {
    use nanollama::chat::Template;
    use nanollama::conversation::{Conversation, ConversationParams};
    use std::io::BufRead;

    let mut p = SamplerParams::default();
    let (mut path, mut system, mut file, mut template) =
        (None, None::<String>, None::<String>, None::<String>);
    let (mut n_gen, mut threads, mut n_ctx, mut kv) = (256usize, 1usize, 0u32, KvType::F16);
    let mut it = args.iter();
    while let Some(a) = it.next() {
        if a == "-h" || a == "--help" {
            println!("{CHAT_HELP}");
            return Ok(());
        }
        if !a.starts_with('-') {
            if path.is_some() {
                return Err(usage(&format!("unexpected argument '{a}'")));
            }
            path = Some(a.clone());
            continue;
        }
        let v = it
            .next()
            .ok_or_else(|| usage(&format!("{a} needs a value")))?;
        match a.as_str() {
            "--system" => system = Some(v.clone()),
            "--file" => file = Some(v.clone()),
            "--template" => template = Some(v.clone()),
            "-n" | "--n-predict" => n_gen = parse(a, v)?,
            "--threads" | "-t" => {
                threads = parse(a, v)?;
                if threads == 0 {
                    return Err(usage("bad --threads '0'"));
                }
            }
            "--ctx" => n_ctx = parse(a, v)?,
            "--kv" => kv = kv_type(v)?,
            _ if sampler_option(&mut p, a, v)? => {}
            _ => return Err(usage(&format!("unknown option '{a}'"))),
        }
    }
    let path = path.unwrap_or_else(shipped_model_path);
    let fbytes = open(&path)?;
    let bytes = fbytes.bytes();
    let mut model_mem = AlignedBuf::new(0);
    let model = load(&path, bytes, &mut model_mem)?;
    let mut vocab_mem = AlignedBuf::new(0);
    let vocab = load_vocab(&path, bytes, &mut vocab_mem)?;
    let fail = |e: nanollama::Error| Fail(e.to_string(), 1);

    // The template: --template, else the file's own, else chatml (said so).
    let tmpl = match &template {
        Some(name) => Template::from_name(name.as_bytes())
            .ok_or_else(|| usage(&format!("unknown template '{name}'")))?,
        None => match nanollama::chat::gguf_chat_template(bytes) {
            Ok(t) => nanollama::chat::detect(t).ok_or_else(|| {
                Fail(
                    format!("{path}: its chat template is not one nanollama knows (--template NAME picks one)"),
                    1,
                )
            })?,
            Err(_) => {
                eprintln!("nanollama: {path} has no chat template: using chatml");
                Template::Chatml
            }
        },
    };
    let train_ctx = model.config().n_ctx_train as u32;
    let n_ctx = if n_ctx == 0 {
        train_ctx.min(4096)
    } else {
        n_ctx
    };
    let params = ContextParams {
        n_ctx,
        n_batch: n_ctx.min(512),
        kv_type: kv,
        logits_all: false,
        f32_activations: false,
    };
    let mut ctx_mem = AlignedBuf::new(Context::size(&model, &params).map_err(fail)?);
    let mut ctx = Context::init(&model, &params, ctx_mem.as_mut_slice()).map_err(fail)?;
    let n_vocab = model.config().n_vocab;
    let mut s_mem = AlignedBuf::new(Sampler::size(n_vocab, &p, 0).map_err(fail)?);
    let mut sampler = Sampler::init(n_vocab, &p, &[], s_mem.as_mut_slice()).map_err(fail)?;
    let cp = ConversationParams::default();
    let mut conv_mem = AlignedBuf::new(Conversation::size(&cp).map_err(fail)?);
    let mut conv = Conversation::init(&vocab, tmpl, &cp, conv_mem.as_mut_slice()).map_err(fail)?;
    let par = pool_or_inline(threads);
    if let Some(s) = &system {
        conv.push(b"system", s.as_bytes()).map_err(fail)?;
    }

    let input: Box<dyn BufRead> = match &file {
        Some(f) => Box::new(std::io::BufReader::new(
            std::fs::File::open(f).map_err(|e| Fail(format!("{f}: {e}"), 1))?,
        )),
        None => Box::new(std::io::BufReader::new(std::io::stdin())),
    };
    let io = |e: std::io::Error| Fail(e.to_string(), 1);
    let mut turn_no = 0;
    for line in input.lines() {
        let line = line.map_err(io)?;
        let line = line.trim_end_matches('\r');
        if line.is_empty() {
            continue;
        }
        if line == "/quit" {
            break;
        }
        if line == "/reset" {
            conv.reset(&mut ctx);
            sampler.reset();
            if let Some(s) = &system {
                conv.push(b"system", s.as_bytes()).map_err(fail)?;
            }
            eprintln!("[reset]");
            continue;
        }
        if let Some(f) = line.strip_prefix("/save ") {
            let mut out = CHAT_SAVE_MAGIC.to_vec();
            for part in [
                save_with(conv.state_size(), |b| conv.save_state(b)),
                save_with(ctx.state_size(), |b| ctx.save_state(b)),
                save_with(sampler.state_size(), |b| sampler.save_state(b)),
            ] {
                let part = part.map_err(fail)?;
                out.extend_from_slice(&(part.len() as u64).to_le_bytes());
                out.extend_from_slice(&part);
            }
            std::fs::write(f, &out).map_err(|e| Fail(format!("{f}: {e}"), 1))?;
            eprintln!(
                "[saved {} messages, {} positions to {f}]",
                conv.len(),
                ctx.pos()
            );
            continue;
        }
        if let Some(f) = line.strip_prefix("/load ") {
            let data = std::fs::read(f).map_err(|e| Fail(format!("{f}: {e}"), 1))?;
            match load_chat(&data, &mut conv, &mut ctx, &mut sampler) {
                Ok(()) => eprintln!(
                    "[loaded {} messages, {} positions from {f}]",
                    conv.len(),
                    ctx.pos()
                ),
                // A damaged file or another model: said, and the
                // conversation goes on as it was.
                Err(e) => eprintln!("[{f}: {e}; nothing loaded]"),
            }
            continue;
        }
        turn_no += 1;
        let t0 = std::time::Instant::now();
        let mut t_first = None;
        let mut out = std::io::stdout().lock();
        let mut on_text = |piece: &[u8]| {
            t_first.get_or_insert_with(std::time::Instant::now);
            out.write_all(piece).and_then(|_| out.flush()).is_ok()
        };
        let r = loop {
            match conv.respond(
                &mut ctx,
                &mut sampler,
                line.as_bytes(),
                n_gen,
                &mut on_text,
                par.as_ref(),
            ) {
                Err(nanollama::Error::ContextFull)
                    if conv.len() > usize::from(system.is_some()) =>
                {
                    let n = conv
                        .drop_oldest_turn(&mut ctx, &mut sampler, par.as_ref())
                        .map_err(fail)?;
                    eprintln!("[context full: dropped the oldest turn, decoded {n} tokens again]");
                }
                r => break r,
            }
        };
        let turn = r.map_err(fail)?;
        writeln!(out).map_err(io)?;
        drop(out);
        let total = t0.elapsed().as_secs_f64();
        let prompt_secs = t_first.map_or(total, |t| (t - t0).as_secs_f64());
        let gen_secs = (total - prompt_secs).max(1e-9);
        eprintln!(
            "[turn {turn_no}: prompt {} tokens, {:.1} tok/s; answer {} tokens, {:.1} tok/s{}]",
            turn.prompt_tokens,
            turn.prompt_tokens as f64 / prompt_secs.max(1e-9),
            turn.generated,
            turn.generated as f64 / gen_secs,
            if turn.stopped_at_eog {
                ""
            } else {
                "; no end-of-turn token"
            },
        );
    }
    Ok(())
}

/// Runs `save` over a buffer of `n` bytes.
fn save_with(
    n: usize,
    save: impl FnOnce(&mut [u8]) -> Result<usize, nanollama::Error>,
) -> Result<Vec<u8>, nanollama::Error> {
    let mut b = vec![0u8; n];
    let k = save(&mut b)?;
    b.truncate(k);
    Ok(b)
}

/// Restores a `/save` file: everything or, on any error, nothing.
fn load_chat(
    data: &[u8],
    conv: &mut nanollama::conversation::Conversation<'_>,
    ctx: &mut Context<'_>,
    sampler: &mut Sampler<'_>,
) -> Result<(), nanollama::Error> {
    use nanollama::Error;
    let rest = data
        .strip_prefix(&CHAT_SAVE_MAGIC[..])
        .ok_or(Error::StateCorrupt)?;
    let mut parts = [&[][..]; 3];
    let mut at = 0;
    for p in &mut parts {
        let len = rest.get(at..at + 8).ok_or(Error::StateCorrupt)?;
        let len = u64::from_le_bytes(len.try_into().unwrap()) as usize;
        at += 8;
        *p = rest
            .get(at..at.checked_add(len).ok_or(Error::StateCorrupt)?)
            .ok_or(Error::StateCorrupt)?;
        at += len;
    }
    if at != rest.len() {
        return Err(Error::StateCorrupt);
    }
    // Each refuses a bad state without changing; what was loaded before a
    // refusal is put back, so the three stay in step.
    let ctx_before = save_with(ctx.state_size(), |b| ctx.save_state(b))?;
    let sampler_before = save_with(sampler.state_size(), |b| sampler.save_state(b))?;
    ctx.load_state(parts[1])?;
    if let Err(e) = sampler
        .load_state(parts[2])
        .and_then(|_| conv.load_state(parts[0]))
    {
        ctx.load_state(&ctx_before)?;
        sampler.load_state(&sampler_before)?;
        return Err(e);
    }
    Ok(())
}
