//! The nanollama command-line program.
//!
//! ```text
//! cargo run --release --example nanollama -- info MODEL.gguf
//! cargo run --release --example nanollama -- logits MODEL.gguf --tokens 1,2,3 \
//!     [--threads N] [--kv f32|f16] --out FILE
//! ```
//!
//! Exits 0 on success; otherwise prints one line naming the problem to stderr
//! and exits 1 (2 for a usage error).
use nanollama::gguf::{Gguf, Value};
use nanollama::host::{pool_or_inline, AlignedBuf, FileBytes};
use nanollama::{Context, ContextParams, KvType, Model};
use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

const USAGE: &str = "usage: nanollama info MODEL.gguf
       nanollama logits MODEL.gguf --tokens 1,2,3 [--threads N] [--kv f32|f16] --out FILE";

/// A one-line failure: the message and the exit code.
struct Fail(String, u8);

fn usage(msg: &str) -> Fail {
    Fail(format!("{msg} (nanollama --help for usage)"), 2)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let r = match args.first().map(String::as_str) {
        Some("info") => info(&args[1..]),
        Some("logits") => logits(&args[1..]),
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
        "model: llama, {} parameters, {} bytes of weights",
        i.n_params, i.weight_bytes
    );
    println!(
        "  dim {}  layers {}  heads {}  kv_heads {}  head_dim {}  ffn {}",
        c.dim, c.n_layers, c.n_heads, c.n_kv_heads, c.head_dim, c.ffn_dim
    );
    println!(
        "  vocab {}  context {}  rope_dim {}  rope_base {}  rms_eps {:e}",
        c.n_vocab, c.n_ctx_train, c.rope_dim, c.rope_base, c.rms_eps
    );
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
    Ok(())
}

fn logits(args: &[String]) -> Result<(), Fail> {
    let mut path = None;
    let mut tokens: Option<Vec<u32>> = None;
    let mut threads = 1usize;
    let mut kv = KvType::F32;
    let mut out = None;
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
            "--kv" => {
                kv = match val("--kv")?.as_str() {
                    "f32" => KvType::F32,
                    "f16" => KvType::F16,
                    other => return Err(usage(&format!("bad --kv '{other}' (f32 or f16)"))),
                }
            }
            "--out" => out = Some(val("--out")?),
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
