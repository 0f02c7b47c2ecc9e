//! `--method`, the warnings, the refusals and `--samples auto` on the shipped bundles, and
//! `gsmile evaluate`'s method sweep.

use crate::common::{gsmile, stderr};

fn explain_json(image: &str, instruction: &str, extra: &[&str]) -> (std::process::Output, Option<serde_json::Value>) {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("x");
    let mut args = vec![
        "explain",
        "--image",
        image,
        "--instruction",
        instruction,
        "--bootstrap",
        "40",
        "--no-spatial",
        "--no-cache",
        "--out",
        out.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    let o = gsmile(&args);
    let json = std::fs::read(out.join("explanation.json")).ok().map(|b| serde_json::from_slice(&b).unwrap());
    (o, json)
}

fn codes(v: &serde_json::Value) -> Vec<String> {
    v["warnings"].as_array().unwrap().iter().map(|w| w["code"].as_str().unwrap().to_string()).collect()
}

fn attributions(v: &serde_json::Value) -> Vec<f64> {
    v["words"].as_array().unwrap().iter().map(|w| w["attribution"].as_f64().unwrap()).collect()
}

#[test]
fn every_method_explains_and_records_itself() {
    let mut exact = None;
    for method in ["gsmile", "lime", "kernel-shap", "exact", "banzhaf", "smile-paper"] {
        let (o, v) =
            explain_json("assets/scene-01.png", "please make the car red", &["--method", method, "--samples", "32"]);
        assert!(o.status.success(), "{method}: {}", stderr(&o));
        let v = v.unwrap();
        assert_eq!(v["config"]["method"], method);
        assert!(v["counts"]["distinct_edits"].as_u64().unwrap() <= 32, "{method} spent more calls than asked");
        let a = attributions(&v);
        let car = a[3].max(a[4]);
        assert!(a[..3].iter().all(|&x| x < car), "{method}: a key word leads ({a:?})");
        let stdout = String::from_utf8_lossy(&o.stdout);
        assert!(stdout.starts_with(&format!("{method} word attributions")), "{stdout}");
        if method == "exact" {
            exact = Some(a.clone());
            assert_eq!(v["exact"], true);
            let sum: f64 = a.iter().sum();
            assert!(
                (sum - v["edit_change"].as_f64().unwrap()).abs() < 1e-9,
                "Shapley values sum to f(full) − f(empty)"
            );
            let shares: f64 = v["words"].as_array().unwrap().iter().map(|w| w["share"].as_f64().unwrap()).sum();
            assert!((shares - 1.0).abs() < 1e-9, "shares of an efficient method sum to 1: {shares}");
        }
        if method == "smile-paper" {
            assert!(v["samples"][1]["distance_p_value"].as_f64().is_some());
        }
    }
    let (_, ks) =
        explain_json("assets/scene-01.png", "please make the car red", &["--method", "kernel-shap", "--samples", "32"]);
    // 32 calls cover all 2^5 coalitions: Kernel SHAP is then the exact Shapley value.
    let ks = attributions(&ks.unwrap());
    for (a, b) in ks.iter().zip(exact.as_ref().unwrap()) {
        assert!((a - b).abs() < 1e-9, "Kernel SHAP over every coalition is the Shapley value: {ks:?} vs {exact:?}");
    }
}

#[test]
fn warnings_fire_on_unknown_words_no_edit_and_one_word() {
    let (o, v) = explain_json("assets/scene-01.png", "make the automobile crimson", &["--samples", "12"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(codes(&v.unwrap()), ["unknown-words"]);
    assert!(String::from_utf8_lossy(&o.stdout).contains("warning (unknown-words)"));

    // scene-05 has no house: the editor barely changes it.
    let (o, v) = explain_json("assets/scene-05.png", "make the house blue", &["--samples", "12"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(codes(&v.unwrap()), ["no-edit"]);
    let (_, v) = explain_json("assets/scene-05.png", "make the car red", &["--samples", "12"]);
    assert!(codes(&v.unwrap()).is_empty(), "a performed edit has no warning");

    let (o, v) = explain_json("assets/scene-01.png", "brighten", &["--samples", "8"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v = v.unwrap();
    assert!(codes(&v).contains(&"one-word".to_string()));
    assert!(v["words"][0]["ci_low"].is_null() && v["words"][0]["p_value"].is_null(), "no interval for one word");
}

#[test]
fn too_few_distinct_samples_are_refused_with_a_fix_before_any_edit() {
    let (o, v) = explain_json("assets/scene-01.png", "please make the car red", &["--samples", "4"]);
    assert!(!o.status.success());
    assert!(v.is_none(), "no output written");
    let err = stderr(&o);
    assert!(err.contains("4 distinct samples cannot fit 5 words") && err.contains("--samples"), "{err}");
    // Exact values of long instructions need their whole budget.
    let (o, _) =
        explain_json("assets/scene-01.png", "please make the car red", &["--method", "exact", "--samples", "16"]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("32"), "{}", stderr(&o));
    // gsmile's knobs are refused for methods that fix their own.
    let (o, _) =
        explain_json("assets/scene-01.png", "please make the car red", &["--method", "lime", "--kernel-width", "2"]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("--kernel-width") && stderr(&o).contains("--method gsmile"), "{}", stderr(&o));
    // A kernel too narrow to weigh d + 1 samples is refused, naming the flag.
    let (o, _) = explain_json("assets/scene-01.png", "please make the car red", &["--kernel-width", "0.05"]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("(--kernel-width 0.05) leaves 1 of 32"), "{}", stderr(&o));
    // Lists are for evaluate.
    let (o, _) = explain_json("assets/scene-01.png", "please make the car red", &["--samples", "16,32"]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("gsmile evaluate"), "{}", stderr(&o));
}

#[test]
fn auto_stops_before_the_maximum_on_a_dominant_word_and_says_why() {
    let (o, v) = explain_json(
        "assets/scene-01.png",
        "could you please make the car red now",
        &["--samples", "auto", "--max-samples", "200"],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let v = v.unwrap();
    let budget = &v["budget"];
    let stopped = budget["stopped"].as_str().unwrap();
    assert!(stopped == "settled" || stopped == "agreed", "{budget}");
    let calls = v["counts"]["distinct_edits"].as_u64().unwrap();
    assert!(calls < 200, "{calls} calls");
    let rounds = budget["rounds"].as_array().unwrap();
    assert_eq!(rounds.last().unwrap().as_u64().unwrap(), calls);
    assert_eq!(rounds[0], 10, "the first round is the full, the empty and every single removal (8 + 2)");
    let p = budget["change_probability"].as_array().unwrap();
    if stopped == "settled" {
        assert!(p.last().unwrap().as_f64().unwrap() < 0.05);
    } else {
        assert!(rounds.len() >= 2, "agreeing needs two rounds");
    }
    // The leading words are the key words.
    let mut words: Vec<(f64, String)> = v["words"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| (w["attribution"].as_f64().unwrap(), w["text"].as_str().unwrap().to_string()))
        .collect();
    words.sort_by(|a, b| b.0.total_cmp(&a.0));
    let lead: std::collections::BTreeSet<&str> = words[..2].iter().map(|w| w.1.as_str()).collect();
    assert_eq!(lead, ["car", "red"].into_iter().collect(), "{words:?}");
    assert!(String::from_utf8_lossy(&o.stdout).contains("adaptive budget"), "the terminal says so");
}

#[test]
fn evaluate_sweeps_methods_and_budgets_against_editor_calls() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("sweep");
    let cache = dir.path().join("cache");
    let o = gsmile(&[
        "evaluate",
        "--suite",
        "scenarios/smoke",
        "--method",
        "gsmile",
        "--method",
        "lime",
        "--samples",
        "12,16",
        "--repeats",
        "1",
        "--held-out",
        "4",
        "--random-curves",
        "2",
        "--out",
        out.to_str().unwrap(),
        "--cache",
        cache.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    for f in [
        "gsmile-12/rows.csv",
        "lime-16/rows.csv",
        "compare-12/compare.md",
        "sweep.csv",
        "sweep.md",
        "plots/sweep-roc_auc.png",
    ] {
        assert!(out.join(f).is_file(), "missing {f}");
    }
    let csv = std::fs::read_to_string(out.join("sweep.csv")).unwrap();
    let calls = |method: &str, budget: &str| -> f64 {
        let line =
            csv.lines().find(|l| l.starts_with(&format!("{method},{budget},")) && l.contains(",roc_auc,")).unwrap();
        line.split(',').nth(2).unwrap().parse().unwrap()
    };
    assert!(calls("gsmile", "12") <= 12.0 && calls("gsmile", "16") > calls("gsmile", "12"), "{csv}");
    assert!(calls("lime", "16") <= 16.0);
    let table = String::from_utf8_lossy(&o.stdout);
    assert!(table.contains("gsmile") && table.contains("lime") && table.contains("calls"), "{table}");
    let rows = std::fs::read_to_string(out.join("gsmile-16/rows.csv")).unwrap();
    assert!(rows.lines().next().unwrap().contains("att_auroc"), "the papers' metric forms are columns");
}

#[test]
fn methods_share_edits_through_the_cache() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let run = |method: &str, out: &str| -> serde_json::Value {
        let out = dir.path().join(out);
        let o = gsmile(&[
            "explain",
            "--image",
            "assets/scene-01.png",
            "--instruction",
            "please make the car red",
            "--method",
            method,
            "--samples",
            "32",
            "--bootstrap",
            "0",
            "--no-spatial",
            "--cache",
            cache.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ]);
        assert!(o.status.success(), "{}", stderr(&o));
        serde_json::from_slice(&std::fs::read(out.join("explanation.json")).unwrap()).unwrap()
    };
    let lime = run("lime", "a");
    assert_eq!(lime["counts"]["cached_edits"], 0);
    // Exact values need all 32 masks; LIME's are among them and come from the cache.
    let exact = run("exact", "b");
    assert_eq!(exact["counts"]["distinct_edits"], 32);
    assert_eq!(exact["counts"]["cached_edits"], lime["counts"]["distinct_edits"]);
    // Now every mask is cached: Kernel SHAP pays nothing.
    let ks = run("kernel-shap", "c");
    assert_eq!(ks["counts"]["cached_edits"], ks["counts"]["distinct_edits"]);
}
