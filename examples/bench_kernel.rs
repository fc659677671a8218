//! One matrix product kernel alone: random Q4_0 (or Q8_0) weights of
//! `COLS` columns and about `MB` megabytes, against 1 and 8 inputs, on one
//! thread, through `kernels::matmul` (the CPU's best kernels, as a forward
//! pass uses them). Prints multiply-adds per second and weight bytes per
//! second, the best and the median of 9 runs.
//!
//! ```text
//! cargo run --release --example bench_kernel -- COLS MB [q8_0]
//! ```
//!
//! 300 MB streams the weights from memory (the case of a forward pass);
//! 1 MB keeps them in the L2 cache (the kernel's instructions alone). The
//! scales are moderate (0x1c__ as f16), the quants random.
use nanollama::kernels::matmul;
use nanollama::model::Matrix;
use nanollama::quant::WeightType;
use nanollama::Inline;
use std::time::Instant;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let usage = "usage: bench_kernel COLS MB [q8_0]";
    let (Some(cols), Some(mb)) = (
        args.first().and_then(|s| s.parse::<usize>().ok()),
        args.get(1).and_then(|s| s.parse::<usize>().ok()),
    ) else {
        eprintln!("{usage}");
        std::process::exit(2);
    };
    let ty = match args.get(2).map(String::as_str) {
        None => WeightType::Q4_0,
        Some("q8_0") => WeightType::Q8_0,
        Some(_) => {
            eprintln!("{usage}");
            std::process::exit(2);
        }
    };
    let (Some(row_bytes), true) = (ty.row_bytes(cols), cols > 0 && mb > 0) else {
        eprintln!("{usage} (COLS a multiple of 32, MB at least 1)");
        std::process::exit(2);
    };
    let bb = ty.block_bytes();
    let rows = (mb * 1_000_000 / row_bytes).max(1);
    let mut data = vec![0u8; rows * row_bytes];
    let mut s = 0x1234_5678u64;
    for (i, b) in data.iter_mut().enumerate() {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        // Byte 1 of a block is the f16 scale's high byte.
        *b = if i % bb == 1 { 0x1c } else { s as u8 };
    }
    let w = Matrix {
        ty,
        data: &data,
        rows,
        cols,
        row_bytes,
    };
    let mut act = vec![0u8; 1 << 24];
    // Enough calls a run to take ~300 MB of weights.
    let calls = (300 / mb).max(1);
    for n in [1usize, 8] {
        let x: Vec<f32> = (0..n * cols)
            .map(|i| ((i * 7919) % 1000) as f32 / 500.0 - 1.0)
            .collect();
        let mut out = vec![0f32; n * rows];
        let mut t: Vec<f64> = (0..9)
            .map(|_| {
                let start = Instant::now();
                for _ in 0..calls {
                    matmul(&Inline, &w, &x, n, &mut out, Some(&mut act));
                }
                start.elapsed().as_secs_f64() / calls as f64
            })
            .collect();
        t.sort_by(f64::total_cmp);
        let macs = (n * rows * cols) as f64;
        println!(
            "{ty:?} cols {cols} {mb} MB N={n}: best {:.1} GMAC/s ({:.2} GB/s of weights), median {:.1} GMAC/s",
            macs / t[0] / 1e9,
            data.len() as f64 / t[0] / 1e9,
            macs / t[4] / 1e9
        );
    }
}
