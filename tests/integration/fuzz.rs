//! Seeded mutation fuzzing of everything a user writes or downloads: scenario and suite
//! TOML, `bundle.toml` (with its tokenizer), CLIP preprocessor configs, diffusers scheduler
//! configs and instructions. Each case must load or fail with an error that names the file;
//! none may panic. A few thousand cases, seeded, so a failure reproduces (#11 item 8).

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::common::repo;

/// Pieces a careless edit or a hostile file puts into a config.
const PIECES: &[&str] = &[
    "\"",
    "'",
    "[",
    "]",
    "{",
    "}",
    "=",
    ",",
    ":",
    "\n",
    "#",
    "-",
    "-1",
    "0",
    "1e309",
    "-0.0",
    "nan",
    "inf",
    "-inf",
    "18446744073709551616",
    "4294967296",
    "2147483648",
    "99999999",
    "true",
    "null",
    "\"\"",
    "[]",
    "{}",
    "[[]]",
    "\\u0000",
    "\u{0}",
    "é",
    "\u{202e}",
    "\u{1b}[2J",
    "../",
    "/",
    "..",
    "/etc/passwd",
    "\t",
    "\r\n",
    "0.5",
    "1.0e-45",
];

/// `text` with one to four random edits: a span deleted, a piece inserted, a line
/// duplicated or dropped, a number replaced, a character swapped.
fn mutate(rng: &mut ChaCha8Rng, text: &str) -> String {
    let mut chars: Vec<char> = text.chars().collect();
    for _ in 0..rng.random_range(1..=4) {
        let at = rng.random_range(0..=chars.len());
        match rng.random_range(0..7) {
            0 if !chars.is_empty() => {
                let end = (at + rng.random_range(1..12)).min(chars.len());
                chars.drain(at.min(end)..end);
            }
            1 | 2 => {
                let piece = PIECES[rng.random_range(0..PIECES.len())];
                chars.splice(at..at, piece.chars());
            }
            3 => {
                let long = "x".repeat(rng.random_range(200..2000));
                chars.splice(at..at, long.chars());
            }
            4 => {
                // Duplicate or drop one line.
                let lines: Vec<String> = chars.iter().collect::<String>().lines().map(String::from).collect();
                if !lines.is_empty() {
                    let k = rng.random_range(0..lines.len());
                    let mut lines = lines;
                    if rng.random_bool(0.5) {
                        let dup = lines[k].clone();
                        lines.insert(k, dup);
                    } else {
                        lines.remove(k);
                    }
                    chars = lines.join("\n").chars().collect();
                }
            }
            5 => {
                // Replace the digits around `at` with an extreme number.
                let start = chars[..at].iter().rposition(|c| !c.is_ascii_digit()).map_or(0, |p| p + 1);
                let end = chars[at..].iter().position(|c| !c.is_ascii_digit()).map_or(chars.len(), |p| at + p);
                let extreme = ["0", "-1", "99999999999999999999", "4097", "100000", "1e400", "3.5"];
                chars.splice(start..end, extreme[rng.random_range(0..extreme.len())].chars());
            }
            _ if !chars.is_empty() => {
                let k = at.min(chars.len() - 1);
                chars[k] = char::from_u32(rng.random_range(0..0x3000)).unwrap_or('?');
            }
            _ => {}
        }
    }
    chars.into_iter().collect()
}

/// Runs `case` on `cases` mutations of `text`, each written to `file`; `check` gets the
/// outcome as text (`Ok` or the error message) and must accept it. Panics are collected and
/// reported with the input that caused them.
fn fuzz(seed: u64, cases: usize, text: &str, file: &Path, run: impl Fn() -> Result<(), String>) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let name = file.file_name().unwrap().to_string_lossy().into_owned();
    let folder = file.parent().unwrap().file_name().unwrap().to_string_lossy().into_owned();
    let mut failures = Vec::new();
    for case in 0..cases {
        let mutated = mutate(&mut rng, text);
        std::fs::write(file, &mutated).unwrap();
        match catch_unwind(AssertUnwindSafe(&run)) {
            Ok(Ok(())) => {}
            Ok(Err(message)) if message.contains(&name) || message.contains(&folder) => {}
            Ok(Err(message)) => failures.push(format!("case {case}: error does not name {name}: {message}")),
            Err(_) => failures.push(format!("case {case}: panicked on:\n{mutated}")),
        }
        if failures.len() >= 3 {
            break;
        }
    }
    assert!(failures.is_empty(), "seed {seed}:\n{}", failures.join("\n---\n"));
}

#[test]
fn scenario_and_suite_files_never_panic() {
    let dir = tempfile::tempdir().unwrap();
    let suite = dir.path().join("suite");
    std::fs::create_dir(&suite).unwrap();
    let images = repo("scenarios/smoke/images");
    std::fs::create_dir(suite.join("images")).unwrap();
    for e in std::fs::read_dir(&images).unwrap().flatten().filter(|e| e.path().is_file()) {
        std::fs::copy(e.path(), suite.join("images").join(e.file_name())).unwrap();
    }
    let suite_toml = std::fs::read_to_string(repo("scenarios/smoke/suite.toml")).unwrap();
    let scenario = std::fs::read_to_string(repo("scenarios/smoke/001-day-clear-car-red-terse.toml")).unwrap();
    let load = || gsmile::scenario::load_suite(&suite).map(|_| ()).map_err(|e| e.to_string());
    std::fs::write(suite.join("suite.toml"), &suite_toml).unwrap();
    fuzz(1, 3000, &scenario, &suite.join("001-x.toml"), load);
    std::fs::write(suite.join("001-x.toml"), &scenario).unwrap();
    fuzz(2, 1000, &suite_toml, &suite.join("suite.toml"), load);
}

#[test]
fn bundle_manifests_and_tokenizers_never_panic() {
    let dir = tempfile::tempdir().unwrap();
    let bundle = crate::common::copy_bundle("tiny-editor", dir.path());
    let manifest = std::fs::read_to_string(bundle.join("bundle.toml")).unwrap();
    let open = || -> Result<(), String> {
        let b = gsmile::bundle::Bundle::open(&bundle).map_err(|e| e.to_string())?;
        let t = gsmile::tokenizer::InstructionTokenizer::from_bundle(&b).map_err(|e| e.to_string())?;
        // A tokenizer that loads must tokenise; its errors are about the text, not the file.
        let _ = t.encode(&["make the car red", ""]);
        Ok(())
    };
    fuzz(3, 2000, &manifest, &bundle.join("bundle.toml"), open);
    std::fs::write(bundle.join("bundle.toml"), &manifest).unwrap();
    let tokenizer = std::fs::read_to_string(bundle.join("tokenizer.json")).unwrap();
    fuzz(4, 1000, &tokenizer, &bundle.join("tokenizer.json"), open);
}

#[test]
fn preprocessor_configs_never_panic() {
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path().join("clip");
    std::fs::create_dir(&folder).unwrap();
    let file = folder.join("preprocessor_config.json");
    let config = std::fs::read_to_string(repo("onnx/tiny-clip-hf/preprocessor_config.json")).unwrap();
    let image = image::open(repo("assets/scene-01.png")).unwrap().to_rgb8();
    let run = || -> Result<(), String> {
        let p = gsmile::preprocess::ImageProcessor::from_file(&file).map_err(|e| e.to_string())?;
        let (h, w) = p.output_size();
        // Configs that load must preprocess; huge (but allowed) sizes are skipped for time.
        if u64::from(h) * u64::from(w) <= 512 * 512 {
            let out = p.preprocess(std::slice::from_ref(&image));
            assert_eq!(out.dim(), (1, 3, h as usize, w as usize));
        }
        Ok(())
    };
    fuzz(5, 2000, &config, &file, run);
}

#[test]
fn scheduler_configs_never_panic() {
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path().join("scheduler");
    std::fs::create_dir(&folder).unwrap();
    let file = folder.join("scheduler_config.json");
    let config = std::fs::read_to_string(repo("onnx/tiny-ip2p/scheduler/scheduler_config.json")).unwrap();
    let run = || -> Result<(), String> {
        use gsmile::editor::scheduler::{SchedulerConfig, build};
        let c = SchedulerConfig::from_file(&file).map_err(|e| e.to_string())?;
        for steps in [1, 3, 50] {
            let s = build(&c, steps).map_err(|e| e.to_string())?;
            let x = ndarray::Array4::<f32>::ones((1, 2, 2, 2));
            for i in 0..s.timesteps().len() {
                let scaled = s.scale_model_input(x.view(), i);
                let _ = s.step(scaled.view(), i, x.view(), x.view());
            }
        }
        Ok(())
    };
    fuzz(6, 2000, &config, &file, run);
}

#[test]
fn instructions_never_panic() {
    let bundle = gsmile::bundle::Bundle::open(repo("onnx/tiny-editor")).unwrap();
    let tokenizer = gsmile::tokenizer::InstructionTokenizer::from_bundle(&bundle).unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    for case in 0..3000u64 {
        let instruction = mutate(&mut rng, "please make the car red, and the sky orange!");
        let outcome = catch_unwind(AssertUnwindSafe(|| {
            let words = gsmile::perturb::split_words(&instruction);
            let texts: Vec<&str> = words.iter().map(|w| w.text.as_str()).collect();
            let _ = tokenizer.unknown_words(&texts);
            let _ = tokenizer.count(&instruction);
            let _ = tokenizer.encode(&[&instruction]);
            let mask: Vec<bool> = (0..words.len()).map(|k| k % 2 == 0).collect();
            use gsmile::perturb::{Strategy, sample_masks};
            for strategy in [Strategy::Levels, Strategy::Lime, Strategy::KernelShap, Strategy::Half] {
                let _ = sample_masks(words.len(), 16, strategy, case);
            }
            for replacement in [None, Some("[MASK]")] {
                let _ = gsmile::perturb::render(&instruction, &words, &mask, replacement);
            }
        }));
        assert!(outcome.is_ok(), "case {case} panicked on {instruction:?}");
    }
}
