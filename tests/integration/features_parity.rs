//! Feature encoders (`kind = "features"`): the random-weight `onnx/tiny-dinov2` against
//! transformers' own `Dinov2Model` and `BitImageProcessor`
//! (`tests/fixtures/features/make_features.py` wrote `expected.json`).

use gsmile::bundle::Bundle;
use gsmile::encoder::{FeatureEncoder, ImageEncoder};
use gsmile::runtime::RuntimeOptions;
use ndarray::{Array3, Array4, ArrayView1, Axis};

use crate::common::repo;

#[derive(serde::Deserialize)]
struct Case {
    image: String,
    mean: Vec<f32>,
    cls: Vec<f32>,
    #[serde(default)]
    patches: Vec<Vec<f32>>,
}

#[derive(serde::Deserialize)]
struct Expected {
    cases: Vec<Case>,
}

fn expected() -> Expected {
    serde_json::from_slice(&std::fs::read(repo("tests/fixtures/features/expected.json")).unwrap()).unwrap()
}

fn encoder(dir: &std::path::Path) -> FeatureEncoder {
    FeatureEncoder::load(&Bundle::open(dir).unwrap(), &RuntimeOptions::default()).unwrap()
}

fn image(rel: &str) -> Array4<f32> {
    gsmile::imaging::to_tensor(&gsmile::imaging::load_rgb(&repo(rel)).unwrap()).insert_axis(Axis(0))
}

fn cosine(a: ArrayView1<f32>, b: &[f32]) -> f64 {
    let (mut ab, mut aa, mut bb) = (0.0f64, 0.0f64, 0.0f64);
    for (&x, &y) in a.iter().zip(b) {
        ab += f64::from(x) * f64::from(y);
        aa += f64::from(x) * f64::from(x);
        bb += f64::from(y) * f64::from(y);
    }
    ab / (aa.sqrt() * bb.sqrt())
}

/// A copy of tiny-dinov2 with `pooling` replaced.
fn with_pooling(pooling: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let src = repo("onnx/tiny-dinov2");
    for f in ["model.onnx", "preprocessor_config.json"] {
        std::fs::copy(src.join(f), dir.path().join(f)).unwrap();
    }
    let toml = std::fs::read_to_string(src.join("bundle.toml")).unwrap();
    assert!(toml.contains("pooling = \"mean\""));
    std::fs::write(
        dir.path().join("bundle.toml"),
        toml.replace("pooling = \"mean\"", &format!("pooling = \"{pooling}\"")),
    )
    .unwrap();
    dir
}

#[test]
fn tiny_dinov2_pooled_features_equal_transformers() {
    let e = expected();
    assert_eq!(e.cases.len(), 6);
    let mean = encoder(&repo("onnx/tiny-dinov2"));
    let cls_dir = with_pooling("cls");
    let cls = encoder(cls_dir.path());
    assert_eq!(mean.dim(), 32);
    let mut worst = 1.0f64;
    for case in &e.cases {
        let x = image(&case.image);
        let m = mean.embed_images(x.view()).unwrap();
        let c = cls.embed_images(x.view()).unwrap();
        for (got, want, what) in [(m.row(0), &case.mean, "mean"), (c.row(0), &case.cls, "cls")] {
            let cos = cosine(got, want);
            worst = worst.min(cos);
            assert!(cos >= 0.9999, "{} {what}: cosine {cos} to transformers'", case.image);
        }
    }
    println!("worst cosine to transformers: {worst:.8}");
}

#[test]
fn tiny_dinov2_patch_tokens_equal_transformers_and_leave_the_cls_token_out() {
    let e = expected();
    let case = &e.cases[0];
    let enc = encoder(&repo("onnx/tiny-dinov2"));
    assert!(enc.has_tokens());
    let tokens: Array3<f32> = enc.embed_tokens(image(&case.image).view()).unwrap();
    assert_eq!(tokens.dim(), (1, case.patches.len(), 32), "256 patches of 16x16, the CLS token left out");
    for (k, want) in case.patches.iter().enumerate() {
        let cos = cosine(tokens.index_axis(Axis(0), 0).row(k), want);
        assert!(cos >= 0.9999, "patch {k}: cosine {cos}");
    }
}

#[test]
fn alexnet_features_are_real_imagenet_features_pooled_over_positions() {
    let enc = encoder(&repo("onnx/alexnet-features"));
    assert_eq!(enc.dim(), 256);
    let a = image("assets/scene-01.png");
    let pooled = enc.embed_images(a.view()).unwrap();
    let tokens = enc.embed_tokens(a.view()).unwrap();
    assert_eq!(tokens.dim(), (1, 169, 256), "13x13 positions of relu5 at 224");
    let mean = tokens.index_axis(Axis(0), 0).mean_axis(Axis(0)).unwrap();
    let gap = pooled.row(0).iter().zip(mean.iter()).fold(0.0f32, |g, (x, y)| g.max((x - y).abs()));
    assert!(gap < 1e-5, "pooling is the mean over positions ({gap})");
    assert!(pooled.iter().all(|&v| v >= 0.0), "relu5 features are non-negative");
    assert!(pooled.iter().filter(|&&v| v > 0.0).count() > 64, "a real image lights up many channels");
}

#[test]
fn features_bundles_are_checked_field_by_field() {
    let dir = with_pooling("cls");
    let toml = std::fs::read_to_string(dir.path().join("bundle.toml")).unwrap();
    let cases = [
        (toml.replace("dim = 32", "dim = 0"), "features.dim"),
        (toml.replace("dim = 32", "dim = 100000000000"), "features.dim"),
        (toml.replace("prefix_tokens = 1", "prefix_tokens = 0"), "features.prefix_tokens"),
        (toml.replace("prefix_tokens = 1", "prefix_tokens = 1000"), "features.prefix_tokens"),
        (toml.replace("layout = \"tokens\"", "layout = \"channels\""), "features.pooling"),
        (toml.replace("file = \"model.onnx\"", "file = \"missing.onnx\""), "features.file"),
        (
            toml.replace("preprocessor = \"preprocessor_config.json\"", "preprocessor = \"nope.json\""),
            "features.preprocessor",
        ),
    ];
    for (text, field) in cases {
        std::fs::write(dir.path().join("bundle.toml"), &text).unwrap();
        let err = Bundle::open(dir.path()).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(err.contains(field), "{field}: {err}");
    }
    // A graph whose output is not what the manifest says is reported when it loads.
    std::fs::write(dir.path().join("bundle.toml"), toml.replace("dim = 32", "dim = 48")).unwrap();
    let enc = encoder(dir.path());
    let err = enc.embed_images(image("assets/scene-01.png").view()).unwrap_err().to_string();
    assert!(err.contains("features.output") || err.contains("48"), "{err}");
}

fn explain(dir: &std::path::Path, extra: &[&str]) -> std::process::Output {
    let out = dir.join("out");
    let mut args = vec![
        "explain",
        "--image",
        "assets/scene-01.png",
        "--instruction",
        "make the car red",
        "--samples",
        "12",
        "--no-spatial",
        "--no-cache",
        "-q",
        "--out",
        out.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    crate::common::gsmile(&args)
}

#[test]
fn explain_measures_change_on_features_with_cosine_and_patch_ot() {
    for distance in ["cosine", "patch-ot"] {
        let dir = tempfile::tempdir().unwrap();
        let o = explain(dir.path(), &["--encoder", "onnx/alexnet-features", "--distance", distance]);
        assert!(o.status.success(), "{distance}: {}", crate::common::stderr(&o));
        let e: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(dir.path().join("out/explanation.json")).unwrap()).unwrap();
        assert_eq!(e["encoder"]["name"], "alexnet-features");
        assert_eq!(e["config"]["distance"], distance);
        let attributions: Vec<f64> =
            e["words"].as_array().unwrap().iter().map(|w| w["attribution"].as_f64().unwrap()).collect();
        assert!(attributions.iter().any(|a| a.abs() > 0.0), "{distance}: {attributions:?}");
    }
}

#[test]
fn patch_ot_without_tokens_and_text_weights_without_a_text_tower_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let o = explain(dir.path(), &["--encoder", "onnx/tiny-clip", "--distance", "patch-ot"]);
    assert!(!o.status.success());
    let err = crate::common::stderr(&o);
    assert!(err.contains("--distance") && err.contains("features encoder"), "{err}");
    let o = explain(dir.path(), &["--encoder", "onnx/tiny-dinov2", "--weighting", "text-wasserstein"]);
    assert!(!o.status.success());
    let err = crate::common::stderr(&o);
    assert!(err.contains("features bundle") && err.contains("--weighting"), "{err}");
    assert!(!dir.path().join("out").exists(), "no half-written output");
}
