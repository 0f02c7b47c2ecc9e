//! Renders a full HTML report of a hand-made explanation over `assets/scene-01.png`, opens it
//! in headless Chromium and checks that the screenshot shows the pictures (not a blank or
//! broken page). Needs `/usr/bin/chromium`: when it is missing the test installs Debian's
//! `chromium` with `apt-get` (CI runs as root on a fresh machine); set
//! `GSMILE_SKIP_CHROMIUM=1` to skip where it cannot be installed. Set
//! `GSMILE_KEEP_REPORT=<dir>` to keep the report, its PNGs and the screenshot for a look.

use std::path::{Path, PathBuf};

use crate::common::repo;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use gsmile::explain::{
    Counts, ExplainConfig, Explanation, Fidelity, ImageInfo, ModelInfo, SCHEMA, SampleRecord, Timings, WordAttribution,
};
use gsmile::perturb::{render, split_words};
use gsmile::render::{
    ReportImages, contact_sheet, diverging, overlay_grid, png_bytes, report_html, word_panel, words_image,
};
use image::{GrayImage, Rgb, RgbImage};
use ndarray::Array2;

const CHROMIUM: &str = "/usr/bin/chromium";
const INSTRUCTION: &str = "make the car red, not the house";

fn mask(name: &str) -> GrayImage {
    image::open(repo(&format!("assets/scene-01-masks/{name}.png"))).expect("scene-01 mask").to_luma8()
}

/// The input with the car painted red when `red` and the house darkened when `house`.
fn edit(input: &RgbImage, car: &GrayImage, house: &GrayImage, red: bool, darken_house: bool) -> RgbImage {
    let mut out = input.clone();
    for (x, y, p) in out.enumerate_pixels_mut() {
        if red && car.get_pixel(x, y)[0] > 127 {
            *p = Rgb([205, 30, 35]);
        }
        if darken_house && house.get_pixel(x, y)[0] > 127 {
            *p = Rgb([p[0] / 2, p[1] / 2, p[2] / 2]);
        }
    }
    out
}

/// Per-word attribution, and its heat map: positive over the car, negative over the house.
fn word_values(text: &str, car: &GrayImage, house: &GrayImage) -> (f64, bool, Array2<f32>) {
    let (a, sel, on_car, on_house) = match text {
        "make" => (0.08, true, 0.2, 0.0),
        "the" => (0.01, false, 0.0, 0.0),
        "car" => (0.35, true, 0.7, -0.2),
        "red" => (0.62, true, 1.0, 0.0),
        "not" => (-0.21, true, -0.1, -0.6),
        "house" => (-0.14, true, 0.0, -0.8),
        _ => (0.0, false, 0.0, 0.0),
    };
    let (w, h) = car.dimensions();
    let heat = Array2::from_shape_fn((h as usize, w as usize), |(y, x)| {
        let (x, y) = (x as u32, y as u32);
        let mut v = 0.0;
        if car.get_pixel(x, y)[0] > 127 {
            v += on_car;
        }
        if house.get_pixel(x, y)[0] > 127 {
            v += on_house;
        }
        v
    });
    (a, sel, heat)
}

fn explanation(words: Vec<WordAttribution>, samples: Vec<SampleRecord>) -> Explanation {
    Explanation {
        schema: SCHEMA.to_string(),
        gsmile_version: env!("CARGO_PKG_VERSION").to_string(),
        instruction: INSTRUCTION.to_string(),
        image: ImageInfo {
            path: "assets/scene-01.png".into(),
            sha256: "0123456789abcdef".repeat(4),
            width: 64,
            height: 64,
        },
        editor: ModelInfo {
            name: "toy-editor".into(),
            kind: "editor".into(),
            path: "onnx/editor".into(),
            sha256: "fedcba9876543210".repeat(4),
            params: serde_json::Value::Null,
        },
        encoder: Some(ModelInfo {
            name: "toy-clip".into(),
            kind: "clip".into(),
            path: "onnx/clip".into(),
            sha256: "00ff".repeat(16),
            params: serde_json::Value::Null,
        }),
        lpips: None,
        config: ExplainConfig::default(),
        kernel_width: 0.25,
        counts: Counts { words: words.len(), samples: samples.len(), distinct_edits: samples.len(), cached_edits: 0 },
        words,
        intercept: -0.71,
        edit_change: 0.6,
        edit_change_measured: true,
        exact: false,
        warnings: Vec::new(),
        budget: None,
        fidelity: Fidelity { r2: 0.874, mse: 0.0031 },
        samples,
        timings: Timings { editor: 1.2, encoder: 0.4, distance: 0.01, surrogate: 0.2, spatial: 0.3, total: 2.2 },
    }
}

/// Runs Chromium on `html`, writing a 1200×2000 screenshot to `png`, killed after `limit`.
fn screenshot(html: &Path, png: &Path, profile: &Path, limit: Duration) {
    let mut child = Command::new(CHROMIUM)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg(format!("--screenshot={}", png.display()))
        .arg("--window-size=1200,2000")
        .arg(format!("file://{}", html.display()))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start chromium");
    let start = Instant::now();
    loop {
        if child.try_wait().expect("wait for chromium").is_some() {
            return;
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!("chromium did not finish within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Installs Debian's chromium package, failing with the manual fix if that is impossible.
fn install_chromium() {
    eprintln!("{CHROMIUM} is missing: installing Debian's chromium with apt-get (about a minute)");
    let ok = Command::new("sh")
        .args(["-c", "apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium"])
        .stdout(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    assert!(
        ok && Path::new(CHROMIUM).exists(),
        "{CHROMIUM} is missing and `apt-get install chromium` failed: this test opens the HTML report in headless \
         Chromium. Fix: install chromium as root, or set GSMILE_SKIP_CHROMIUM=1 to skip it"
    );
}

#[test]
fn report_renders_in_chromium() {
    if !Path::new(CHROMIUM).exists() {
        if std::env::var("GSMILE_SKIP_CHROMIUM").as_deref() == Ok("1") {
            eprintln!("skipping report_renders_in_chromium: {CHROMIUM} is missing and GSMILE_SKIP_CHROMIUM=1");
            return;
        }
        install_chromium();
    }

    let input = image::open(repo("assets/scene-01.png")).expect("assets/scene-01.png").to_rgb8();
    let (car, house) = (mask("car"), mask("house"));
    let edited = edit(&input, &car, &house, true, false);

    // Words with attributions and heat maps.
    let mut words = Vec::new();
    let mut heats = Vec::new();
    for w in split_words(INSTRUCTION) {
        let (attribution, selected, heat) = word_values(&w.text, &car, &house);
        heats.push(heat);
        words.push(WordAttribution {
            word: w,
            attribution,
            ci_low: attribution - 0.08,
            ci_high: attribution + 0.08,
            p_value: if attribution.abs() > 0.1 { 0.002 } else { 0.4 },
            share: attribution / 0.6,
            rank: 0,
            selected,
        });
    }
    let mut order: Vec<usize> = (0..words.len()).collect();
    order.sort_by(|&a, &b| words[b].attribution.abs().total_cmp(&words[a].attribution.abs()));
    for (r, &i) in order.iter().enumerate() {
        words[i].rank = r + 1;
    }

    // Samples: drop one word at a time, plus the full and the empty instruction.
    let plain: Vec<_> = words.iter().map(|w| w.word.clone()).collect();
    let mut masks = vec![vec![true; plain.len()]];
    for i in 0..plain.len() {
        masks.push((0..plain.len()).map(|j| j != i).collect());
    }
    masks.push(vec![false; plain.len()]);
    let mut samples = Vec::new();
    let mut sheet = Vec::new();
    for (i, m) in masks.iter().enumerate() {
        let instruction = render(INSTRUCTION, &plain, m, None);
        let red = m[plain.iter().position(|w| w.text == "red").unwrap()];
        let not_kept = m[plain.iter().position(|w| w.text == "not").unwrap()];
        let distance = if red { 0.02 * i as f64 } else { 0.6 + 0.01 * i as f64 };
        samples.push(SampleRecord {
            mask: m.iter().map(|&k| if k { '1' } else { '0' }).collect(),
            instruction: instruction.clone(),
            distance,
            target: -distance,
            weight: (-(i as f64) / 4.0).exp(),
            instruction_distance: 0.1 * i as f64,
            prediction: -distance + 0.01,
            distance_p_value: None,
        });
        sheet.push((instruction, distance, edit(&input, &car, &house, red, !not_kept)));
    }
    let e = explanation(words, samples);

    // Pictures.
    let vmax = heats.iter().flat_map(|h| h.iter()).fold(0.0f32, |m, v| m.max(v.abs()));
    let mut panels = Vec::new();
    let mut per_word = Vec::new();
    for (w, heat) in e.words.iter().zip(&heats) {
        let panel = word_panel(&input, &edited, heat.view(), vmax, w).expect("word panel");
        per_word.push((format!("{:02}-{}", w.word.index, w.word.text), png_bytes(&panel)));
        panels.push(panel);
    }
    let words_png = words_image(&e);
    let grid = overlay_grid(&panels, 2);
    let sheet = contact_sheet(&sheet, 4);
    let images = ReportImages {
        words: png_bytes(&words_png),
        overlays: png_bytes(&grid),
        samples: png_bytes(&sheet),
        input: png_bytes(&input),
        edited: png_bytes(&edited),
        per_word,
    };
    let html = report_html(&e, &images);
    assert!(!html.contains("http://") && !html.contains("https://"));

    let tmp = tempfile::tempdir().expect("temp dir");
    let out = match std::env::var_os("GSMILE_KEEP_REPORT") {
        Some(dir) => PathBuf::from(dir),
        None => tmp.path().to_path_buf(),
    };
    std::fs::create_dir_all(&out).unwrap();
    let out = out.canonicalize().unwrap();
    let report = out.join("report.html");
    std::fs::write(&report, &html).unwrap();
    std::fs::write(out.join("words.png"), &images.words).unwrap();
    std::fs::write(out.join("overlays.png"), &images.overlays).unwrap();
    std::fs::write(out.join("samples.png"), &images.samples).unwrap();
    std::fs::write(out.join("panel.png"), &images.per_word[2].1).unwrap();

    let shot = out.join("screenshot.png");
    let _ = std::fs::remove_file(&shot);
    let profile = tempfile::tempdir().expect("chromium profile dir");
    screenshot(&report, &shot, profile.path(), Duration::from_secs(20));

    assert!(shot.exists(), "chromium wrote no screenshot to {}", shot.display());
    let img = image::open(&shot).expect("decode screenshot").to_rgb8();
    assert_eq!(img.dimensions(), (1200, 2000));
    let mut colours: Vec<[u8; 3]> = img.pixels().map(|p| p.0).collect();
    colours.sort_unstable();
    colours.dedup();
    assert!(colours.len() > 200, "screenshot looks blank: {} distinct colours", colours.len());
    // The word boxes of words.png, shown at natural size, carry the colour map's exact colours.
    let near = |c: Rgb<u8>| move |p: &&Rgb<u8>| (0..3).all(|k| (p[k] as i32 - c[k] as i32).abs() <= 3);
    let red = diverging(0.62, 0.62);
    let blue = diverging(-0.21, 0.62);
    let reds = img.pixels().filter(near(red)).count();
    let blues = img.pixels().filter(near(blue)).count();
    assert!(reds > 500, "no heat-map red {red:?} in the screenshot ({reds} pixels)");
    assert!(blues > 500, "no heat-map blue {blue:?} in the screenshot ({blues} pixels)");
}
