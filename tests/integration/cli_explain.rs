//! End-to-end tests of `gsmile explain` on the shipped bundles.

use std::path::Path;

use crate::common::{gsmile, stderr};

fn explain(out: &Path, extra: &[&str]) -> std::process::Output {
    let mut args = vec![
        "explain",
        "--image",
        "assets/scene-01.png",
        "--instruction",
        "please make the car red",
        "--samples",
        "48",
        "--bootstrap",
        "50",
        "--out",
        out.to_str().unwrap(),
        "--quiet",
    ];
    args.extend_from_slice(extra);
    gsmile(&args)
}

fn json(dir: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(dir.join("explanation.json")).unwrap()).unwrap()
}

fn without_timings(mut v: serde_json::Value) -> serde_json::Value {
    v.as_object_mut().unwrap().remove("timings");
    v
}

#[test]
fn explain_writes_every_output() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("car");
    let o = explain(&out, &["--cache", dir.path().join("cache").to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    for f in ["explanation.json", "words.png", "overlays.png", "samples.png", "report.html"] {
        assert!(out.join(f).is_file(), "missing {f}");
    }
    let overlays: Vec<_> = std::fs::read_dir(out.join("overlays")).unwrap().flatten().map(|e| e.file_name()).collect();
    assert_eq!(overlays.len(), 5, "{overlays:?}");
    assert!(out.join("overlays/04-car.png").is_file());
    let v = json(&out);
    assert_eq!(v["schema"], "gsmile.explanation/1");
    assert_eq!(v["words"].as_array().unwrap().len(), 5);
    assert_eq!(v["words"][3]["text"], "car");
    assert_eq!(v["words"][3]["start"], 16);
    // 48 calls asked, but five words have only 2^5 = 32 distinct perturbed instructions.
    assert_eq!(v["samples"].as_array().unwrap().len(), 32);
    assert_eq!(v["counts"]["distinct_edits"], 32);
    assert_eq!(v["samples"][0]["mask"], "11111");
    assert_eq!(v["config"]["samples"], 48);
    assert!(v["editor"]["sha256"].as_str().unwrap().len() == 64);
    // The key words lead.
    let mut ranked: Vec<(u64, String)> = v["words"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| (w["rank"].as_u64().unwrap(), w["text"].as_str().unwrap().to_string()))
        .collect();
    ranked.sort();
    let top: std::collections::BTreeSet<&str> = ranked[..2].iter().map(|(_, t)| t.as_str()).collect();
    assert_eq!(top, ["car", "red"].into_iter().collect(), "ranking {ranked:?}");
    // No staging folders left beside the output.
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with('.'))
        .collect();
    assert!(leftovers.is_empty());
}

#[test]
fn same_seed_gives_identical_json_whatever_the_threads() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b, c) = (dir.path().join("a"), dir.path().join("b"), dir.path().join("c"));
    assert!(explain(&a, &["--no-cache", "--threads", "1"]).status.success());
    assert!(explain(&b, &["--no-cache", "--threads", "2", "--max-batch", "5"]).status.success());
    assert_eq!(without_timings(json(&a)), without_timings(json(&b)));
    // 48 calls cover all 32 masks of five words, so the seed moves only the bootstrap.
    assert!(explain(&c, &["--no-cache", "--seed", "1"]).status.success());
    assert_eq!(json(&a)["samples"], json(&c)["samples"]);
    assert_ne!(json(&a)["words"], json(&c)["words"], "the bootstrap intervals follow the seed");
}

#[test]
fn cached_rerun_does_no_editor_work_and_matches() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let cache = cache.to_str().unwrap();
    let (a, b, c) = (dir.path().join("a"), dir.path().join("b"), dir.path().join("c"));
    assert!(explain(&a, &["--cache", cache]).status.success());
    assert_eq!(json(&a)["counts"]["cached_edits"], 0);
    assert!(explain(&b, &["--cache", cache]).status.success());
    let vb = json(&b);
    assert_eq!(vb["counts"]["cached_edits"], vb["counts"]["distinct_edits"]);
    assert_eq!(without_timings(json(&a))["words"], without_timings(vb)["words"]);
    // Another kernel width re-uses every edit but changes the weights.
    assert!(explain(&c, &["--cache", cache, "--kernel-width", "3"]).status.success());
    let vc = json(&c);
    assert_eq!(vc["counts"]["cached_edits"], vc["counts"]["distinct_edits"]);
    assert_ne!(vc["samples"][1]["weight"], json(&a)["samples"][1]["weight"]);
}

#[test]
fn existing_output_needs_force_and_failures_leave_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("x");
    std::fs::create_dir(&out).unwrap();
    let o = explain(&out, &["--no-cache"]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("--force"), "{}", stderr(&o));
    // A run that fails validation writes nothing.
    let bad = dir.path().join("bad");
    let o = explain(&bad, &["--no-cache", "--distance", "sliced-wasserstein"]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("--space pixels"), "{}", stderr(&o));
    assert!(!bad.exists());
    let o = explain(&bad, &["--no-cache", "--strategy", "nonsense"]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("lime"), "{}", stderr(&o));
    let leftovers: Vec<_> = std::fs::read_dir(dir.path()).unwrap().flatten().map(|e| e.file_name()).collect();
    assert_eq!(leftovers, vec![std::ffi::OsString::from("x")]);
}

#[test]
fn pixel_space_and_mask_weights_run_without_an_encoder() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("px");
    let o = explain(
        &out,
        &[
            "--no-cache",
            "--space",
            "pixels",
            "--weighting",
            "mask-cosine",
            "--encoder",
            "/nonexistent",
            "--reference",
            "input",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let v = json(&out);
    assert!(v["encoder"].is_null());
    assert_eq!(v["kernel_width"], 0.25);
}

#[test]
fn json_flag_prints_the_explanation() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("j");
    let mut args =
        vec!["explain", "--image", "assets/scene-01.png", "--instruction", "make it night", "--samples", "16"];
    let o_str = out.to_str().unwrap().to_string();
    args.extend(["--out", &o_str, "--json", "--no-cache", "--bootstrap", "10"]);
    let o = gsmile(&args);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["instruction"], "make it night");
}

#[test]
fn force_replaces_only_what_gsmile_wrote() {
    let dir = tempfile::tempdir().unwrap();
    // A user's folder: refused with what is there, and left as it was.
    let thesis = dir.path().join("thesis");
    std::fs::create_dir(&thesis).unwrap();
    std::fs::write(thesis.join("chapter1.tex"), "years of work").unwrap();
    let o = explain(&thesis, &["--no-cache", "--force"]);
    assert!(!o.status.success());
    let err = stderr(&o);
    assert!(err.contains("not written by gsmile") && err.contains("chapter1.tex"), "{err}");
    assert_eq!(std::fs::read_to_string(thesis.join("chapter1.tex")).unwrap(), "years of work");
    // A plain file likewise.
    let file = dir.path().join("notes.txt");
    std::fs::write(&file, "mine").unwrap();
    let o = explain(&file, &["--no-cache", "--force"]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("a file, not a folder"), "{}", stderr(&o));
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "mine");
    // gsmile's own output carries the marker, and --force replaces it without leftovers.
    let out = dir.path().join("mine");
    assert!(explain(&out, &["--no-cache"]).status.success());
    let marker = std::fs::read_to_string(out.join(gsmile::io::OWNER_MARKER)).unwrap();
    assert!(marker.contains("gsmile explain"), "{marker}");
    std::fs::write(out.join("stale.txt"), "from an older run").unwrap();
    assert!(explain(&out, &["--no-cache", "--force"]).status.success());
    assert!(!out.join("stale.txt").exists(), "the old folder was replaced whole");
    let hidden: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with('.'))
        .map(|e| e.file_name())
        .collect();
    assert!(hidden.is_empty(), "leftovers: {hidden:?}");
}
