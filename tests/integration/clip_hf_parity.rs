//! A transformers CLIP export (fp32 and fp16) gives the embeddings transformers gives.
//!
//! Fixtures in `tests/fixtures/clip_hf/` were made by
//! `tests/fixtures/clip_hf/make_clip_hf_fixtures.py` from the random-weight CLIP that
//! `onnx/make_tiny_clip_hf.py` builds: transformers' `CLIPImageProcessorPil` + `CLIPModel`
//! features on PNGs of several sizes, aspect ratios and colour modes, and on texts.

use crate::common::{self, repo};
use gsmile::bundle::Bundle;
use gsmile::encoder::{ClipEncoder, TextEncoder};
use gsmile::imaging;
use gsmile::runtime::RuntimeOptions;
use ndarray::{Array1, Array2};
use ndarray_npy::read_npy;

#[derive(serde::Deserialize)]
struct Cases {
    images: Vec<ImageCase>,
    texts: Vec<TextCase>,
}

#[derive(serde::Deserialize)]
struct ImageCase {
    id: String,
    files: std::collections::HashMap<String, String>,
}

#[derive(serde::Deserialize)]
struct TextCase {
    id: String,
    text: String,
    truncated: bool,
    files: std::collections::HashMap<String, String>,
}

fn fixture(rel: &str) -> std::path::PathBuf {
    repo("tests/fixtures/clip_hf").join(rel)
}

fn cases() -> Cases {
    serde_json::from_slice(&std::fs::read(fixture("cases.json")).unwrap()).unwrap()
}

fn encoder(name: &str) -> ClipEncoder {
    ClipEncoder::load(&Bundle::open(repo(&format!("onnx/{name}"))).unwrap(), &RuntimeOptions::default()).unwrap()
}

fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let dot: f64 = a.iter().zip(b).map(|(x, y)| f64::from(*x) * f64::from(*y)).sum();
    let na: f64 = a.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt();
    let nb: f64 = b.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt();
    dot / (na * nb)
}

fn reference(rel: &str) -> Vec<f32> {
    let a: Array2<f32> = read_npy(fixture(rel)).unwrap();
    a.iter().copied().collect()
}

fn check_images(bundle: &str, min_cosine: f64, max_abs: f32) {
    let enc = encoder(bundle);
    let cases = cases();
    assert!(cases.images.len() >= 5, "too few image cases");
    let pictures: Vec<_> = cases.images.iter().map(|c| imaging::load_rgb(&fixture(&c.files["png"])).unwrap()).collect();
    let sizes: std::collections::HashSet<_> = pictures.iter().map(|p| (p.width(), p.height())).collect();
    assert!(sizes.len() >= 5, "fixtures should cover several sizes: {sizes:?}");
    let got = enc.embed_pictures(&pictures).unwrap();
    let (mut worst_cos, mut worst_diff) = (1.0f64, 0.0f32);
    for (case, row) in cases.images.iter().zip(got.rows()) {
        let want = reference(&case.files["image_embeds_torch"]);
        let row = row.to_vec();
        let cos = cosine(&row, &want);
        let diff = row.iter().zip(&want).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
        assert!(cos >= min_cosine && diff <= max_abs, "{bundle} {}: cosine {cos}, max abs diff {diff}", case.id);
        (worst_cos, worst_diff) = (worst_cos.min(cos), worst_diff.max(diff));
    }
    eprintln!("{bundle} images: min cosine {worst_cos:.9}, max abs diff {worst_diff:.2e}");
}

#[test]
fn fp32_image_embeddings_equal_transformers() {
    check_images("tiny-clip-hf", 0.9999, 1e-4);
}

#[test]
fn fp16_image_embeddings_match_transformers_within_half_precision() {
    check_images("tiny-clip-hf-fp16", 0.9999, 3e-2);
}

fn check_texts(bundle: &str, min_cosine: f64, max_abs: f32) {
    let enc = encoder(bundle);
    let cases = cases();
    let mut checked = 0;
    for case in &cases.texts {
        if case.truncated {
            // transformers truncates silently; gsmile refuses, because dropped words would corrupt attributions.
            let err = enc.embed_texts(&[case.text.as_str()]).unwrap_err().to_string();
            assert!(err.contains("tokens") && err.contains("Fix"), "{err}");
            continue;
        }
        let ids: Array2<i64> = read_npy(fixture(&case.files["input_ids"])).unwrap();
        let mask: Array2<i64> = read_npy(fixture(&case.files["attention_mask"])).unwrap();
        let enc_ids = enc.tokenizer().encode(&[case.text.as_str()]).unwrap();
        assert_eq!(enc_ids.input_ids, ids, "{bundle} {}: token ids", case.id);
        assert_eq!(enc_ids.attention_mask, mask, "{bundle} {}: attention mask", case.id);
        let got: Array1<f32> = enc.embed_texts(&[case.text.as_str()]).unwrap().row(0).to_owned();
        let want = reference(&case.files["text_embeds_torch"]);
        let cos = cosine(got.as_slice().unwrap(), &want);
        let diff = got.iter().zip(&want).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
        assert!(cos >= min_cosine && diff <= max_abs, "{bundle} {}: cosine {cos}, max abs diff {diff}", case.id);
        checked += 1;
    }
    assert!(checked >= 6, "only {checked} texts checked");
}

#[test]
fn fp32_text_embeddings_and_ids_equal_transformers() {
    check_texts("tiny-clip-hf", 0.9999, 1e-4);
}

#[test]
fn fp16_text_embeddings_match_transformers_within_half_precision() {
    check_texts("tiny-clip-hf-fp16", 0.9999, 3e-2);
}

#[test]
fn embed_cli_runs_on_a_real_export() {
    let out = common::gsmile(&[
        "embed",
        "--encoder",
        "onnx/tiny-clip-hf",
        "--image",
        "tests/fixtures/clip_hf/images/gray37x80.png",
        "--text",
        "make the car red",
    ]);
    assert!(out.status.success(), "{}", common::stderr(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["images"][0]["embedding"].as_array().unwrap().len(), 32);
    assert_eq!(v["cosine_image_text"][0].as_array().unwrap().len(), 1);
}
