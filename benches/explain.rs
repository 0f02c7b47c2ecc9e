//! Wall-time breakdown of `gsmile explain` on the shipped tiny models; prints a table.
//!
//! Run with `cargo bench --bench explain` (release build). Figures: per-stage seconds at
//! N = 64 and 256 (medians of 5 runs), the share of time outside ONNX inference, batched vs one-at-a-time
//! editor throughput, a cached re-run with another kernel width, and peak RSS.

use std::path::PathBuf;
use std::time::Instant;

use gsmile::cache::ArrayCache;
use gsmile::explain::{self, ExplainConfig, ExplainRun, ImageInfo, NoProgress, RunOptions, Timings};
use gsmile::models::{Models, OpenOptions};
use gsmile::runtime::RuntimeOptions;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn peak_rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .map(|l| l.split_whitespace().nth(1).unwrap_or("0").parse::<f64>().unwrap_or(0.0))
        })
        .unwrap_or(0.0)
        / 1024.0
}

/// Timed runs per configuration; the table shows medians, so one noisy run does not move it.
const REPEATS: usize = 5;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n == 0 {
        f64::NAN
    } else if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn main() {
    let threads: usize = std::env::var("GSMILE_BENCH_THREADS").ok().and_then(|v| v.parse().ok()).unwrap_or(0);
    let open = OpenOptions { runtime: RuntimeOptions { threads }, ..OpenOptions::default() };
    let config = ExplainConfig::default();
    let models =
        Models::open(&root().join("onnx/tiny-editor"), &root().join("onnx/tiny-clip"), config.needs(), &open).unwrap();
    let editor = models.editor.clone();
    let image_path = root().join("assets/scene-01.png");
    let image = gsmile::imaging::load_rgb(&image_path).unwrap();
    let image_info = ImageInfo::from_file(&image_path).unwrap();
    let instruction = "could you please make the car red in the picture";
    let run = |config: &ExplainConfig, cache: Option<ArrayCache>| -> (ExplainRun, f64) {
        let out = tempfile::tempdir().unwrap();
        let t = Instant::now();
        let r = explain::explain(
            &image,
            image_info.clone(),
            instruction,
            &models,
            config,
            &RunOptions { max_batch: 32, cache, ..RunOptions::default() },
            &NoProgress,
        )
        .unwrap();
        let before_render = t.elapsed().as_secs_f64();
        gsmile::output::write_explanation(&r, &image, &out.path().join("x"), false).unwrap();
        let render = t.elapsed().as_secs_f64() - before_render;
        (r, render)
    };

    println!(
        "gsmile explain bench — threads={} ({} cores), instruction {:?}",
        threads,
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
        instruction
    );
    println!(
        "{:>5} {:>8} {:>8} {:>8} {:>9} {:>8} {:>8} {:>8} {:>8} {:>9} {:>10}",
        "N",
        "editor",
        "encoder",
        "distance",
        "surrogate",
        "spatial",
        "render",
        "total",
        "ORT run",
        "non-ONNX",
        "outside run"
    );
    for n in [64usize, 256] {
        let config = ExplainConfig { samples: n, ..ExplainConfig::default() };
        let _ = run(&config, None); // warm-up
        // Per run: stage timings, render time, and the time spent inside ONNX Runtime's run calls.
        let runs: Vec<(Timings, f64, f64)> = (0..REPEATS)
            .map(|_| {
                let before = gsmile::runtime::inference_time();
                let (r, render) = run(&config, None);
                (r.explanation.timings, render, (gsmile::runtime::inference_time() - before).as_secs_f64())
            })
            .collect();
        let stage = |f: &dyn Fn(&Timings, f64, f64) -> f64| median(runs.iter().map(|(t, r, i)| f(t, *r, *i)).collect());
        // "non-ONNX": everything but the editor and encoder stages; "outside run": everything
        // but the time inside `Session::run` (tokenising, normalising, cache keys count as outside).
        let non_onnx = stage(&|t, r, _| 100.0 * (t.total + r - t.editor - t.encoder) / (t.total + r));
        let outside = stage(&|t, r, i| 100.0 * (t.total + r - i) / (t.total + r));
        println!(
            "{:>5} {:>8.3} {:>8.3} {:>8.3} {:>9.3} {:>8.3} {:>8.3} {:>8.3} {:>8.3} {:>8.1}% {:>9.1}%",
            n,
            stage(&|t, _, _| t.editor),
            stage(&|t, _, _| t.encoder),
            stage(&|t, _, _| t.distance),
            stage(&|t, _, _| t.surrogate),
            stage(&|t, _, _| t.spatial),
            stage(&|_, r, _| r),
            stage(&|t, r, _| t.total + r),
            stage(&|_, _, i| i),
            non_onnx,
            outside,
        );
    }

    // Batched vs one-at-a-time editor calls over 64 instructions.
    let words = gsmile::perturb::split_words(instruction);
    let masks = gsmile::perturb::sample_masks(words.len(), 64, Default::default(), 0).unwrap();
    let texts: Vec<String> = masks.iter().map(|m| gsmile::perturb::render(instruction, &words, m, None)).collect();
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let (h, w) = editor.size();
    let input = gsmile::imaging::resize_tensor(gsmile::imaging::to_tensor(&image).view(), h, w);
    println!("\neditor throughput, 64 edits:");
    for batch in [1usize, 4, 16, 32, 64] {
        let t = Instant::now();
        gsmile::editor::edit_many(&*editor, input.view(), &refs, batch).unwrap();
        let s = t.elapsed().as_secs_f64();
        println!("  batch {batch:>3}: {s:>7.3} s  {:>8.1} edits/s", 64.0 / s);
    }

    // Cached re-run with another kernel width: each round starts from an empty cache.
    let config = ExplainConfig { samples: 256, ..ExplainConfig::default() };
    let (mut firsts, mut reruns, mut last) = (Vec::new(), Vec::new(), None);
    for round in 0..3 {
        let dir = tempfile::tempdir().unwrap();
        let t = Instant::now();
        let _ = run(&config, Some(ArrayCache::new(dir.path())));
        firsts.push(t.elapsed().as_secs_f64());
        for k in 0..REPEATS {
            let width = 0.05 + 0.01 * (round * REPEATS + k) as f64;
            let t = Instant::now();
            let out =
                run(&ExplainConfig { kernel_width: Some(width), ..config.clone() }, Some(ArrayCache::new(dir.path())));
            reruns.push(t.elapsed().as_secs_f64());
            last = Some(out);
        }
    }
    let (r, render) = last.unwrap();
    let tm = &r.explanation.timings;
    println!(
        "\nre-run stages (last): edits (cache) {:.3}  embeddings {:.3}  distance {:.3}  surrogate {:.3}  spatial {:.3}  render {:.3}",
        tm.editor, tm.encoder, tm.distance, tm.surrogate, tm.spatial, render
    );
    let (first, second) = (median(firsts), median(reruns));
    println!(
        "\ncached re-run (N=256, other kernel width, medians): first {first:.3} s, re-run {second:.3} s = {:.1}% ({} of {} edits cached)",
        100.0 * second / first,
        r.explanation.counts.cached_edits,
        r.explanation.counts.distinct_edits
    );
    println!("peak RSS: {:.0} MB", peak_rss_mb());
}
