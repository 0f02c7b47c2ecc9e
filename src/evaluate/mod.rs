//! The evaluator behind `gsmile evaluate`, `gsmile merge` and `gsmile compare`: how good are
//! gSMILE's explanations of an editor over a scenario suite?
//!
//! For every scenario ([`crate::scenario::Scenario`]) it explains the instruction and measures
//! the five properties of the gSMILE paper with the maths of [`crate::metrics`]:
//!
//! * **accuracy**: ROC AUC and precision@k of the signed attributions against the key words;
//! * **fidelity**: the surrogate's in-sample weighted R²/MSE, and R²/MSE on fresh held-out
//!   perturbations whose targets are computed exactly as `explain` computes them;
//! * **stability**: top-k Jaccard and Kendall τ between explanations with other mask seeds;
//! * **consistency**: key-word agreement with paraphrases, Spearman ρ with related images;
//! * **faithfulness**: deletion and insertion curves against random word orders.
//!
//! Each finished scenario is written atomically to `OUT/scenarios/<id>.json` together with the
//! hash of everything that shapes its numbers, so a killed run started again resumes where it
//! stopped, and shards run on different machines [`merge`] into the tables a single run
//! writes. Tables, charts and the HTML report are always built from the files on disk, never
//! from memory, which is what makes resumed, merged and single runs byte-identical.
//!
//! Files: [`result`] holds what a scenario records and the list of metrics every output reads,
//! [`measure`] evaluates one scenario, [`tables`] aggregates rows into ODD slices,
//! [`plots`] draws charts, [`report`] writes HTML, [`compare`](mod@compare) sets editors side by side.

pub mod compare;
pub mod measure;
pub mod plots;
pub mod report;
pub mod result;
pub mod sweep;
pub mod tables;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::cache;
use crate::explain::{ExplainConfig, ModelInfo, Models, RunOptions};
use crate::io::write_bytes_atomic;
use crate::scenario::{Scenario, Suite};

pub use compare::{CompareSummary, compare};
pub use measure::{evaluate_scenario, targets};
pub use result::{CurveResult, HEADLINE, METRICS, Metric, RUN_ONLY_FIELDS, ScenarioResult};
pub use sweep::{SweepRun, SweepSummary, sweep};
pub use tables::SliceStat;

/// Schema tag of `scenarios/<id>.json`.
pub const SCENARIO_SCHEMA: &str = "gsmile.eval-scenario/1";
/// Schema tag of `run.json`.
pub const RUN_SCHEMA: &str = "gsmile.eval-run/1";
/// Folder of per-scenario results inside an evaluation's output folder.
pub const SCENARIOS_DIR: &str = "scenarios";
/// Folder of charts inside an evaluation's output folder.
pub const PLOTS_DIR: &str = "plots";
/// The run description inside an evaluation's output folder.
pub const RUN_FILE: &str = "run.json";

/// Why an evaluation, a merge or a comparison could not be done; each says what to do.
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    /// A file or folder could not be read, written or removed.
    #[error("cannot {what} {}: {source}. Fix: check that the path exists and is readable/writable", path.display())]
    Io {
        /// What was being done ("read", "create", "remove").
        what: &'static str,
        /// The path concerned.
        path: PathBuf,
        /// What the operating system said.
        #[source]
        source: std::io::Error,
    },
    /// A result or run file is not what gsmile writes.
    #[error("{}: not a gsmile evaluation file: {message}. Fix: delete it (it is recomputed) or pass --force to start over", path.display())]
    Parse {
        /// The file.
        path: PathBuf,
        /// What the JSON parser said.
        message: String,
    },
    /// The output folder holds results of an evaluation with other settings or models.
    #[error(
        "{} holds results of another evaluation (config hash {found}, this run {expected}): the settings or the models differ. \
         Fix: choose another --out, or pass --force to discard the old results",
        path.display()
    )]
    ConfigMismatch {
        /// The file that was written by the other evaluation.
        path: PathBuf,
        /// Its config hash.
        found: String,
        /// This run's config hash.
        expected: String,
    },
    /// Shards to merge were made with different settings or models.
    #[error(
        "cannot merge {} (config hash {found}) with {} (config hash {expected}): they were made with different settings or models. \
         Fix: merge only shards of one `gsmile evaluate` configuration",
        other.display(), first.display()
    )]
    MergeMismatch {
        /// The first input folder.
        first: PathBuf,
        /// The folder that differs.
        other: PathBuf,
        /// The first folder's hash.
        expected: String,
        /// The other folder's hash.
        found: String,
    },
    /// The same scenario id is in two inputs of a merge.
    #[error("scenario {id} is in both {} and {}. Fix: merge disjoint shards (--shard i/n with one n), or drop one folder", first.display(), second.display())]
    DuplicateId {
        /// The scenario id.
        id: String,
        /// The first folder holding it.
        first: PathBuf,
        /// The second folder holding it.
        second: PathBuf,
    },
    /// A folder given as an evaluation output has no `run.json`.
    #[error("{} is not a gsmile evaluation output: it has no {RUN_FILE}. Fix: pass a folder written by `gsmile evaluate --out`", dir.display())]
    NotAnEvaluation {
        /// The folder.
        dir: PathBuf,
    },
    /// The output folder exists and would be overwritten.
    #[error("{} already exists. Fix: choose another --out or pass --force to replace it", path.display())]
    Exists {
        /// The folder.
        path: PathBuf,
    },
    /// The progress reporter asked to stop; finished scenarios are on disk.
    #[error(
        "stopped after {done} of {total} scenarios; the finished ones are saved. Fix: run the same command again to resume"
    )]
    Interrupted {
        /// Scenarios with a result on disk.
        done: usize,
        /// Scenarios in the run.
        total: usize,
    },
    /// One scenario failed.
    #[error("scenario {id} ({}): {source}", file.display())]
    Scenario {
        /// The scenario id.
        id: String,
        /// Its file.
        file: PathBuf,
        /// What went wrong.
        #[source]
        source: Box<crate::Error>,
    },
    /// Arguments that cannot work.
    #[error("invalid input: {0}")]
    Invalid(String),
    /// A metric was given inputs it cannot take (a bug in the evaluator).
    #[error(transparent)]
    Metrics(#[from] crate::metrics::MetricsError),
    /// A statistic was given inputs it cannot take (a bug in the evaluator).
    #[error(transparent)]
    Stats(#[from] crate::stats::StatsError),
    /// An output file could not be written.
    #[error(transparent)]
    Output(#[from] crate::io::OutputError),
    /// The explanation pipeline failed.
    #[error(transparent)]
    Explain(Box<crate::Error>),
}

impl From<crate::Error> for EvalError {
    fn from(e: crate::Error) -> Self {
        EvalError::Explain(Box::new(e))
    }
}

/// Result with [`EvalError`].
pub type Result<T, E = EvalError> = std::result::Result<T, E>;

/// Maps an I/O error on `path` to [`EvalError::Io`].
pub(crate) fn io_err<'a>(what: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> EvalError + 'a {
    move |source| EvalError::Io { what, path: path.to_path_buf(), source }
}

/// Every option that changes an evaluation's numbers; its hash (with the models') names a run.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EvalConfig {
    /// How each explanation is made.
    pub explain: ExplainConfig,
    /// Extra explanations with mask seeds seed+1..=seed+repeats, for stability.
    pub repeats: usize,
    /// Fresh perturbations for held-out fidelity.
    pub held_out: usize,
    /// Random word orders the deletion and insertion curves are compared with.
    pub random_curves: usize,
    /// Also explain the six neutral insertions of the papers' stability test (six more
    /// explanations per scenario).
    #[serde(default)]
    pub neutral_insertions: bool,
}

impl Default for EvalConfig {
    fn default() -> Self {
        EvalConfig {
            explain: ExplainConfig::default(),
            repeats: 2,
            held_out: 16,
            random_curves: 10,
            neutral_insertions: false,
        }
    }
}

impl EvalConfig {
    /// Checks the options against each other and the models.
    pub fn validate(&self, models: &Models) -> Result<()> {
        self.explain.validate(models)?;
        if self.held_out == 1 {
            let message = "`held_out` must be 0 (skip) or at least 2: R² needs two samples";
            return Err(crate::Error::from(crate::error::ConfigError::new("held_out", message)).into());
        }
        Ok(())
    }

    /// Hex SHA-256 over this configuration and the models' content hashes: two runs with the
    /// same hash produce the same numbers, so their results may be resumed and merged.
    pub fn hash(&self, models: &Models) -> String {
        let json = serde_json::to_vec(self).unwrap_or_default();
        let encoder = models.encoder_info.as_ref().map(|e| e.sha256.as_str()).unwrap_or("");
        let lpips = models.lpips_info.as_ref().map(|e| e.sha256.as_str()).unwrap_or("");
        cache::key(&[
            b"gsmile.eval/1",
            &json,
            models.editor_info.sha256.as_bytes(),
            encoder.as_bytes(),
            lpips.as_bytes(),
        ])
    }
}

pub(crate) use crate::io::nan;

/// The suite as recorded in `run.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SuiteInfo {
    /// Suite name.
    pub name: String,
    /// Its description.
    pub description: String,
    /// The folder as given.
    pub dir: String,
    /// ODD axes and their allowed values, in the suite's order.
    pub axes: BTreeMap<String, Vec<String>>,
    /// Scenarios in the whole suite.
    pub scenarios: usize,
}

/// `run.json`: how an evaluation output folder was made.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunInfo {
    /// [`RUN_SCHEMA`].
    pub schema: String,
    /// The gsmile version that wrote it.
    pub gsmile_version: String,
    /// [`EvalConfig::hash`].
    pub config_hash: String,
    /// The configuration.
    pub config: EvalConfig,
    /// The editor evaluated.
    pub editor: ModelInfo,
    /// The encoder used, if any.
    pub encoder: Option<ModelInfo>,
    /// The suite.
    pub suite: SuiteInfo,
    /// `(index, count)` when one shard was run.
    pub shard: Option<(usize, usize)>,
    /// Folders a `merge` combined (empty for a run).
    #[serde(default)]
    pub merged_from: Vec<String>,
}

/// Receives an evaluation's progress; the library never prints, the CLI draws bars.
pub trait EvalProgress: Sync {
    /// The run begins: `total` scenarios in this run, `already_done` of them with results on disk.
    fn run_started(&self, _total: usize, _already_done: usize) {}
    /// Scenario `index` (0-based, of `total`) already has a result and is not recomputed.
    fn skipped(&self, _id: &str, _index: usize, _total: usize) {}
    /// Scenario `index` of `total` begins; it takes `steps` steps.
    fn scenario_started(&self, _id: &str, _index: usize, _total: usize, _steps: usize) {}
    /// Step `done` of `steps` of the current scenario is finished (`what` names it).
    fn scenario_step(&self, _id: &str, _what: &str, _done: usize, _steps: usize) {}
    /// Scenario `index` of `total` is finished and saved.
    fn scenario_finished(&self, _result: &ScenarioResult, _index: usize, _total: usize) {}
    /// Tables, charts and the report are being written.
    fn writing_tables(&self) {}
    /// Asked before each scenario; `true` stops the run with [`EvalError::Interrupted`]
    /// (finished scenarios stay saved), e.g. after Ctrl-C.
    fn should_stop(&self) -> bool {
        false
    }
}

/// Progress that goes nowhere.
pub struct NoEvalProgress;

impl EvalProgress for NoEvalProgress {}

/// What an evaluation or merge produced.
#[derive(Debug, Clone)]
pub struct EvalSummary {
    /// The output folder.
    pub out: PathBuf,
    /// [`EvalConfig::hash`] of the results.
    pub config_hash: String,
    /// Scenarios in the tables.
    pub scenarios: usize,
    /// Scenarios computed by this call.
    pub evaluated: usize,
    /// Scenarios whose saved results were reused.
    pub skipped: usize,
    /// Saved results dropped because their scenario is no longer in the suite (renamed or
    /// removed), by id.
    pub dropped: Vec<String>,
    /// The "all" slice: one entry per sliced metric of [`METRICS`].
    pub overall: Vec<SliceStat>,
    /// Files written (tables, charts, report), relative to `out`.
    pub files: Vec<PathBuf>,
}

impl EvalSummary {
    /// A plain-text table of the overall means with their intervals, for the terminal.
    pub fn table(&self) -> String {
        let mut s = format!(
            "{} scenarios ({} evaluated, {} reused) in {}\n",
            self.scenarios,
            self.evaluated,
            self.skipped,
            self.out.display()
        );
        if !self.dropped.is_empty() {
            s.push_str(&format!(
                "dropped the saved results of {} scenarios no longer in the suite (renamed or removed): {}\n",
                self.dropped.len(),
                self.dropped.join(", ")
            ));
        }
        s.push_str(&format!("{:<24} {:>4} {:>9}  95% CI\n", "metric", "n", "mean"));
        for st in &self.overall {
            s.push_str(&format!(
                "{:<24} {:>4} {:>9}  [{}, {}]\n",
                st.metric,
                st.n_defined,
                tables::fmt3(st.mean),
                tables::fmt3(st.ci_low),
                tables::fmt3(st.ci_high)
            ));
        }
        s
    }
}

/// Path of a scenario's result file.
fn result_path(out: &Path, id: &str) -> PathBuf {
    out.join(SCENARIOS_DIR).join(format!("{id}.json"))
}

/// Reads and parses a JSON file.
fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T> {
    let bytes = std::fs::read(path).map_err(io_err("read", path))?;
    serde_json::from_slice(&bytes).map_err(|e| EvalError::Parse { path: path.to_path_buf(), message: e.to_string() })
}

/// Writes pretty JSON with a trailing newline, atomically.
fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<()> {
    let mut text = serde_json::to_string_pretty(value)
        .map_err(|e| EvalError::Invalid(format!("cannot serialise {}: {e}", path.display())))?;
    text.push('\n');
    write_bytes_atomic(path, text.as_bytes())?;
    Ok(())
}

/// Creates a folder and its parents.
fn create_dir(path: &Path) -> Result<()> {
    std::fs::create_dir_all(path).map_err(io_err("create", path))
}

/// Reads `run.json` of an evaluation output folder.
pub fn read_run_info(dir: &Path) -> Result<RunInfo> {
    let path = dir.join(RUN_FILE);
    if !path.is_file() {
        return Err(EvalError::NotAnEvaluation { dir: dir.to_path_buf() });
    }
    read_json(&path)
}

/// Reads every `scenarios/*.json` of `dir`, sorted by id, checking each was made with `config_hash`.
pub fn read_results(dir: &Path, config_hash: &str) -> Result<Vec<ScenarioResult>> {
    let sdir = dir.join(SCENARIOS_DIR);
    let mut results = Vec::new();
    if !sdir.is_dir() {
        return Ok(results);
    }
    let mut paths: Vec<PathBuf> = std::fs::read_dir(&sdir)
        .map_err(io_err("read", &sdir))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "json") && p.is_file())
        .collect();
    paths.sort();
    for p in paths {
        let r: ScenarioResult = read_json(&p)?;
        if r.config_hash != config_hash {
            return Err(EvalError::ConfigMismatch { path: p, found: r.config_hash, expected: config_hash.to_string() });
        }
        results.push(r);
    }
    results.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(results)
}

/// Refuses an `out` that holds something gsmile did not write: an evaluation goes only into
/// a new or empty folder, or one an earlier evaluation made (its marker or its `run.json`),
/// with or without `--force`.
fn check_out(out: &Path) -> Result<()> {
    if !out.exists() || out.join(RUN_FILE).is_file() || out.join(crate::io::OWNER_MARKER).is_file() {
        return Ok(());
    }
    crate::io::check_replaceable(out, true).map_err(|e| EvalError::Invalid(e.to_string()))
}

/// Removes what an evaluation writes in `out` (results, tables, charts, report), nothing else.
fn clear_outputs(out: &Path) -> Result<()> {
    for dir in [SCENARIOS_DIR, PLOTS_DIR] {
        let p = out.join(dir);
        if p.exists() {
            std::fs::remove_dir_all(&p).map_err(io_err("remove", &p))?;
        }
    }
    for f in [RUN_FILE, "rows.csv", "rows.jsonl", "slices.csv", "slices.md", "report.html"] {
        let p = out.join(f);
        if p.exists() {
            std::fs::remove_file(&p).map_err(io_err("remove", &p))?;
        }
    }
    Ok(())
}

/// Evaluates every scenario of `suite` (or of one `shard`, `(index, count)`) and writes the
/// results, tables, charts and report into `out`.
///
/// Resumable: scenarios with a saved result of the same [`EvalConfig::hash`] are skipped;
/// results of another configuration are an error unless `force`, which discards them first.
/// Scenarios run one at a time (the models already use every core), in id order.
/// The tables cover every result in `out/scenarios` (so shards run one after another into
/// one folder add up); `run.json` records the latest call's shard.
#[allow(clippy::too_many_arguments)]
pub fn evaluate_suite(
    suite: &Suite,
    shard: Option<(usize, usize)>,
    models: &Models,
    config: &EvalConfig,
    run: &RunOptions,
    out: &Path,
    force: bool,
    progress: &dyn EvalProgress,
) -> Result<EvalSummary> {
    config.validate(models)?;
    let scenarios: Vec<&Scenario> = match shard {
        Some((i, n)) => {
            crate::scenario::shard(&suite.scenarios, i, n).map_err(|e| EvalError::Invalid(e.to_string()))?
        }
        None => {
            let mut all: Vec<&Scenario> = suite.scenarios.iter().collect();
            all.sort_by(|a, b| a.id.cmp(&b.id));
            all
        }
    };
    let hash = config.hash(models);
    check_out(out)?;
    check_inputs(&scenarios, run)?;
    if force {
        clear_outputs(out)?;
    } else if out.join(RUN_FILE).is_file() {
        let old = read_run_info(out)?;
        if old.config_hash != hash {
            return Err(EvalError::ConfigMismatch { path: out.join(RUN_FILE), found: old.config_hash, expected: hash });
        }
    }
    create_dir(&out.join(SCENARIOS_DIR))?;
    crate::io::write_owner_marker(out, "evaluate")?;
    // Fails early on results of another configuration.
    read_results(out, &hash)?;
    let info = RunInfo {
        schema: RUN_SCHEMA.into(),
        gsmile_version: env!("CARGO_PKG_VERSION").into(),
        config_hash: hash.clone(),
        config: config.clone(),
        editor: models.editor_info.clone(),
        encoder: models.encoder_info.clone(),
        suite: SuiteInfo {
            name: suite.name.clone(),
            description: suite.description.clone(),
            dir: suite.dir.display().to_string(),
            axes: suite.axes.clone(),
            scenarios: suite.scenarios.len(),
        },
        shard,
        merged_from: Vec::new(),
    };
    write_json(&out.join(RUN_FILE), &info)?;

    let total = scenarios.len();
    // Which scenarios already have a valid result.
    let mut done = vec![false; total];
    for (i, s) in scenarios.iter().enumerate() {
        let path = result_path(out, &s.id);
        if path.is_file()
            && let Ok(r) = read_json::<ScenarioResult>(&path)
            && r.config_hash == hash
            && r.scenario_hash == measure::scenario_hash(s)?
        {
            done[i] = true;
        }
    }
    progress.run_started(total, done.iter().filter(|d| **d).count());
    let (mut evaluated, mut skipped) = (0, 0);
    for (i, s) in scenarios.iter().enumerate() {
        if done[i] {
            skipped += 1;
            progress.skipped(&s.id, i, total);
            continue;
        }
        if progress.should_stop() {
            return Err(EvalError::Interrupted { done: skipped + evaluated, total });
        }
        let start = Instant::now();
        progress.scenario_started(&s.id, i, total, measure::steps(s, config));
        let step = |what: &str, k: usize, n: usize| progress.scenario_step(&s.id, what, k, n);
        let mut result = evaluate_scenario(s, models, config, run, &hash, &step)?;
        result.seconds = start.elapsed().as_secs_f64();
        write_json(&result_path(out, &s.id), &result)?;
        evaluated += 1;
        progress.scenario_finished(&result, i, total);
    }
    progress.writing_tables();
    let dropped = drop_stale_results(out, &scenarios)?;
    let results = read_results(out, &hash)?;
    let (overall, files) = write_tables(out, &info, &results)?;
    Ok(EvalSummary {
        out: out.to_path_buf(),
        config_hash: hash,
        scenarios: results.len(),
        evaluated,
        skipped,
        dropped,
        overall,
        files,
    })
}

/// Decodes every scenario's image and related images before the first scenario runs, so
/// a broken file fails the run at once instead of after hours of earlier scenarios.
fn check_inputs(scenarios: &[&Scenario], run: &RunOptions) -> Result<()> {
    scenarios.par_iter().try_for_each(|s| {
        for path in std::iter::once(&s.image).chain(&s.related_images) {
            crate::imaging::load_rgb_limited(path, run.max_pixels).map_err(|e| EvalError::Scenario {
                id: s.id.clone(),
                file: s.file.clone(),
                source: Box::new(e.into()),
            })?;
        }
        Ok(())
    })
}

/// Removes the saved results in `out` of scenarios this run does not hold (renamed or
/// removed from the suite since they were saved), so the tables count each scenario once;
/// returns their ids.
fn drop_stale_results(out: &Path, scenarios: &[&Scenario]) -> Result<Vec<String>> {
    let sdir = out.join(SCENARIOS_DIR);
    let wanted: std::collections::HashSet<PathBuf> = scenarios.iter().map(|s| result_path(out, &s.id)).collect();
    let mut dropped = Vec::new();
    for entry in std::fs::read_dir(&sdir).map_err(io_err("read", &sdir))?.flatten() {
        let path = entry.path();
        if path.extension().is_some_and(|e| e == "json") && path.is_file() && !wanted.contains(&path) {
            let id = read_json::<ScenarioResult>(&path)
                .map(|r| r.id)
                .unwrap_or_else(|_| path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default());
            std::fs::remove_file(&path).map_err(io_err("remove", &path))?;
            dropped.push(id);
        }
    }
    dropped.sort();
    Ok(dropped)
}

/// Writes `rows.csv`, `rows.jsonl`, `slices.csv`, `slices.md`, the charts and `report.html`
/// into `out` from `results`; returns the "all" slice and the files written.
fn write_tables(out: &Path, info: &RunInfo, results: &[ScenarioResult]) -> Result<(Vec<SliceStat>, Vec<PathBuf>)> {
    let axes = tables::axes_with_values(&info.suite.axes, results);
    let slices = tables::slices(&axes, results)?;
    let mut files = Vec::new();
    let put = |name: &str, bytes: &[u8], files: &mut Vec<PathBuf>| -> Result<()> {
        write_bytes_atomic(&out.join(name), bytes)?;
        files.push(PathBuf::from(name));
        Ok(())
    };
    put("rows.csv", tables::rows_csv(&axes, results).as_bytes(), &mut files)?;
    put("rows.jsonl", tables::rows_jsonl(results).as_bytes(), &mut files)?;
    put("slices.csv", tables::slices_csv(&slices).as_bytes(), &mut files)?;
    put("slices.md", tables::slices_md(&info.suite.name, &axes, &slices).as_bytes(), &mut files)?;
    let charts = plots::suite_charts(&axes, &slices, results);
    write_plots(out, &charts)?;
    files.extend(charts.iter().map(|c| Path::new(PLOTS_DIR).join(&c.file)));
    let html = report::suite_report(info, &axes, &slices, results, &charts);
    put("report.html", html.as_bytes(), &mut files)?;
    let overall = slices.iter().filter(|s| s.axis == tables::ALL).cloned().collect();
    Ok((overall, files))
}

/// Replaces `out/plots/` with `charts` as a whole: they are written into a staging folder
/// that takes the old folder's place by renames, so a run killed meanwhile leaves the old
/// charts or the new ones, never an empty or half-written `plots/`.
fn write_plots(out: &Path, charts: &[plots::Chart]) -> Result<()> {
    for kind in ["partial", "old"] {
        crate::io::remove_stale_work_dirs(out, PLOTS_DIR, kind);
    }
    let staging = crate::io::work_dir(out, PLOTS_DIR, "partial").map_err(io_err("create", out))?;
    for c in charts {
        let path = staging.path().join(&c.file);
        std::fs::write(&path, &c.png).map_err(io_err("write", &path))?;
    }
    let plots_dir = out.join(PLOTS_DIR);
    let old = crate::io::work_dir(out, PLOTS_DIR, "old").map_err(io_err("create", out))?;
    if plots_dir.exists() {
        std::fs::rename(&plots_dir, old.path().join(PLOTS_DIR)).map_err(io_err("move", &plots_dir))?;
    }
    std::fs::rename(staging.path(), &plots_dir).map_err(io_err("move", staging.path()))?;
    let _ = staging.keep();
    Ok(())
}

/// Combines the output folders of shards of one evaluation into `out`, with the same tables
/// a single run over all their scenarios writes.
///
/// Every input must have the same [`EvalConfig::hash`], and no scenario may be in two inputs.
/// `out` must not exist unless `force`; the results are copied into `out/scenarios`.
pub fn merge(inputs: &[PathBuf], out: &Path, force: bool) -> Result<EvalSummary> {
    let Some(first) = inputs.first() else {
        return Err(EvalError::Invalid("merge needs at least one evaluation folder".into()));
    };
    let out_canon = std::fs::canonicalize(out).ok();
    for i in inputs {
        if out_canon.is_some() && std::fs::canonicalize(i).ok() == out_canon {
            return Err(EvalError::Invalid(format!(
                "--out {} is also an input. Fix: merge into a new folder",
                out.display()
            )));
        }
    }
    let first_info = read_run_info(first)?;
    let mut all: Vec<ScenarioResult> = Vec::new();
    let mut owner: BTreeMap<String, PathBuf> = BTreeMap::new();
    let mut merged_from = Vec::new();
    for dir in inputs {
        let info = read_run_info(dir)?;
        if info.config_hash != first_info.config_hash {
            return Err(EvalError::MergeMismatch {
                first: first.clone(),
                other: dir.clone(),
                expected: first_info.config_hash.clone(),
                found: info.config_hash,
            });
        }
        for r in read_results(dir, &info.config_hash)? {
            if let Some(prev) = owner.insert(r.id.clone(), dir.clone()) {
                return Err(EvalError::DuplicateId { id: r.id, first: prev, second: dir.clone() });
            }
            all.push(r);
        }
        merged_from.push(dir.display().to_string());
    }
    if out.exists() {
        let empty = std::fs::read_dir(out).map_err(io_err("read", out))?.next().is_none();
        if !empty && !force {
            return Err(EvalError::Exists { path: out.to_path_buf() });
        }
        clear_outputs(out)?;
    }
    create_dir(&out.join(SCENARIOS_DIR))?;
    // Copy the files byte for byte so the merged folder reads exactly like the shards.
    for (id, dir) in &owner {
        let src = result_path(dir, id);
        let bytes = std::fs::read(&src).map_err(io_err("read", &src))?;
        write_bytes_atomic(&result_path(out, id), &bytes)?;
    }
    let info = RunInfo { shard: None, merged_from, ..first_info };
    write_json(&out.join(RUN_FILE), &info)?;
    let results = read_results(out, &info.config_hash)?;
    let (overall, files) = write_tables(out, &info, &results)?;
    Ok(EvalSummary {
        out: out.to_path_buf(),
        config_hash: info.config_hash,
        scenarios: results.len(),
        evaluated: 0,
        skipped: results.len(),
        dropped: Vec::new(),
        overall,
        files,
    })
}
