//! Editors side by side: per ODD slice, each editor's mean of every metric, and for every pair
//! of editors the mean difference over the scenarios both ran (matched by id) with a paired
//! bootstrap p-value and a Wilcoxon signed-rank p-value.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::measure::derive_seed;
use super::plots::{self, Bar, Chart};
use super::report::{self, escape};
use super::result::{self, HEADLINE};
use super::tables::{self, ALL, SliceStat};
use super::{EvalError, PLOTS_DIR, RUN_FILE, Result, RunInfo, ScenarioResult, create_dir, read_results, read_run_info};
use crate::io::write_bytes_atomic;
use crate::stats;

/// Bootstrap resamples of the paired test.
pub const RESAMPLES: usize = 2000;

/// The difference between two editors on one metric over one slice.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PairDiff {
    /// ODD axis, or [`ALL`].
    pub axis: String,
    /// Axis value, or [`ALL`].
    pub value: String,
    /// The metric.
    pub metric: String,
    /// First editor.
    pub a: String,
    /// Second editor.
    pub b: String,
    /// Scenarios of the slice both editors ran with the metric defined for both.
    pub n_pairs: usize,
    /// Mean of a − b over those.
    #[serde(with = "super::nan")]
    pub diff: f64,
    /// Two-sided paired bootstrap p-value ([`stats::paired_bootstrap_p`]).
    #[serde(with = "super::nan")]
    pub p_bootstrap: f64,
    /// Two-sided Wilcoxon signed-rank p-value ([`stats::wilcoxon_signed_rank_p`]); NaN when all differences are 0.
    #[serde(with = "super::nan")]
    pub p_wilcoxon: f64,
}

/// What a comparison produced.
#[derive(Debug, Clone)]
pub struct CompareSummary {
    /// The output folder.
    pub out: PathBuf,
    /// Editor names in the order given.
    pub editors: Vec<String>,
    /// Scenario ids every editor ran.
    pub shared: usize,
    /// Per-editor slice statistics: `stats[e]` for editor `e`.
    pub stats: Vec<Vec<SliceStat>>,
    /// Every pairwise difference.
    pub diffs: Vec<PairDiff>,
    /// Files written, relative to `out`.
    pub files: Vec<PathBuf>,
}

impl CompareSummary {
    /// A plain-text table of every metric's overall mean per editor and each pair's
    /// difference with its p-values, for the terminal.
    pub fn table(&self) -> String {
        let mut s =
            format!("{} scenarios shared by {} in {}\n", self.shared, self.editors.join(", "), self.out.display());
        s.push_str(&format!("{:<22}", "metric"));
        for e in &self.editors {
            s.push_str(&format!(" {e:>18}"));
        }
        s.push('\n');
        let overall = |stats: &[SliceStat], metric: &str| {
            stats.iter().find(|st| st.axis == ALL && st.metric == metric).map(|st| st.mean).unwrap_or(f64::NAN)
        };
        for st in self.stats.first().map(Vec::as_slice).unwrap_or(&[]).iter().filter(|st| st.axis == ALL) {
            s.push_str(&format!("{:<22}", st.metric));
            for stats in &self.stats {
                s.push_str(&format!(" {:>18}", tables::fmt3(overall(stats, &st.metric))));
            }
            s.push('\n');
        }
        for d in self.diffs.iter().filter(|d| d.axis == ALL) {
            s.push_str(&format!(
                "{} − {} {:<20} diff {:>8}  p(bootstrap) {:>6}  p(Wilcoxon) {:>6}  n {}\n",
                d.a,
                d.b,
                d.metric,
                tables::fmt3(d.diff),
                tables::fmt3(d.p_bootstrap),
                tables::fmt3(d.p_wilcoxon),
                d.n_pairs
            ));
        }
        s
    }
}

struct Run {
    name: String,
    dir: PathBuf,
    info: RunInfo,
    results: Vec<ScenarioResult>,
}

/// Compares evaluation outputs of several editors (`(name, folder)` pairs) and writes
/// `compare.md`, `compare.csv`, charts under `plots/` and `report.html` into `out`.
pub fn compare(runs: &[(String, PathBuf)], out: &Path) -> Result<CompareSummary> {
    if runs.is_empty() {
        return Err(EvalError::Invalid("compare needs at least one NAME=FOLDER evaluation".into()));
    }
    let mut seen = std::collections::BTreeSet::new();
    for (name, _) in runs {
        if name.trim().is_empty() || !seen.insert(name.clone()) {
            return Err(EvalError::Invalid(format!(
                "editor name {name:?} is empty or given twice. Fix: give each run a distinct NAME"
            )));
        }
    }
    if out.join(RUN_FILE).exists() {
        return Err(EvalError::Invalid(format!(
            "{} is an evaluation folder; comparing into it would overwrite its report. Fix: choose another --out",
            out.display()
        )));
    }
    let mut loaded = Vec::new();
    for (name, dir) in runs {
        let info = read_run_info(dir)?;
        let results = read_results(dir, &info.config_hash)?;
        loaded.push(Run { name: name.clone(), dir: dir.clone(), info, results });
    }
    let mut suite_axes: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for r in &loaded {
        for (axis, values) in &r.info.suite.axes {
            let entry = suite_axes.entry(axis.clone()).or_default();
            for v in values {
                if !entry.contains(v) {
                    entry.push(v.clone());
                }
            }
        }
    }
    let all_results: Vec<ScenarioResult> = loaded.iter().flat_map(|r| r.results.iter().cloned()).collect();
    let axes = tables::axes_with_values(&suite_axes, &all_results);
    let mut slice_keys: Vec<(String, String)> = vec![(ALL.into(), ALL.into())];
    for (axis, values) in &axes {
        slice_keys.extend(values.iter().map(|v| (axis.clone(), v.clone())));
    }
    let in_slice =
        |r: &ScenarioResult, axis: &str, value: &str| axis == ALL || r.odd.get(axis).is_some_and(|v| v == value);

    let mut stats = Vec::new();
    for run in &loaded {
        let mut s = Vec::new();
        for (axis, value) in &slice_keys {
            let members: Vec<&ScenarioResult> = run.results.iter().filter(|r| in_slice(r, axis, value)).collect();
            for m in result::sliced() {
                s.push(tables::stat(axis, value, m, &members)?);
            }
        }
        stats.push(s);
    }
    let by_id: Vec<HashMap<&str, &ScenarioResult>> =
        loaded.iter().map(|r| r.results.iter().map(|x| (x.id.as_str(), x)).collect()).collect();
    let shared = loaded[0].results.iter().filter(|r| by_id.iter().all(|m| m.contains_key(r.id.as_str()))).count();
    let mut diffs = Vec::new();
    for i in 0..loaded.len() {
        for j in i + 1..loaded.len() {
            for (axis, value) in &slice_keys {
                let pairs: Vec<(&ScenarioResult, &ScenarioResult)> = loaded[i]
                    .results
                    .iter()
                    .filter(|r| in_slice(r, axis, value))
                    .filter_map(|r| by_id[j].get(r.id.as_str()).map(|o| (r, *o)))
                    .collect();
                for m in result::sliced() {
                    let (a, b): (Vec<f64>, Vec<f64>) = pairs
                        .iter()
                        .map(|(x, y)| ((m.value)(x), (m.value)(y)))
                        .filter(|(x, y)| !x.is_nan() && !y.is_nan())
                        .unzip();
                    let d: Vec<f64> = a.iter().zip(&b).map(|(x, y)| x - y).collect();
                    let seed = derive_seed(0, &format!("compare\0{axis}\0{value}\0{}", m.name));
                    diffs.push(PairDiff {
                        axis: axis.clone(),
                        value: value.clone(),
                        metric: m.name.into(),
                        a: loaded[i].name.clone(),
                        b: loaded[j].name.clone(),
                        n_pairs: a.len(),
                        diff: stats::mean(&d),
                        p_bootstrap: stats::paired_bootstrap_p(&a, &b, RESAMPLES, seed)?,
                        p_wilcoxon: stats::wilcoxon_signed_rank_p(&a, &b)?,
                    });
                }
            }
        }
    }

    create_dir(&out.join(PLOTS_DIR))?;
    let mut files = Vec::new();
    let mut put = |name: String, bytes: &[u8]| -> Result<()> {
        write_bytes_atomic(&out.join(&name), bytes)?;
        files.push(PathBuf::from(name));
        Ok(())
    };
    let names: Vec<String> = loaded.iter().map(|r| r.name.clone()).collect();
    put("compare.csv".into(), compare_csv(&names, &slice_keys, &stats, &diffs).as_bytes())?;
    put("compare.md".into(), compare_md(&loaded, &slice_keys, &stats, &diffs).as_bytes())?;
    let charts = compare_charts(&names, &axes, &stats);
    for c in &charts {
        put(format!("{PLOTS_DIR}/{}", c.file), &c.png)?;
    }
    put("report.html".into(), compare_html(&loaded, &slice_keys, &stats, &diffs, &charts).as_bytes())?;
    Ok(CompareSummary { out: out.to_path_buf(), editors: names, shared, stats, diffs, files })
}

fn find<'a>(stats: &'a [SliceStat], axis: &str, value: &str, metric: &str) -> Option<&'a SliceStat> {
    stats.iter().find(|s| s.axis == axis && s.value == value && s.metric == metric)
}

fn find_diff<'a>(
    diffs: &'a [PairDiff],
    a: &str,
    b: &str,
    axis: &str,
    value: &str,
    metric: &str,
) -> Option<&'a PairDiff> {
    diffs.iter().find(|d| d.a == a && d.b == b && d.axis == axis && d.value == value && d.metric == metric)
}

fn pairs(names: &[String]) -> Vec<(&str, &str)> {
    let mut p = Vec::new();
    for i in 0..names.len() {
        for j in i + 1..names.len() {
            p.push((names[i].as_str(), names[j].as_str()));
        }
    }
    p
}

/// `compare.csv`: one row per (slice, metric); per editor n/mean/CI, per pair n/diff/p-values.
fn compare_csv(names: &[String], slices: &[(String, String)], stats: &[Vec<SliceStat>], diffs: &[PairDiff]) -> String {
    let mut header: Vec<String> = ["axis", "value", "metric"].map(String::from).to_vec();
    for n in names {
        for f in ["n", "mean", "ci_low", "ci_high"] {
            header.push(format!("{n}.{f}"));
        }
    }
    for (a, b) in pairs(names) {
        for f in ["n_pairs", "diff", "p_bootstrap", "p_wilcoxon"] {
            header.push(format!("{a}-{b}.{f}"));
        }
    }
    let mut out = tables::csv_line(&header);
    for (axis, value) in slices {
        for m in result::sliced().map(|m| m.name) {
            let mut row = vec![axis.clone(), value.clone(), m.to_string()];
            for s in stats {
                match find(s, axis, value, m) {
                    Some(st) => row.extend([
                        st.n_defined.to_string(),
                        tables::num(st.mean),
                        tables::num(st.ci_low),
                        tables::num(st.ci_high),
                    ]),
                    None => row.extend(["0", "NaN", "NaN", "NaN"].map(String::from)),
                }
            }
            for (a, b) in pairs(names) {
                match find_diff(diffs, a, b, axis, value, m) {
                    Some(d) => row.extend([
                        d.n_pairs.to_string(),
                        tables::num(d.diff),
                        tables::num(d.p_bootstrap),
                        tables::num(d.p_wilcoxon),
                    ]),
                    None => row.extend(["0", "NaN", "NaN", "NaN"].map(String::from)),
                }
            }
            out.push_str(&tables::csv_line(&row));
        }
    }
    out
}

fn fmt_p(p: f64) -> String {
    if p.is_nan() {
        "n/a".into()
    } else if p < 1e-3 {
        "<0.001".into()
    } else {
        format!("{p:.3}")
    }
}

fn diff_cell(d: Option<&PairDiff>) -> String {
    match d {
        Some(d) if d.n_pairs > 0 => {
            format!(
                "{:+.3} (n={}, p_boot={}, p_wilcoxon={})",
                d.diff,
                d.n_pairs,
                fmt_p(d.p_bootstrap),
                fmt_p(d.p_wilcoxon)
            )
        }
        _ => "n/a".into(),
    }
}

/// Whether the runs' evaluation settings (models aside) differ, which makes a comparison unfair.
fn configs_differ(runs: &[Run]) -> bool {
    let json = |r: &Run| serde_json::to_string(&r.info.config).unwrap_or_default();
    runs.windows(2).any(|w| json(&w[0]) != json(&w[1]))
}

/// `compare.md`: the runs, then one table per metric (rows: slices; columns: editors and pairs).
fn compare_md(runs: &[Run], slices: &[(String, String)], stats: &[Vec<SliceStat>], diffs: &[PairDiff]) -> String {
    let names: Vec<String> = runs.iter().map(|r| r.name.clone()).collect();
    let mut s = String::from(
        "# Editor comparison\n\n| name | editor | suite | scenarios | folder | config hash |\n|---|---|---|---:|---|---|\n",
    );
    for r in runs {
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} | {} |",
            r.name,
            r.info.editor.name,
            r.info.suite.name,
            r.results.len(),
            r.dir.display(),
            &r.info.config_hash[..12.min(r.info.config_hash.len())]
        );
    }
    if configs_differ(runs) {
        s.push_str("\n**Warning:** the runs were made with different evaluation settings; differences mix editor and settings.\n");
    }
    s.push_str("\nMeans with 95% bootstrap intervals per editor; differences are a − b over the scenarios both ran (matched by id), with a paired bootstrap and a Wilcoxon signed-rank p-value.\n");
    for m in result::sliced().map(|m| m.name) {
        let _ = writeln!(s, "\n## {m}\n");
        let mut header = vec!["slice".to_string()];
        header.extend(names.iter().cloned());
        header.extend(pairs(&names).iter().map(|(a, b)| format!("{a} − {b}")));
        let _ = writeln!(s, "| {} |", header.join(" | "));
        let _ = writeln!(s, "|---|{}", "---:|".repeat(header.len() - 1));
        for (axis, value) in slices {
            let label = if axis == ALL { ALL.to_string() } else { format!("{axis}={value}") };
            let mut row = vec![label.replace('|', "\\|")];
            for st in stats {
                row.push(
                    find(st, axis, value, m)
                        .map_or("n/a".into(), |x| format!("{} (n={})", tables::mean_and_ci(x), x.n_defined)),
                );
            }
            for (a, b) in pairs(&names) {
                row.push(diff_cell(find_diff(diffs, a, b, axis, value, m)));
            }
            let _ = writeln!(s, "| {} |", row.join(" | "));
        }
    }
    s
}

/// Grouped bars: the overall means per editor (metrics in [0, 1], then the gaps), and precision@k by every axis.
fn compare_charts(names: &[String], axes: &[(String, Vec<String>)], stats: &[Vec<SliceStat>]) -> Vec<Chart> {
    let bar = |st: &[SliceStat], axis: &str, value: &str, m: &str| {
        find(st, axis, value, m).map_or(Bar { mean: f64::NAN, low: f64::NAN, high: f64::NAN, n: 0 }, Bar::from)
    };
    let mut charts = Vec::new();
    // Metrics in [0, 1] share one scale; the charted metrics without a fixed range (the
    // faithfulness gaps, far smaller) get their own.
    let unit: Vec<&str> = result::sliced().filter(|m| m.is_unit()).map(|m| m.name).collect();
    let gaps: Vec<&str> = result::plotted().into_iter().filter(|m| m.range.is_none()).map(|m| m.name).collect();
    for (file, title, metrics, range) in [
        ("compare-overall.png", "all scenarios by editor (mean, 95% CI)", unit.as_slice(), Some((0.0, 1.0))),
        ("compare-gaps.png", "faithfulness gaps over random orders by editor (mean, 95% CI)", gaps.as_slice(), None),
    ] {
        let groups: Vec<String> = metrics.iter().map(|m| m.to_string()).collect();
        let values: Vec<Vec<Bar>> =
            metrics.iter().map(|m| stats.iter().map(|st| bar(st, ALL, ALL, m)).collect()).collect();
        let img = plots::grouped_bar_chart(title, &groups, names, &values, range);
        charts.push(Chart { file: file.into(), title: title.into(), axis: None, png: crate::render::png_bytes(&img) });
    }
    for (axis, vals) in axes {
        let m = HEADLINE.name;
        let values: Vec<Vec<Bar>> = vals.iter().map(|v| stats.iter().map(|st| bar(st, axis, v, m)).collect()).collect();
        let title = format!("{m} by {axis} and editor (mean, 95% CI)");
        let img = plots::grouped_bar_chart(&title, vals, names, &values, HEADLINE.range);
        charts.push(Chart {
            file: format!("compare-{m}-by-{}.png", plots::file_safe(axis)),
            title,
            axis: Some(axis.clone()),
            png: crate::render::png_bytes(&img),
        });
    }
    charts
}

fn compare_html(
    runs: &[Run],
    slices: &[(String, String)],
    stats: &[Vec<SliceStat>],
    diffs: &[PairDiff],
    charts: &[Chart],
) -> String {
    let names: Vec<String> = runs.iter().map(|r| r.name.clone()).collect();
    let mut s = report::head(&format!("gsmile comparison: {}", names.join(" vs ")));
    s.push_str("<section><h2>Runs</h2><table><tr><th>name</th><th>editor</th><th>suite</th><th>scenarios</th><th>config hash</th></tr>\n");
    for r in runs {
        let _ = writeln!(
            s,
            "<tr><td>{}</td><td class=\"t\">{}</td><td class=\"t\">{}</td><td>{}</td><td class=\"t\">{}</td></tr>",
            escape(&r.name),
            escape(&format!("{} ({})", r.info.editor.name, r.info.editor.sha256)),
            escape(&r.info.suite.name),
            r.results.len(),
            escape(&r.info.config_hash)
        );
    }
    s.push_str("</table>\n");
    if configs_differ(runs) {
        s.push_str("<p><strong>Warning:</strong> the runs were made with different evaluation settings; differences mix editor and settings.</p>\n");
    }
    s.push_str("</section>\n<section><h2>Charts</h2>\n");
    for c in charts {
        s.push_str(&report::img(c));
    }
    s.push_str("</section>\n");
    for m in result::sliced().map(|m| m.name) {
        let _ = writeln!(s, "<section><h2>{}</h2><table><tr><th>slice</th>", escape(m));
        for n in &names {
            let _ = write!(s, "<th>{}</th>", escape(n));
        }
        for (a, b) in pairs(&names) {
            let _ = write!(s, "<th>{} − {}</th>", escape(a), escape(b));
        }
        s.push_str("</tr>\n");
        for (axis, value) in slices {
            let label = if axis == ALL { ALL.to_string() } else { format!("{axis}={value}") };
            let _ = write!(s, "<tr><td>{}</td>", escape(&label));
            for st in stats {
                let cell = find(st, axis, value, m)
                    .map_or("n/a".into(), |x| format!("{} (n={})", tables::mean_and_ci(x), x.n_defined));
                let _ = write!(s, "<td>{}</td>", escape(&cell));
            }
            for (a, b) in pairs(&names) {
                let _ = write!(s, "<td>{}</td>", escape(&diff_cell(find_diff(diffs, a, b, axis, value, m))));
            }
            s.push_str("</tr>\n");
        }
        s.push_str("</table></section>\n");
    }
    s.push_str(report::PAGE_END);
    s
}
