//! InstructPix2Pix loop speed: the Rust pipeline vs the same ONNX graphs driven from Python.
//!
//! Run with `cargo bench --bench pix2pix` (release build). For B = 1, 4 and 16 prompts sharing one
//! image it prints the median time of one denoising step (one UNet pass over B × 3 guidance
//! rows plus the sampler), the whole edit (prompts, image latents, steps, decoding) and the
//! edited images per second, each the best of 3 alternating rounds of 5 runs. With the model-script
//! venv present (`GSMILE_PYTHON`, default `/opt/gsmile-py/bin/python`), it runs
//! `benches/pix2pix_python.py` with the same bundle, threads, steps, row cap and repeats and
//! prints its figures beside them.
//!
//! Environment: `GSMILE_IP2P` (bundle, default `onnx/tiny-ip2p`), `GSMILE_BENCH_THREADS`
//! (intra-op threads, default 0 = all cores), `GSMILE_BENCH_STEPS` (default 8).

use std::path::PathBuf;
use std::time::Instant;

use gsmile::bundle::Bundle;
use gsmile::editor::DiffusionSettings;
use gsmile::editor::pix2pix::InstructPix2Pix;
use gsmile::runtime::RuntimeOptions;
use ndarray::{Array4, Axis};

/// Timed runs per round (after one warm-up); the bench reports the best, as the Python side does.
const REPEATS: usize = 5;
/// Alternating Python/Rust rounds per batch size.
const ROUNDS: usize = 3;

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn main() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let bundle_dir = std::env::var("GSMILE_IP2P").map(PathBuf::from).unwrap_or_else(|_| root.join("onnx/tiny-ip2p"));
    let threads: usize = env_or("GSMILE_BENCH_THREADS", 0);
    let steps: usize = env_or("GSMILE_BENCH_STEPS", 8);
    let max_rows = 24;
    let batches = [1usize, 4, 16];
    let bundle = Bundle::open(&bundle_dir).expect("bundle");
    let overrides = DiffusionSettings { steps: Some(steps), ..Default::default() };
    let p =
        InstructPix2Pix::load(&bundle, &RuntimeOptions { threads }, overrides).expect("load").with_max_batch(max_rows);
    let s = *p.settings();
    let words: Vec<&str> = "please make the car red at night with a blue sky".split(' ').collect();
    let image = Array4::from_shape_fn((1, 3, s.height as usize, s.width as usize), |(_, c, y, x)| {
        ((c * 31 + y * 7 + x * 3) % 17) as f32 / 16.0
    });

    println!(
        "InstructPix2Pix loop, bundle {}, {}x{}, {steps} steps, threads {threads}, rows per UNet call ≤ {max_rows}",
        bundle_dir.display(),
        s.width,
        s.height
    );
    println!(
        "{:>6} {:>14} {:>14} {:>12}   {:>14} {:>14} {:>12}",
        "batch", "rust step ms", "rust total ms", "rust img/s", "python step ms", "python total", "python img/s"
    );
    for &b in &batches {
        let prompts: Vec<String> = (0..b).map(|i| words[..1 + i % words.len()].join(" ")).collect();
        let refs: Vec<&str> = prompts.iter().map(String::as_str).collect();
        let rust = || {
            let (mut best_total, mut best_step) = (f64::INFINITY, f64::INFINITY);
            for rep in 0..=REPEATS {
                let t0 = Instant::now();
                let embeds = p.encode_prompts(&refs).unwrap();
                let uncond = p.encode_prompts(&[""]).unwrap();
                let latents = p.encode_images(image.view()).unwrap();
                let mut marks = vec![Instant::now()];
                let out = p
                    .denoise(latents.view(), embeds.view(), uncond.index_axis(Axis(0), 0), &p.noise(), |_| {
                        marks.push(Instant::now())
                    })
                    .unwrap();
                let _ = p.decode(out.view()).unwrap();
                let total = t0.elapsed().as_secs_f64();
                let mut per: Vec<f64> = marks.windows(2).map(|w| (w[1] - w[0]).as_secs_f64()).collect();
                per.sort_by(f64::total_cmp);
                // Repeat 0 warms up; then the best of REPEATS runs.
                if rep > 0 {
                    best_total = best_total.min(total);
                    best_step = best_step.min(per[per.len() / 2]);
                }
            }
            (best_step * 1e3, best_total * 1e3)
        };
        // Alternate Python and Rust rounds so both see the same machine load; keep each side's best.
        let (mut r, mut py) = ((f64::INFINITY, f64::INFINITY), None::<(f64, f64)>);
        for _ in 0..ROUNDS {
            if let Some(&(_, s, t, _)) = python_figures(&bundle_dir, threads, steps, max_rows, &[b], s.height).first() {
                py = Some(py.map_or((s, t), |(ps, pt)| (ps.min(s), pt.min(t))));
            }
            let (step, total) = rust();
            r = (r.0.min(step), r.1.min(total));
        }
        let (ps, pt, pr) = py
            .map(|(s, t)| (format!("{s:.2}"), format!("{t:.1}"), format!("{:.1}", b as f64 / t * 1e3)))
            .unwrap_or(("-".into(), "-".into(), "-".into()));
        println!("{b:>6} {:>14.2} {:>14.1} {:>12.1}   {ps:>14} {pt:>14} {pr:>12}", r.0, r.1, b as f64 / r.1 * 1e3);
    }
}

/// `(batch, step ms, total ms, images/s)` from the Python reference, empty when it cannot run.
fn python_figures(
    bundle: &std::path::Path,
    threads: usize,
    steps: usize,
    max_rows: usize,
    batches: &[usize],
    size: u32,
) -> Vec<(usize, f64, f64, f64)> {
    let python = std::env::var("GSMILE_PYTHON").unwrap_or_else(|_| "/opt/gsmile-py/bin/python".into());
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("benches/pix2pix_python.py");
    let mut cmd = std::process::Command::new(&python);
    cmd.arg(&script).arg(bundle).arg("--steps").arg(steps.to_string()).arg("--threads").arg(threads.to_string());
    cmd.arg("--max-rows").arg(max_rows.to_string()).arg("--size").arg(size.to_string());
    cmd.arg("--repeats").arg(REPEATS.to_string()).arg("--batches");
    cmd.args(batches.iter().map(|b| b.to_string()));
    let Ok(out) = cmd.output() else {
        eprintln!("(python reference skipped: cannot run {python})");
        return Vec::new();
    };
    if !out.status.success() {
        eprintln!("(python reference failed: {})", String::from_utf8_lossy(&out.stderr).lines().last().unwrap_or(""));
        return Vec::new();
    }
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .map(|v| {
            let f = |k: &str| v[k].as_f64().unwrap_or(f64::NAN);
            (f("batch") as usize, f("step_ms"), f("total_ms"), f("samples_per_s"))
        })
        .collect()
}
