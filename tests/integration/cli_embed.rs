//! End-to-end tests of `gsmile embed` on the shipped CLIP-style encoder.

use crate::common::{gsmile, stderr};

#[test]
fn embed_prints_unit_embeddings_and_matching_captions_score_highest() {
    let o = gsmile(&[
        "embed",
        "--encoder",
        "onnx/tiny-clip",
        "--image",
        "assets/scene-01.png",
        "--text",
        "a scene at night",
        "--text",
        "a house",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let json: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let emb = json["images"][0]["embedding"].as_array().unwrap();
    assert_eq!(emb.len(), 64);
    let norm: f64 = emb.iter().map(|v| v.as_f64().unwrap().powi(2)).sum::<f64>().sqrt();
    assert!((norm - 1.0).abs() < 1e-3, "image embedding norm {norm}");
    let sims = json["cosine_image_text"][0].as_array().unwrap();
    assert_eq!(sims.len(), 2);
    // scene-01 is a daytime scene with a house.
    assert!(sims[1].as_f64().unwrap() > sims[0].as_f64().unwrap(), "a day scene matched 'night' better: {sims:?}");
}

#[test]
fn embed_without_inputs_fails_clearly() {
    let o = gsmile(&["embed", "--encoder", "onnx/tiny-clip"]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("--image"), "{}", stderr(&o));
}

#[test]
fn embed_writes_json_file_atomically() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("e.json");
    let o = gsmile(&["embed", "--text", "a red car", "--out", out.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let json: serde_json::Value = serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
    assert_eq!(json["texts"][0]["text"], "a red car");
}
