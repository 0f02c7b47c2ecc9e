//! Explanation methods side by side over budgets (`gsmile evaluate --method A --method B
//! --samples 16,32,64`): for every (method, budget) run, each sliced metric's mean over the
//! suite with its 95 % bootstrap interval, against the editor calls the method actually
//! needed per explanation (distinct perturbed instructions; what a user pays), as
//! `sweep.csv`, `sweep.md` and one chart per headline metric under `plots/`.
//!
//! Each run is an ordinary evaluation folder; paired tests between methods at one budget
//! come from [`super::compare`].

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use super::plots::{self, Bar, Series};
use super::result::{self, Metric};
use super::tables::{self, ALL, SliceStat, csv_line, fmt3, num};
use super::{EvalError, PLOTS_DIR, Result, ScenarioResult, read_results, read_run_info};
use crate::io::write_bytes_atomic;
use crate::render;

/// Metrics charted against editor calls.
pub const CHARTED: [&str; 6] =
    ["roc_auc", "precision_at_k", "stability_jaccard", "deletion_gap", "insertion_gap", "held_out_r2"];

/// One evaluation of a sweep: a method at a budget, and its folder.
#[derive(Debug, Clone)]
pub struct SweepRun {
    /// The method's name.
    pub method: String,
    /// The budget as given (`16`, `auto`).
    pub budget: String,
    /// Its evaluation folder.
    pub dir: PathBuf,
}

/// One cell of the sweep: a metric of a run.
#[derive(Debug, Clone, PartialEq)]
pub struct SweepCell {
    /// The method.
    pub method: String,
    /// The budget as given.
    pub budget: String,
    /// Mean editor calls per explanation.
    pub calls: f64,
    /// The metric's statistic over the suite.
    pub stat: SliceStat,
}

/// What a sweep produced.
#[derive(Debug, Clone)]
pub struct SweepSummary {
    /// The output folder.
    pub out: PathBuf,
    /// Every cell, runs in the order given, metrics in table order.
    pub cells: Vec<SweepCell>,
    /// Files written, relative to `out`.
    pub files: Vec<PathBuf>,
}

impl SweepSummary {
    /// The headline metrics per run, for the terminal.
    pub fn table(&self) -> String {
        let mut s = format!("{:<12} {:>7} {:>7}", "method", "budget", "calls");
        for m in CHARTED {
            s.push_str(&format!(" {m:>18}"));
        }
        s.push('\n');
        let mut seen: Vec<(String, String)> = Vec::new();
        for c in &self.cells {
            let key = (c.method.clone(), c.budget.clone());
            if seen.contains(&key) {
                continue;
            }
            seen.push(key);
            let _ = write!(s, "{:<12} {:>7} {:>7.1}", c.method, c.budget, c.calls);
            for m in CHARTED {
                let v = self
                    .cells
                    .iter()
                    .find(|x| x.method == c.method && x.budget == c.budget && x.stat.metric == m)
                    .map_or(f64::NAN, |x| x.stat.mean);
                let _ = write!(s, " {:>18}", fmt3(v));
            }
            s.push('\n');
        }
        let _ = writeln!(s, "wrote {}", self.out.display());
        s
    }
}

/// Reads every run's results and writes the sweep tables and charts into `out`.
pub fn sweep(runs: &[SweepRun], out: &Path) -> Result<SweepSummary> {
    if runs.is_empty() {
        return Err(EvalError::Invalid("a sweep needs at least one evaluation".into()));
    }
    let mut cells = Vec::new();
    for run in runs {
        let info = read_run_info(&run.dir)?;
        let results: Vec<ScenarioResult> = read_results(&run.dir, &info.config_hash)?;
        let all: Vec<&ScenarioResult> = results.iter().collect();
        let calls = crate::stats::mean(&results.iter().map(|r| r.calls as f64).collect::<Vec<_>>());
        for m in result::sliced() {
            cells.push(SweepCell {
                method: run.method.clone(),
                budget: run.budget.clone(),
                calls,
                stat: tables::stat(ALL, ALL, m, &all)?,
            });
        }
    }
    let mut files = Vec::new();
    let put = |rel: &str, bytes: &[u8], files: &mut Vec<PathBuf>| -> Result<()> {
        let path = out.join(rel);
        write_bytes_atomic(&path, bytes)?;
        files.push(PathBuf::from(rel));
        Ok(())
    };
    std::fs::create_dir_all(out.join(PLOTS_DIR)).map_err(super::io_err("create", out))?;
    put("sweep.csv", sweep_csv(&cells).as_bytes(), &mut files)?;
    put("sweep.md", sweep_md(&cells).as_bytes(), &mut files)?;
    for name in CHARTED {
        let Some(metric) = result::metric(name) else { continue };
        let chart = chart(metric, runs, &cells);
        put(&format!("{PLOTS_DIR}/sweep-{name}.png"), &render::canvas::png_bytes(&chart), &mut files)?;
    }
    Ok(SweepSummary { out: out.to_path_buf(), cells, files })
}

fn chart(metric: &Metric, runs: &[SweepRun], cells: &[SweepCell]) -> image::RgbImage {
    let mut methods: Vec<&str> = Vec::new();
    for r in runs {
        if !methods.contains(&r.method.as_str()) {
            methods.push(&r.method);
        }
    }
    let series: Vec<Series> = methods
        .iter()
        .map(|m| Series {
            name: m.to_string(),
            points: cells
                .iter()
                .filter(|c| c.method == *m && c.stat.metric == metric.name)
                .map(|c| (c.calls, Bar::from(&c.stat)))
                .collect(),
        })
        .collect();
    let title = format!("{} against editor calls per explanation", metric.label);
    plots::line_chart(&title, "editor calls per explanation (distinct masks)", &series, metric.range)
}

fn sweep_csv(cells: &[SweepCell]) -> String {
    let mut s = "method,budget,calls,metric,n_defined,mean,ci_low,ci_high\n".to_string();
    for c in cells {
        s.push_str(&csv_line(&[
            c.method.clone(),
            c.budget.clone(),
            num(c.calls),
            c.stat.metric.clone(),
            c.stat.n_defined.to_string(),
            num(c.stat.mean),
            num(c.stat.ci_low),
            num(c.stat.ci_high),
        ]));
    }
    s
}

fn sweep_md(cells: &[SweepCell]) -> String {
    let mut s = String::from("| method | budget | calls | metric | mean [95 % CI] |\n|---|---|---|---|---|\n");
    for c in cells {
        let _ = writeln!(
            s,
            "| {} | {} | {:.1} | {} | {} |",
            c.method,
            c.budget,
            c.calls,
            c.stat.metric,
            tables::mean_and_ci(&c.stat)
        );
    }
    s
}
