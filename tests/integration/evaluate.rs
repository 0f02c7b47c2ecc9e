//! The evaluator on the shipped bundles and the `smoke` suite: every output is written, an
//! interrupted run resumes without loss or duplication, shards merge into the single run's
//! tables byte for byte, mismatched configurations are refused, and comparisons work.
//!
//! Budgets are tiny (16 samples, 1 repeat, 4 held-out, 3 random curves) and every test shares
//! one edit cache and one reference run, so the file stays quick in debug builds.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use crate::common::repo;
use std::sync::{Mutex, OnceLock};

use gsmile::evaluate::{self, EvalConfig, EvalError, EvalProgress, NoEvalProgress, ScenarioResult};
use gsmile::explain::{self, ExplainConfig, ImageInfo, NoProgress, Reference, RunOptions, Space};
use gsmile::models::{Models, OpenOptions};
use gsmile::scenario::{Suite, load_suite};

/// The shipped models, opened once for the whole file.
fn models() -> Models {
    static M: OnceLock<Models> = OnceLock::new();
    M.get_or_init(|| {
        let needs = ExplainConfig::default().needs();
        let open = OpenOptions::default();
        Models::open(&repo("onnx/tiny-editor"), &repo("onnx/tiny-clip"), needs, &open).unwrap()
    })
    .clone()
}

/// A temporary folder that lives as long as the test process.
fn scratch() -> &'static Path {
    static D: OnceLock<tempfile::TempDir> = OnceLock::new();
    D.get_or_init(|| tempfile::tempdir().unwrap()).path()
}

/// One edit cache shared by every test, so repeated scenarios cost no editor runs.
fn run_options() -> RunOptions {
    RunOptions {
        max_batch: 32,
        cache: Some(gsmile::cache::ArrayCache::new(scratch().join("cache"))),
        ..RunOptions::default()
    }
}

fn config() -> EvalConfig {
    let mut explain = ExplainConfig { samples: 16, spatial: false, ..ExplainConfig::default() };
    explain.surrogate.bootstrap = 20;
    EvalConfig { explain, repeats: 1, held_out: 4, random_curves: 3, neutral_insertions: false }
}

fn smoke() -> Suite {
    load_suite(&repo("scenarios/smoke")).unwrap()
}

/// An uninterrupted single run of the whole smoke suite, made once.
fn reference_run() -> &'static Path {
    static R: OnceLock<PathBuf> = OnceLock::new();
    R.get_or_init(|| {
        let out = scratch().join("reference");
        let start = std::time::Instant::now();
        let summary = evaluate::evaluate_suite(
            &smoke(),
            None,
            &models(),
            &config(),
            &run_options(),
            &out,
            false,
            &NoEvalProgress,
        )
        .unwrap();
        eprintln!("smoke evaluation: {:.1} s\n{}", start.elapsed().as_secs_f64(), summary.table());
        assert_eq!(summary.scenarios, 6);
        out
    })
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Records progress calls and can stop a run after some scenarios.
#[derive(Default)]
struct Recorder {
    stop_after: Option<usize>,
    started: Mutex<Vec<String>>,
    skipped: Mutex<Vec<String>>,
    finished: Mutex<Vec<(String, usize)>>,
}

impl EvalProgress for Recorder {
    fn skipped(&self, id: &str, _: usize, _: usize) {
        self.skipped.lock().unwrap().push(id.to_string());
    }
    fn scenario_started(&self, id: &str, _: usize, _: usize, _: usize) {
        self.started.lock().unwrap().push(id.to_string());
    }
    fn scenario_finished(&self, r: &ScenarioResult, _: usize, _: usize) {
        self.finished.lock().unwrap().push((r.id.clone(), r.edits_run));
    }
    fn should_stop(&self) -> bool {
        self.stop_after.is_some_and(|n| self.finished.lock().unwrap().len() >= n)
    }
}

fn scenario_files(dir: &Path) -> BTreeSet<String> {
    std::fs::read_dir(dir.join("scenarios"))
        .map(|d| d.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect())
        .unwrap_or_default()
}

#[test]
fn run_writes_every_table_chart_and_report() {
    let out = reference_run();
    let suite = smoke();
    for f in ["run.json", "rows.csv", "rows.jsonl", "slices.csv", "slices.md", "report.html"] {
        assert!(out.join(f).is_file(), "{f} missing");
    }
    assert_eq!(scenario_files(out).len(), 6);
    for axis in suite.axes.keys() {
        for metric in ["precision_at_k", "deletion_gap"] {
            assert!(out.join(format!("plots/{metric}-by-{axis}.png")).is_file(), "{metric}-by-{axis}.png missing");
        }
    }
    assert!(out.join("plots/accuracy-heatmap-time_of_day-weather.png").is_file());

    // Rows: sorted by id, with the expected fields and no run-dependent ones.
    let rows = read(&out.join("rows.jsonl"));
    let rows: Vec<serde_json::Value> = rows.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let ids: Vec<&str> = rows.iter().map(|r| r["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["smoke-001", "smoke-002", "smoke-003", "smoke-004", "smoke-005", "smoke-006"]);
    for r in &rows {
        for f in [
            "odd",
            "instruction",
            "words",
            "attributions",
            "key_labels",
            "roc_auc",
            "precision_at_k",
            "r2",
            "mse",
            "held_out_r2",
            "held_out_mse",
            "stability_jaccard",
            "stability_kendall",
            "paraphrase_spearman",
            "paraphrase_jaccard",
            "related_spearman",
            "deletion",
            "insertion",
        ] {
            assert!(r.get(f).is_some(), "row lacks {f}: {r}");
        }
        assert!(r.get("seconds").is_none() && r.get("edits_run").is_none());
        let d = r["words"].as_array().unwrap().len();
        assert_eq!(r["attributions"].as_array().unwrap().len(), d);
        assert_eq!(r["deletion"]["curve"].as_array().unwrap().len(), d + 1);
        // Step 0 of deletion is the full instruction: identical to the full edit.
        assert_eq!(r["deletion"]["curve"][0].as_f64().unwrap(), 0.0);
        let p = r["precision_at_k"].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&p));
        assert!(r["key_labels"].as_array().unwrap().iter().any(|l| l.as_bool().unwrap()));
    }
    let csv = read(&out.join("rows.csv"));
    assert_eq!(csv.lines().count(), 7);
    assert!(csv.lines().next().unwrap().starts_with("id,odd.colour,odd.edit,"));

    // Slices: every axis value of the suite appears, plus the overall row.
    let slices = read(&out.join("slices.csv"));
    assert!(slices.contains("\nall,all,6,precision_at_k,"));
    for (axis, values) in &suite.axes {
        for v in values {
            let v = if v.contains(',') { format!("\"{v}\"") } else { v.clone() };
            assert!(slices.contains(&format!("\n{axis},{v},")), "slices.csv lacks {axis}={v}");
        }
    }
    let md = read(&out.join("slices.md"));
    assert!(md.contains("## By time_of_day") && md.contains("| dusk |"));

    let html = read(&out.join("report.html"));
    assert!(html.contains("data:image/png;base64,"));
    assert!(html.contains("Worst 10 scenarios") && html.contains("smoke-00"));
    assert!(!html.contains("src=\"plots/"), "report must be self-contained");
    let run: serde_json::Value = serde_json::from_str(&read(&out.join("run.json"))).unwrap();
    assert_eq!(run["suite"]["name"], "smoke");
    assert_eq!(run["config"]["repeats"], 1);
}

#[test]
fn interrupted_run_resumes_without_loss_or_duplication() {
    let reference = reference_run();
    let out = scratch().join("resumed");
    let stop = Recorder { stop_after: Some(3), ..Recorder::default() };
    let err =
        evaluate::evaluate_suite(&smoke(), None, &models(), &config(), &run_options(), &out, false, &stop).unwrap_err();
    assert!(matches!(err, EvalError::Interrupted { done: 3, total: 6 }), "{err}");
    assert!(err.to_string().contains("run the same command again"));
    assert_eq!(scenario_files(&out).len(), 3);

    let again = Recorder::default();
    let summary =
        evaluate::evaluate_suite(&smoke(), None, &models(), &config(), &run_options(), &out, false, &again).unwrap();
    let first: Vec<String> = stop.finished.lock().unwrap().iter().map(|(id, _)| id.clone()).collect();
    assert_eq!(*again.skipped.lock().unwrap(), first, "the finished scenarios are reused");
    let started = again.started.lock().unwrap().clone();
    assert_eq!(started.len(), 3);
    assert!(started.iter().all(|id| !first.contains(id)), "no scenario computed twice");
    assert_eq!((summary.evaluated, summary.skipped, summary.scenarios), (3, 3, 6));
    for f in ["rows.csv", "rows.jsonl", "slices.csv", "slices.md"] {
        assert_eq!(read(&out.join(f)), read(&reference.join(f)), "{f} differs from the uninterrupted run");
    }

    // A third run does nothing at all.
    let third = Recorder::default();
    evaluate::evaluate_suite(&smoke(), None, &models(), &config(), &run_options(), &out, false, &third).unwrap();
    assert_eq!(third.skipped.lock().unwrap().len(), 6);
    assert!(third.started.lock().unwrap().is_empty());
}

#[test]
fn shards_merge_into_the_single_run_tables() {
    let reference = reference_run();
    let suite = smoke();
    let mut dirs = Vec::new();
    for i in 0..3 {
        let out = scratch().join(format!("shard-{i}"));
        let s = evaluate::evaluate_suite(
            &suite,
            Some((i, 3)),
            &models(),
            &config(),
            &run_options(),
            &out,
            false,
            &NoEvalProgress,
        )
        .unwrap();
        assert_eq!(s.scenarios, 2);
        dirs.push(out);
    }
    let merged = scratch().join("merged");
    let summary = evaluate::merge(&dirs, &merged, false).unwrap();
    assert_eq!(summary.scenarios, 6);
    for f in ["rows.csv", "slices.csv", "rows.jsonl", "slices.md"] {
        assert_eq!(read(&merged.join(f)), read(&reference.join(f)), "merged {f} differs from the single run");
    }
    assert!(merged.join("report.html").is_file());

    // Merging into an existing folder needs force; a shard twice is a duplicate.
    assert!(matches!(evaluate::merge(&dirs, &merged, false), Err(EvalError::Exists { .. })));
    evaluate::merge(&dirs, &merged, true).unwrap();
    let dup = evaluate::merge(&[dirs[0].clone(), dirs[0].clone()], &scratch().join("dup"), false).unwrap_err();
    assert!(matches!(dup, EvalError::DuplicateId { .. }), "{dup}");
}

#[test]
fn another_configuration_is_refused_unless_forced() {
    let reference = reference_run();
    // Resuming into a folder made with other settings.
    let out = scratch().join("mismatch");
    std::fs::create_dir_all(out.join("scenarios")).unwrap();
    std::fs::copy(reference.join("run.json"), out.join("run.json")).unwrap();
    let mut other = config();
    other.random_curves = 2;
    let err = evaluate::evaluate_suite(
        &smoke(),
        Some((0, 6)),
        &models(),
        &other,
        &run_options(),
        &out,
        false,
        &NoEvalProgress,
    )
    .unwrap_err();
    assert!(matches!(err, EvalError::ConfigMismatch { .. }), "{err}");
    let msg = err.to_string();
    assert!(msg.contains("--out") && msg.contains("--force"), "{msg}");
    let s = evaluate::evaluate_suite(
        &smoke(),
        Some((0, 6)),
        &models(),
        &other,
        &run_options(),
        &out,
        true,
        &NoEvalProgress,
    )
    .unwrap();
    assert_eq!((s.scenarios, s.evaluated), (1, 1));

    // Merging it with the reference run is refused too.
    let err =
        evaluate::merge(&[reference.to_path_buf(), out.clone()], &scratch().join("bad-merge"), false).unwrap_err();
    assert!(matches!(err, EvalError::MergeMismatch { .. }), "{err}");
    assert!(err.to_string().contains("different settings"));
}

#[test]
fn compare_of_a_run_with_itself_has_zero_differences() {
    let reference = reference_run();
    let out = scratch().join("compare");
    let s = evaluate::compare(&[("a".into(), reference.to_path_buf()), ("b".into(), reference.to_path_buf())], &out)
        .unwrap();
    assert_eq!(s.shared, 6);
    assert!(s.diffs.iter().any(|d| d.n_pairs > 0));
    for d in &s.diffs {
        assert!(d.n_pairs == 0 || d.diff == 0.0, "{d:?}");
        assert!(d.n_pairs == 0 || d.p_bootstrap == 1.0, "{d:?}");
    }
    for f in ["compare.md", "compare.csv", "report.html", "plots/compare-overall.png"] {
        assert!(out.join(f).is_file(), "{f} missing");
    }
    let csv = read(&out.join("compare.csv"));
    assert!(csv.lines().next().unwrap().contains("a-b.diff"));
    assert!(
        evaluate::compare(&[("a".into(), reference.to_path_buf()), ("a".into(), reference.to_path_buf())], &out)
            .is_err()
    );
}

#[test]
fn targets_match_explain_exactly() {
    let suite = smoke();
    let s = &suite.scenarios[0];
    let image = gsmile::imaging::load_rgb(&s.image).unwrap();
    let run = run_options();
    for (reference, space) in [(Reference::Full, Space::Embedding), (Reference::Input, Space::Pixels)] {
        let mut config = ExplainConfig { samples: 12, spatial: false, reference, space, ..ExplainConfig::default() };
        config.surrogate.bootstrap = 10;
        let info =
            ImageInfo { path: String::new(), sha256: String::new(), width: image.width(), height: image.height() };
        let e = explain::explain(&image, info, &s.instruction, &models(), &config, &run, &NoProgress).unwrap();
        let masks: Vec<Vec<bool>> =
            e.explanation.samples.iter().map(|x| x.mask.chars().map(|c| c == '1').collect()).collect();
        let y = evaluate::targets(&image, &s.instruction, &masks, &models(), &config, &run).unwrap();
        let want: Vec<f64> = e.explanation.samples.iter().map(|x| x.target).collect();
        assert_eq!(y, want, "{reference:?} {space:?}");
    }
}

/// Copies a folder tree.
fn copy_tree(src: &Path, dst: &Path) {
    std::fs::create_dir_all(dst).unwrap();
    for e in std::fs::read_dir(src).unwrap().flatten() {
        if e.path().is_dir() {
            copy_tree(&e.path(), &dst.join(e.file_name()));
        } else {
            std::fs::copy(e.path(), dst.join(e.file_name())).unwrap();
        }
    }
}

#[test]
fn a_resumed_run_drops_the_results_of_renamed_scenarios_and_says_so() {
    let out = scratch().join("renamed");
    copy_tree(reference_run(), &out);
    // What a killed table write leaves, and a rename in the suite.
    std::fs::create_dir(out.join(".plots.partial-4000000000-aB3dE9")).unwrap();
    let mut suite = smoke();
    suite.scenarios[0].id = "smoke-001-renamed".into();
    let summary =
        evaluate::evaluate_suite(&suite, None, &models(), &config(), &run_options(), &out, false, &NoEvalProgress)
            .unwrap();
    assert_eq!(summary.dropped, ["smoke-001"]);
    assert_eq!((summary.scenarios, summary.evaluated, summary.skipped), (6, 1, 5));
    assert!(summary.table().contains("no longer in the suite") && summary.table().contains("smoke-001"));
    let rows = read(&out.join("rows.csv"));
    assert_eq!(rows.lines().count(), 7, "one header and six scenarios:\n{rows}");
    assert!(rows.contains("smoke-001-renamed"));
    let leftovers: Vec<_> = std::fs::read_dir(&out)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".plots"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    assert_eq!(
        std::fs::read_dir(out.join("plots")).unwrap().count(),
        std::fs::read_dir(reference_run().join("plots")).unwrap().count()
    );
}

#[test]
fn a_broken_image_fails_the_suite_before_any_scenario_runs() {
    let dir = tempfile::tempdir().unwrap();
    let suite_dir = dir.path().join("smoke");
    copy_tree(&repo("scenarios/smoke"), &suite_dir);
    // The last scenario's image cut short: today five scenarios run before it fails.
    let image = suite_dir.join("images/006.png");
    let bytes = std::fs::read(&image).unwrap();
    std::fs::write(&image, &bytes[..bytes.len() / 2]).unwrap();
    let suite = load_suite(&suite_dir).unwrap();
    let out = dir.path().join("out");
    let recorder = Recorder::default();
    let err = evaluate::evaluate_suite(&suite, None, &models(), &config(), &run_options(), &out, false, &recorder)
        .unwrap_err()
        .to_string();
    assert!(err.contains("smoke-006") && err.contains("006.png"), "{err}");
    assert!(recorder.started.lock().unwrap().is_empty(), "scenarios ran before the check");
    assert!(scenario_files(&out).is_empty());
}
