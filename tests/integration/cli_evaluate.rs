//! End-to-end tests of `gsmile evaluate`, `merge` and `compare` on the smoke suite.

use crate::common::{copy_bundle, edit_manifest, gsmile, stderr};

const BUDGET: [&str; 8] = ["--samples", "16", "--repeats", "1", "--held-out", "4", "--random-curves", "3"];

fn evaluate(out: &std::path::Path, cache: &std::path::Path, extra: &[&str]) -> std::process::Output {
    let mut args = vec![
        "evaluate",
        "--suite",
        "scenarios/smoke",
        "--out",
        out.to_str().unwrap(),
        "--cache",
        cache.to_str().unwrap(),
    ];
    args.extend_from_slice(&BUDGET);
    args.extend_from_slice(extra);
    gsmile(&args)
}

#[test]
fn evaluate_resumes_and_shards_merge_from_the_cli() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let full = dir.path().join("full");
    let o = evaluate(&full, &cache, &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    let table = String::from_utf8_lossy(&o.stdout);
    assert!(table.contains("6 scenarios (6 evaluated, 0 reused)") && table.contains("precision_at_k"), "{table}");
    for f in ["rows.csv", "rows.jsonl", "slices.csv", "slices.md", "report.html", "run.json"] {
        assert!(full.join(f).is_file(), "missing {f}");
    }
    // Running again reuses every saved scenario.
    let o = evaluate(&full, &cache, &[]);
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("(0 evaluated, 6 reused)"),
        "{}",
        String::from_utf8_lossy(&o.stdout)
    );
    // Three shards merged give the single run's tables.
    let mut shards = Vec::new();
    for i in 0..3 {
        let out = dir.path().join(format!("shard{i}"));
        let shard = format!("{i}/3");
        let o = evaluate(&out, &cache, &["--shard", &shard]);
        assert!(o.status.success(), "{}", stderr(&o));
        shards.push(out);
    }
    let merged = dir.path().join("merged");
    let mut args = vec!["merge", "--out", merged.to_str().unwrap()];
    args.extend(shards.iter().map(|p| p.to_str().unwrap()));
    let o = gsmile(&args);
    assert!(o.status.success(), "{}", stderr(&o));
    for f in ["rows.csv", "slices.csv"] {
        assert_eq!(
            std::fs::read(full.join(f)).unwrap(),
            std::fs::read(merged.join(f)).unwrap(),
            "{f} differs after merge"
        );
    }
}

#[test]
fn evaluate_rejects_bad_shard_and_changed_options() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let out = dir.path().join("e");
    let o = evaluate(&out, &cache, &["--shard", "3/3"]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("3/3"), "{}", stderr(&o));
    assert!(evaluate(&out, &cache, &[]).status.success());
    let o = evaluate(&out, &cache, &["--seed", "9"]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("--force"), "{}", stderr(&o));
}

/// `gsmile compare` of the shipped tiny-editor and `twin` on the smoke suite, on a small budget.
fn compare(twin: &std::path::Path, out: &std::path::Path, cache: &std::path::Path) -> std::process::Output {
    let mut args = vec![
        "compare",
        "--suite",
        "scenarios/smoke",
        "--editor",
        "onnx/tiny-editor",
        "--editor",
        twin.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--cache",
        cache.to_str().unwrap(),
    ];
    args.extend_from_slice(&BUDGET);
    gsmile(&args)
}

#[test]
fn compare_two_editors_writes_a_slice_table() {
    let dir = tempfile::tempdir().unwrap();
    let twin = copy_bundle("tiny-editor", dir.path());
    edit_manifest(&twin, "name = \"tiny-editor\"", "name = \"tiny-editor-twin\"");
    let out = dir.path().join("cmp");
    let cache = dir.path().join("cache");
    let o = compare(&twin, &out, &cache);
    assert!(o.status.success(), "{}", stderr(&o));
    let md = std::fs::read_to_string(out.join("compare.md")).unwrap();
    assert!(md.contains("tiny-editor-twin") && md.contains("time_of_day"), "{md}");
    assert!(out.join("tiny-editor/rows.csv").is_file() && out.join("tiny-editor-twin/rows.csv").is_file());
    // Identical weights: every overall difference is zero.
    let table = String::from_utf8_lossy(&o.stdout);
    let diffs: Vec<&str> = table.lines().filter(|l| l.contains(" diff ")).collect();
    assert!(!diffs.is_empty() && diffs.iter().all(|l| l.contains("diff    0.000")), "{table}");
}

#[test]
fn compare_keeps_every_editor_folder_inside_out() {
    let dir = tempfile::tempdir().unwrap();
    let twin = copy_bundle("tiny-editor", dir.path());
    edit_manifest(&twin, "name = \"tiny-editor\"", "name = \"../../escaped\"");
    let out = dir.path().join("a").join("b").join("cmp");
    let cache = dir.path().join("cache");
    let o = compare(&twin, &out, &cache);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(!dir.path().join("a").join("escaped").exists(), "a bundle name wrote outside --out");
    assert!(
        out.join("_.._escaped/rows.csv").is_file(),
        "{:?}",
        std::fs::read_dir(&out).unwrap().flatten().map(|e| e.file_name()).collect::<Vec<_>>()
    );
}

#[test]
fn evaluate_never_writes_into_a_folder_it_did_not_make() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("mine");
    std::fs::create_dir(&out).unwrap();
    std::fs::write(out.join("report.html"), "a user's own report").unwrap();
    let cache = dir.path().join("cache");
    for extra in [&[][..], &["--force"][..]] {
        let o = evaluate(&out, &cache, extra);
        assert!(!o.status.success());
        assert!(stderr(&o).contains("not written by gsmile") && stderr(&o).contains("report.html"), "{}", stderr(&o));
    }
    assert_eq!(std::fs::read_to_string(out.join("report.html")).unwrap(), "a user's own report");
    assert!(!out.join("plots").exists() && !out.join("scenarios").exists());
}
