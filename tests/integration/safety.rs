//! What a careless user can give gsmile ends in a clear error or a bounded, correct result:
//! closed pipes, truncated or huge images, broken models, absurd numbers, hostile words,
//! and the leftovers of killed runs (#11 items 1, 3, 4 and 6).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::common::{gsmile, repo, root, stderr};

/// Runs gsmile expecting failure: non-zero exit, no panic, every needle in the message.
fn fails(args: &[&str], needles: &[&str]) -> String {
    let o = gsmile(args);
    let err = stderr(&o);
    assert!(!o.status.success(), "expected failure for {args:?}");
    assert!(!err.contains("panicked"), "panic instead of an error: {err}");
    for n in needles {
        assert!(err.contains(n), "error lacks {n:?}: {err}");
    }
    err
}

fn edit_args<'a>(image: &'a str, out: &'a str) -> Vec<&'a str> {
    vec!["edit", "--image", image, "--instruction", "make the car red", "--out", out, "-q"]
}

fn explain_args<'a>(image: &'a str, instruction: &'a str, out: &'a str) -> Vec<&'a str> {
    vec!["explain", "--image", image, "--instruction", instruction, "--samples", "12", "--no-cache", "-q", "--out", out]
}

/// Runs gsmile with its standard output already closed by the reader.
fn with_closed_stdout(args: &[&str]) -> std::process::Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_gsmile"))
        .args(args)
        .current_dir(root())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    child.wait_with_output().unwrap()
}

#[test]
fn a_closed_pipe_ends_quietly() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("e");
    let runs = [
        vec!["models", "onnx"],
        explain_args("assets/scene-01.png", "make the car red", out.to_str().unwrap())
            .into_iter()
            .filter(|a| *a != "-q")
            .chain(["--json"])
            .collect(),
    ];
    for args in runs {
        let o = with_closed_stdout(&args);
        let err = stderr(&o);
        assert!(o.status.success(), "{args:?} exited {:?}: {err}", o.status.code());
        assert!(!err.contains("panicked") && !err.contains("error"), "{args:?}: {err}");
    }
    assert!(out.join("explanation.json").is_file(), "the output folder is written before printing");
}

/// The asset, scaled up and encoded as a JPEG.
fn jpeg(dir: &Path) -> PathBuf {
    let img = image::open(repo("assets/scene-01.png")).unwrap().to_rgb8();
    let img = image::imageops::resize(&img, 256, 256, image::imageops::FilterType::Triangle);
    let path = dir.join("scene.jpg");
    img.save(&path).unwrap();
    path
}

#[test]
fn a_truncated_jpeg_is_an_error_not_a_grey_picture() {
    let dir = tempfile::tempdir().unwrap();
    let whole = jpeg(dir.path());
    let bytes = std::fs::read(&whole).unwrap();
    let cut = dir.path().join("cut.jpg");
    std::fs::write(&cut, &bytes[..bytes.len() * 3 / 10]).unwrap();
    let out = dir.path().join("o.png");
    fails(&edit_args(cut.to_str().unwrap(), out.to_str().unwrap()), &["cut.jpg", "cannot read image", "complete"]);
    assert!(!out.exists());
    // The whole file decodes, to what the image crate decodes.
    let ours = gsmile::imaging::load_rgb(&whole).unwrap();
    assert_eq!(ours, image::open(&whole).unwrap().to_rgb8());
    assert!(gsmile(&edit_args(whole.to_str().unwrap(), out.to_str().unwrap())).status.success());
}

/// CRC-32 (ISO-HDLC, as PNG uses), by hand: only this test needs one, to forge a header.
fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 { (crc >> 1) ^ 0xEDB8_8320 } else { crc >> 1 };
        }
    }
    !crc
}

/// A 57-byte PNG whose header claims `width`×`height` pixels and that holds no pixel data.
fn forged_png(path: &Path, width: u32, height: u32) {
    let mut ihdr = width.to_be_bytes().to_vec();
    ihdr.extend_from_slice(&height.to_be_bytes());
    ihdr.extend_from_slice(&[8, 2, 0, 0, 0]);
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    for (kind, data) in [(b"IHDR", &ihdr[..]), (b"IDAT", &[][..]), (b"IEND", &[][..])] {
        let chunk = [&kind[..], data].concat();
        png.extend_from_slice(&(data.len() as u32).to_be_bytes());
        png.extend_from_slice(&chunk);
        png.extend_from_slice(&crc32(&chunk).to_be_bytes());
    }
    std::fs::write(path, png).unwrap();
}

#[test]
fn an_image_over_the_pixel_limit_is_refused_from_its_header() {
    let dir = tempfile::tempdir().unwrap();
    let huge = dir.path().join("huge.png");
    forged_png(&huge, 100_000, 100_000);
    let out = dir.path().join("o.png");
    let err = fails(
        &edit_args(huge.to_str().unwrap(), out.to_str().unwrap()),
        &["huge.png", "100000×100000", "--max-pixels"],
    );
    assert!(err.contains(&gsmile::imaging::DEFAULT_MAX_PIXELS.to_string()), "{err}");
    let e = dir.path().join("e");
    fails(
        &explain_args(huge.to_str().unwrap(), "make the car red", e.to_str().unwrap()),
        &["huge.png", "--max-pixels"],
    );
    // The limit can be lowered (and so raised): the 64×64 asset is over a limit of 100.
    let mut args = edit_args("assets/scene-01.png", out.to_str().unwrap());
    args.extend(["--max-pixels", "100"]);
    fails(&args, &["64×64", "--max-pixels 4096"]);
    assert!(!out.exists() && !e.exists());
}

#[test]
fn a_very_thin_image_is_explained_with_bounded_pictures() {
    let dir = tempfile::tempdir().unwrap();
    let thin = dir.path().join("thin.png");
    image::RgbImage::from_pixel(20_000, 1, image::Rgb([90, 160, 90])).save(&thin).unwrap();
    let out = dir.path().join("e");
    let o = gsmile(&explain_args(thin.to_str().unwrap(), "make the car red", out.to_str().unwrap()));
    assert!(o.status.success(), "{}", stderr(&o));
    for name in ["overlays.png", "words.png", "samples.png"] {
        let (w, h) = image::image_dimensions(out.join(name)).unwrap();
        assert!(u64::from(w) * u64::from(h) < 20_000_000, "{name} is {w}×{h}");
    }
}

#[test]
fn nan_from_an_editor_or_encoder_is_an_error_everywhere() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("o.png");
    let mut args = edit_args("assets/scene-01.png", out.to_str().unwrap());
    args.extend(["--editor", "tests/fixtures/broken/nan-editor"]);
    fails(&args, &["editor.onnx", "NaN or infinite", "`edited`"]);
    assert!(!out.exists());
    let e = dir.path().join("e");
    let mut args = explain_args("assets/scene-01.png", "make the car red", e.to_str().unwrap());
    args.extend(["--editor", "tests/fixtures/broken/nan-editor"]);
    let err = fails(&args, &["editor.onnx", "NaN or infinite"]);
    assert!(!err.contains("use `wasserstein`"), "the error suggests the metric that failed: {err}");
    assert!(!e.exists());
    let embed = ["embed", "--encoder", "tests/fixtures/broken/inf-clip"];
    let o = gsmile(&[&embed[..], &["--image", "assets/scene-01.png"]].concat());
    assert!(o.stdout.is_empty(), "{}", String::from_utf8_lossy(&o.stdout));
    fails(&[&embed[..], &["--image", "assets/scene-01.png"]].concat(), &["image.onnx", "NaN or infinite"]);
    fails(&[&embed[..], &["--text", "a red car"]].concat(), &["text.onnx", "NaN or infinite"]);
}

#[test]
fn absurd_numbers_are_refused_with_their_range() {
    let dir = tempfile::tempdir().unwrap();
    let e = dir.path().join("e");
    let e = e.to_str().unwrap();
    let with = |extra: &[&str]| -> Vec<String> {
        let mut a: Vec<String> =
            explain_args("assets/scene-01.png", "make the car red", e).into_iter().map(String::from).collect();
        a.extend(extra.iter().map(|s| s.to_string()));
        a
    };
    for (extra, needle) in [
        (vec!["--samples", "100001"], "100000"),
        (vec!["--samples", "auto", "--max-samples", "1000000"], "1..=100000"),
        (vec!["--threads", "100000"], "0..=1024"),
        (vec!["--max-batch", "0"], "1..=4096"),
    ] {
        let args = with(&extra);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        fails(&args, &[needle, extra[extra.len() - 2]]);
    }
    assert!(!Path::new(e).exists());
}

#[test]
fn control_characters_never_reach_the_terminal_raw() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("e");
    let instruction = "make the \u{1b}[31mcar\u{7} red";
    let mut args = explain_args("assets/scene-01.png", instruction, out.to_str().unwrap());
    args.retain(|a| *a != "-q");
    let o = gsmile(&args);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = String::from_utf8(o.stdout).unwrap();
    assert!(!text.chars().any(|c| c.is_control() && c != '\n'), "{text:?}");
    assert!(text.contains("\\u{1b}[31mcar\\u{7}"), "{text}");
    // Errors quoting the instruction escape it too.
    let long = format!("{instruction} {}", "very ".repeat(40));
    let o = gsmile(&explain_args("assets/scene-01.png", &long, out.to_str().unwrap()));
    let err = stderr(&o);
    assert!(!o.status.success());
    assert!(!err.chars().any(|c| c.is_control() && c != '\n'), "{err:?}");
}

#[test]
fn a_very_long_word_gets_a_bounded_file_name() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("e");
    let word = "r".repeat(300);
    let o = gsmile(&explain_args("assets/scene-01.png", &format!("make the car {word}"), out.to_str().unwrap()));
    assert!(o.status.success(), "{}", stderr(&o));
    let names: Vec<String> = std::fs::read_dir(out.join("overlays"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names.len(), 4, "{names:?}");
    assert!(names.iter().all(|n| n.len() <= 64), "{names:?}");
}

#[test]
fn output_problems_are_found_before_the_model_work() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("a-file");
    std::fs::write(&file, b"not a folder").unwrap();
    let out = file.join("e");
    // The editor would fail too (it does not exist): the output's problem is reported first.
    let mut args = explain_args("assets/scene-01.png", "make the car red", out.to_str().unwrap());
    args.extend(["--editor", "onnx/no-such-editor"]);
    let err = fails(&args, &["a-file"]);
    assert!(!err.contains("no-such-editor"), "{err}");
    assert_eq!(std::fs::read(&file).unwrap(), b"not a folder");
}

#[test]
fn staging_folders_of_killed_runs_are_cleaned_up_by_the_next_run() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("e");
    // What a run killed mid-way leaves: its PID (no process has one this large) in the name.
    let stale = dir.path().join(".e.partial-4000000000-Ab12Cd");
    std::fs::create_dir(&stale).unwrap();
    std::fs::write(stale.join("words.png"), b"half").unwrap();
    let foreign = dir.path().join(".e.partial-notes");
    std::fs::create_dir(&foreign).unwrap();
    let o = gsmile(&explain_args("assets/scene-01.png", "make the car red", out.to_str().unwrap()));
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(!stale.exists(), "the killed run's staging folder is left behind");
    assert!(foreign.exists(), "a folder gsmile did not name is never removed");
    let left: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".e."))
        .collect();
    assert_eq!(left, [".e.partial-notes"]);
}

#[test]
fn edit_and_explain_treat_their_output_alike() {
    let dir = tempfile::tempdir().unwrap();
    // Both create missing parent folders...
    let out = dir.path().join("new").join("deeper").join("o.png");
    assert!(gsmile(&edit_args("assets/scene-01.png", out.to_str().unwrap())).status.success());
    let before = std::fs::read(&out).unwrap();
    // ...and both refuse an existing output without --force.
    fails(&edit_args("assets/scene-01.png", out.to_str().unwrap()), &["exists", "--force"]);
    let mut args = edit_args("assets/scene-01.png", out.to_str().unwrap());
    args[4] = "make it night";
    args.push("--force");
    assert!(gsmile(&args).status.success());
    assert_ne!(std::fs::read(&out).unwrap(), before, "--force replaced the image");
    let folder = dir.path().join("folder.png");
    std::fs::create_dir(&folder).unwrap();
    fails(&edit_args("assets/scene-01.png", folder.to_str().unwrap()), &["is a folder"]);
}

/// The explanation's attributions, word by word.
fn attributions(dir: &Path) -> Vec<f64> {
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("explanation.json")).unwrap()).unwrap();
    json["words"].as_array().unwrap().iter().map(|w| w["attribution"].as_f64().unwrap()).collect()
}

/// Every cache entry under `dir`.
fn entries(dir: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .filter(|e| e.path().is_dir())
        .flat_map(|shard| std::fs::read_dir(shard.path()).unwrap().flatten().map(|e| e.path()))
        .collect();
    out.sort();
    out
}

#[test]
fn a_damaged_cache_entry_is_recomputed_with_one_warning() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let run = |out: &Path| {
        let mut args = explain_args("assets/scene-01.png", "make the car red", out.to_str().unwrap());
        args.retain(|a| *a != "--no-cache" && *a != "-q");
        args.extend(["--cache", cache.to_str().unwrap(), "--json"]);
        gsmile(&args)
    };
    let first = dir.path().join("first");
    assert!(run(&first).status.success());
    let files = entries(&cache);
    assert!(files.len() > 5, "{files:?}");
    // One flipped bit in an edit, one NaN where values were: both would be served today.
    let mut bytes = std::fs::read(&files[0]).unwrap();
    let at = bytes.len() / 2;
    bytes[at] ^= 0x20;
    std::fs::write(&files[0], &bytes).unwrap();
    let mut bytes = std::fs::read(&files[1]).unwrap();
    let at = bytes.len() - 40;
    bytes[at..at + 4].copy_from_slice(&f32::NAN.to_le_bytes());
    std::fs::write(&files[1], &bytes).unwrap();
    let second = dir.path().join("second");
    let o = run(&second);
    let err = stderr(&o);
    assert!(o.status.success(), "{err}");
    assert_eq!(err.matches("warning:").count(), 1, "{err}");
    assert!(err.contains("2 cache entries") && err.contains("recomputed"), "{err}");
    assert_eq!(attributions(&second), attributions(&first));
    // The entries were rewritten: a third run finds nothing wrong.
    let third = dir.path().join("third");
    let o = run(&third);
    assert!(!stderr(&o).contains("warning"), "{}", stderr(&o));
    assert_eq!(gsmile(&["cache", "verify", "--cache", cache.to_str().unwrap()]).status.code(), Some(0));
}

#[test]
fn a_cache_that_cannot_be_written_degrades_to_no_cache() {
    let dir = tempfile::tempdir().unwrap();
    let blocked = dir.path().join("cache");
    std::fs::write(&blocked, b"a user's file").unwrap();
    let out = dir.path().join("e");
    let mut args = explain_args("assets/scene-01.png", "make the car red", out.to_str().unwrap());
    args.retain(|a| *a != "--no-cache" && *a != "-q");
    args.extend(["--cache", blocked.to_str().unwrap()]);
    let o = gsmile(&args);
    let err = stderr(&o);
    assert!(o.status.success(), "{err}");
    assert_eq!(err.matches("cannot be written").count(), 1, "{err}");
    assert!(out.join("explanation.json").is_file());
    assert_eq!(std::fs::read(&blocked).unwrap(), b"a user's file");
}

#[test]
fn cache_stats_verify_and_prune_look_after_a_kept_cache() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let c = cache.to_str().unwrap();
    let out = dir.path().join("e");
    let mut args = explain_args("assets/scene-01.png", "make the car red", out.to_str().unwrap());
    args.retain(|a| *a != "--no-cache");
    args.extend(["--cache", c]);
    assert!(gsmile(&args).status.success());
    let n = entries(&cache).len();
    std::fs::write(cache.join("notes.txt"), b"mine").unwrap();
    let o = gsmile(&["cache", "stats", "--cache", c]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains(&format!("{n} entries")), "{o:?}");
    std::fs::write(&entries(&cache)[0], b"damaged").unwrap();
    let o = gsmile(&["cache", "verify", "--cache", c]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stdout).contains("1 damaged"), "{o:?}");
    assert!(stderr(&o).contains("--remove"), "{}", stderr(&o));
    assert!(gsmile(&["cache", "verify", "--remove", "--cache", c]).status.success());
    assert_eq!(entries(&cache).len(), n - 1);
    let o = gsmile(&["cache", "prune", "--older-than", "1d", "--cache", c]);
    assert!(String::from_utf8_lossy(&o.stdout).contains("removed 0 entries"), "{o:?}");
    let o = gsmile(&["cache", "prune", "--older-than", "0s", "--cache", c]);
    assert!(String::from_utf8_lossy(&o.stdout).contains(&format!("removed {} entries", n - 1)), "{o:?}");
    assert_eq!(std::fs::read(cache.join("notes.txt")).unwrap(), b"mine", "only entries are removed");
    fails(&["cache", "prune", "--older-than", "30", "--cache", c], &["unit"]);
    fails(&["cache", "stats", "--cache", dir.path().join("none").to_str().unwrap()], &["no cache folder"]);
}

#[test]
fn a_model_file_outside_its_bundle_is_part_of_the_bundle_hash() {
    let dir = tempfile::tempdir().unwrap();
    let bundle = crate::common::copy_bundle("tiny-editor", dir.path());
    let elsewhere = dir.path().join("models");
    std::fs::create_dir(&elsewhere).unwrap();
    std::fs::rename(bundle.join("editor.onnx"), elsewhere.join("editor.onnx")).unwrap();
    crate::common::edit_manifest(&bundle, "file = \"editor.onnx\"", "file = \"../models/editor.onnx\"");
    let hash = || gsmile::bundle::Bundle::open(&bundle).unwrap().content_hash().unwrap();
    let before = hash();
    // Another model in the same place: the hash (and so every cache key) changes.
    let mut bytes = std::fs::read(elsewhere.join("editor.onnx")).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    std::fs::write(elsewhere.join("editor.onnx"), &bytes).unwrap();
    assert_ne!(hash(), before);
    // The same file by an absolute path counts too.
    let absolute = elsewhere.join("editor.onnx");
    crate::common::edit_manifest(
        &bundle,
        "file = \"../models/editor.onnx\"",
        &format!("file = {:?}", absolute.to_str().unwrap()),
    );
    let at_absolute = hash();
    bytes[last] ^= 1;
    std::fs::write(&absolute, &bytes).unwrap();
    assert_ne!(hash(), at_absolute);
}

#[test]
fn absurd_bundle_sizes_are_refused_before_anything_is_allocated() {
    let dir = tempfile::tempdir().unwrap();
    let editor = crate::common::copy_bundle("tiny-editor", dir.path());
    crate::common::edit_manifest(&editor, "height = 64", "height = 200000");
    let out = dir.path().join("e");
    let mut args = explain_args("assets/scene-01.png", "make the car red", out.to_str().unwrap());
    args.extend(["--editor", editor.to_str().unwrap()]);
    fails(&args, &["bundle.toml", "image.height/width", "4096"]);
    let clip = crate::common::copy_bundle("tiny-clip", dir.path());
    crate::common::edit_manifest(&clip, "max_length = 24", "max_length = 100000000");
    let embed = ["embed", "--encoder", clip.to_str().unwrap(), "--text", "a red car"];
    fails(&embed, &["tokenizer.max_length", "8192"]);
    // A CLIP preprocessor's crop.
    let hf = crate::common::copy_bundle("tiny-clip-hf", dir.path());
    let config = hf.join("preprocessor_config.json");
    let mut json: serde_json::Value = serde_json::from_slice(&std::fs::read(&config).unwrap()).unwrap();
    json["crop_size"] = serde_json::json!({"height": 200000, "width": 200000});
    std::fs::write(&config, serde_json::to_vec(&json).unwrap()).unwrap();
    let embed = ["embed", "--encoder", hf.to_str().unwrap(), "--image", "assets/scene-01.png"];
    fails(&embed, &["crop_size", "4096"]);
    assert!(!out.exists());
}

#[test]
fn error_texts_fit_the_failure() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("o.png");
    // A missing file is not a format problem.
    let missing = dir.path().join("missing.png");
    let err = fails(&edit_args(missing.to_str().unwrap(), out.to_str().unwrap()), &["missing.png", "check the path"]);
    assert!(!err.contains("PNG or JPEG"), "{err}");
    // A broken shipped bundle path is not answered with another shipped path it resembles.
    let mut args = edit_args("assets/scene-01.png", out.to_str().unwrap());
    args.extend(["--editor", "onnx/tiny-editr"]);
    let err = fails(&args, &["onnx/tiny-editr", "gsmile models onnx"]);
    assert!(!err.contains("e.g. onnx/tiny-editor"), "{err}");
    // An output folder that cannot be made is named once, with its reason once.
    let blocker = dir.path().join("file");
    std::fs::write(&blocker, b"x").unwrap();
    let target = blocker.join("sub").join("o.png");
    let err = fails(&edit_args("assets/scene-01.png", target.to_str().unwrap()), &["Not a directory"]);
    assert_eq!(err.matches("Not a directory").count(), 1, "{err}");
}
