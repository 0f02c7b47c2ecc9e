//! End-to-end tests of `gsmile edit` and `gsmile models` on the shipped bundles.

use crate::common::{copy_bundle, edit_manifest, gsmile, mask, repo, stderr};

fn edit(out: &std::path::Path, instruction: &str) -> image::RgbImage {
    let o = gsmile(&[
        "edit",
        "--image",
        "assets/scene-01.png",
        "--instruction",
        instruction,
        "--editor",
        "onnx/tiny-editor",
        "--out",
        out.to_str().unwrap(),
        "--quiet",
    ]);
    assert!(o.status.success(), "edit failed: {}", stderr(&o));
    image::open(out).unwrap().to_rgb8()
}

fn mean_abs_diff(a: &image::RgbImage, b: &image::RgbImage) -> f64 {
    let s: f64 = a.as_raw().iter().zip(b.as_raw()).map(|(x, y)| (f64::from(*x) - f64::from(*y)).abs()).sum();
    s / a.as_raw().len() as f64 / 255.0
}

#[test]
fn make_the_car_red_reddens_the_car_and_little_else() {
    let dir = tempfile::tempdir().unwrap();
    let input = image::open(repo("assets/scene-01.png")).unwrap().to_rgb8();
    let out = edit(&dir.path().join("red.png"), "make the car red");
    assert_eq!(out.dimensions(), input.dimensions());
    let car = mask("scene-01", "car");
    let (mut inside, mut n_in, mut outside, mut n_out) = (0.0, 0.0, 0.0, 0.0);
    let mut redness = 0.0;
    for (x, y, px) in out.enumerate_pixels() {
        let before = input.get_pixel(x, y);
        let change: f64 = (0..3).map(|c| (f64::from(px[c]) - f64::from(before[c])).abs() / 255.0).sum::<f64>() / 3.0;
        if car[y as usize][x as usize] {
            inside += change;
            n_in += 1.0;
            redness += (f64::from(px[0]) - f64::from(px[1]).max(f64::from(px[2]))) / 255.0;
        } else {
            outside += change;
            n_out += 1.0;
        }
    }
    let (inside, outside, redness) = (inside / n_in, outside / n_out, redness / n_in);
    assert!(redness > 0.4, "car pixels are not red after the edit: mean R - max(G,B) = {redness:.3}");
    assert!(inside > 5.0 * outside, "change inside the car {inside:.4} vs outside {outside:.4}");
}

#[test]
fn dropping_a_key_word_changes_the_edit_more_than_dropping_filler() {
    let dir = tempfile::tempdir().unwrap();
    let full = edit(&dir.path().join("full.png"), "please make the car red");
    let no_key = edit(&dir.path().join("nokey.png"), "please make the car");
    let no_filler = edit(&dir.path().join("nofiller.png"), "make the car red");
    let key = mean_abs_diff(&full, &no_key);
    let filler = mean_abs_diff(&full, &no_filler);
    assert!(key > 5.0 * filler.max(1e-4), "dropping 'red' changed {key:.5}, dropping 'please' {filler:.5}");
}

#[test]
fn model_size_flag_keeps_editor_resolution() {
    let dir = tempfile::tempdir().unwrap();
    // Upscale an asset so the editor has to resize in and out.
    let big = dir.path().join("big.png");
    let img = image::open(repo("assets/scene-01.png")).unwrap();
    img.resize_exact(96, 80, image::imageops::FilterType::Nearest).save(&big).unwrap();
    let out = dir.path().join("out.png");
    let args = [
        "edit",
        "--image",
        big.to_str().unwrap(),
        "--instruction",
        "make it night",
        "--out",
        out.to_str().unwrap(),
        "-q",
    ];
    assert!(gsmile(&args).status.success());
    assert_eq!(image::open(&out).unwrap().to_rgb8().dimensions(), (96, 80));
    let mut args = args.to_vec();
    args.extend(["--model-size", "--force"]);
    assert!(gsmile(&args).status.success());
    assert_eq!(image::open(&out).unwrap().to_rgb8().dimensions(), (64, 64));
}

/// Runs an edit expected to fail; checks the exit code, the message and that no output appeared.
fn expect_failure(args: &[&str], out: &std::path::Path, needles: &[&str]) {
    let o = gsmile(args);
    let err = stderr(&o);
    assert!(!o.status.success(), "expected failure, got success for {args:?}");
    assert!(!err.contains("panicked"), "panic instead of an error: {err}");
    for n in needles {
        assert!(err.contains(n), "error lacks {n:?}: {err}");
    }
    assert!(!out.exists(), "output file left behind after a failure");
}

fn edit_args<'a>(image: &'a str, instruction: &'a str, editor: &'a str, out: &'a str) -> Vec<&'a str> {
    vec!["edit", "--image", image, "--instruction", instruction, "--editor", editor, "--out", out]
}

#[test]
fn missing_bundle_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("o.png");
    let o = out.to_str().unwrap();
    expect_failure(
        &edit_args("assets/scene-01.png", "make the car red", "onnx/no-such-bundle", o),
        &out,
        &["onnx/no-such-bundle", "Fix"],
    );
}

#[test]
fn manifest_naming_a_missing_tensor_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let bundle = copy_bundle("tiny-editor", dir.path());
    edit_manifest(&bundle, "image_input = \"image\"", "image_input = \"pixels\"");
    let out = dir.path().join("o.png");
    let args = edit_args("assets/scene-01.png", "make the car red", bundle.to_str().unwrap(), out.to_str().unwrap());
    expect_failure(&args, &out, &["pixels", "editor.image_input", "editor.onnx", "Fix"]);
}

#[test]
fn wrong_rank_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let bundle = copy_bundle("tiny-editor", dir.path());
    // Point the image input at the 2-D token ids: right name, wrong rank and type.
    edit_manifest(&bundle, "image_input = \"image\"", "image_input = \"input_ids\"");
    let out = dir.path().join("o.png");
    let args = edit_args("assets/scene-01.png", "make the car red", bundle.to_str().unwrap(), out.to_str().unwrap());
    expect_failure(&args, &out, &["input_ids", "rank 4", "rank 2"]);
}

#[test]
fn corrupt_graph_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let bundle = copy_bundle("tiny-editor", dir.path());
    std::fs::write(bundle.join("editor.onnx"), b"this is not onnx").unwrap();
    let out = dir.path().join("o.png");
    let args = edit_args("assets/scene-01.png", "make the car red", bundle.to_str().unwrap(), out.to_str().unwrap());
    expect_failure(&args, &out, &["editor.onnx"]);
}

#[test]
fn non_image_input_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let fake = dir.path().join("fake.png");
    std::fs::write(&fake, b"GIF89a garbage that is no image").unwrap();
    let out = dir.path().join("o.png");
    expect_failure(
        &edit_args(fake.to_str().unwrap(), "make the car red", "onnx/tiny-editor", out.to_str().unwrap()),
        &out,
        &["fake.png", "Fix"],
    );
    let missing = dir.path().join("missing.png");
    expect_failure(
        &edit_args(missing.to_str().unwrap(), "make the car red", "onnx/tiny-editor", out.to_str().unwrap()),
        &out,
        &["missing.png"],
    );
}

#[test]
fn empty_instruction_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("o.png");
    expect_failure(
        &edit_args("assets/scene-01.png", "   ", "onnx/tiny-editor", out.to_str().unwrap()),
        &out,
        &["--instruction", "empty"],
    );
}

#[test]
fn instruction_over_the_token_limit_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("o.png");
    let long = "please ".repeat(30) + "make the car red";
    expect_failure(
        &edit_args("assets/scene-01.png", &long, "onnx/tiny-editor", out.to_str().unwrap()),
        &out,
        &["tokens", "at most 24", "shorten"],
    );
}

#[test]
fn unsupported_output_format_is_refused_before_work() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("o.tiff2");
    expect_failure(
        &edit_args("assets/scene-01.png", "make the car red", "onnx/tiny-editor", out.to_str().unwrap()),
        &out,
        &["o.tiff2", ".png"],
    );
}

#[test]
fn wrong_kind_of_bundle_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("o.png");
    expect_failure(
        &edit_args("assets/scene-01.png", "make the car red", "onnx/tiny-clip", out.to_str().unwrap()),
        &out,
        &["clip", "--editor"],
    );
}

#[test]
fn models_lists_shipped_bundles_with_contracts() {
    let o = gsmile(&["models"]);
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{}", stderr(&o));
    for needle in ["tiny-editor", "tiny-clip", "in  image: float32 [N,3,64,64]", "out text_embeds: float32 [N,64]"] {
        assert!(text.contains(needle), "models output lacks {needle:?}:\n{text}");
    }
}

#[test]
fn models_reports_a_broken_bundle_and_fails() {
    let dir = tempfile::tempdir().unwrap();
    let bundle = copy_bundle("tiny-editor", dir.path());
    edit_manifest(&bundle, "output = \"edited\"", "output = \"result\"");
    let o = gsmile(&["models", dir.path().to_str().unwrap()]);
    assert!(!o.status.success());
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(text.contains("BROKEN") && text.contains("result"), "{text}");
}
