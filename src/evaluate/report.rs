//! Self-contained HTML reports of an evaluation and of a comparison: run information, slice
//! tables, charts inlined as base64 PNG, and the scenarios explained worst.

use std::fmt::Write as _;

use super::plots::Chart;
use super::result::{self, HEADLINE};
use super::tables::{self, ALL, SliceStat};
use super::{RunInfo, ScenarioResult};

/// Scenarios listed in the "worst explained" table.
pub const WORST: usize = 10;

pub use crate::render::escape_html as escape;
pub use crate::render::html::PAGE_END;
use crate::render::html::{page_head, png_data_uri};

/// What the evaluation and comparison pages add to the shared stylesheet: compact bordered
/// tables with numbers right-aligned (text cells are `td.t`), and charts side by side.
const TABLE_CSS: &str = "
main { max-width:1400px; }
section { overflow-x:auto; }
table { width:auto; margin:0.5rem 0 1.5rem; font-size:13px; }
th, td { text-align:right; border:1px solid var(--line); white-space:nowrap; }
th:first-child, td:first-child, td.t { text-align:left; }
td.t { white-space:normal; }
section img { margin:0.5rem 1rem 0.5rem 0; border:1px solid var(--line); }
.muted { color:var(--muted); }
";

/// Opens a page titled `title`, with the title as its heading; close it with [`PAGE_END`].
pub fn head(title: &str) -> String {
    format!("{}<h1>{}</h1>\n", page_head(title, TABLE_CSS), escape(title))
}

/// An inlined PNG with its caption as alt text.
pub fn img(chart: &Chart) -> String {
    format!(
        "<img alt=\"{}\" title=\"{}\" src=\"{}\">\n",
        escape(&chart.title),
        escape(&chart.title),
        png_data_uri(&chart.png)
    )
}

/// A table of slices: one row per value of `axis` (or the overall row), one column per metric.
fn slice_table(slices: &[SliceStat], axis: &str, values: &[String]) -> String {
    let mut s = String::from("<table><tr><th>value</th><th>n</th>");
    for m in result::sliced() {
        let _ = write!(s, "<th>{}</th>", escape(m.name));
    }
    s.push_str("</tr>\n");
    for v in values {
        let by = tables::lookup(slices, axis, v);
        let n = by.values().next().map_or(0, |st| st.n);
        let _ = write!(s, "<tr><td>{}</td><td>{n}</td>", escape(v));
        for m in result::sliced() {
            let cell = by.get(m.name).map_or("n/a".into(), |st| tables::mean_and_ci(st));
            let _ = write!(s, "<td>{}</td>", escape(&cell));
        }
        s.push_str("</tr>\n");
    }
    s.push_str("</table>\n");
    s
}

/// Key-value rows.
fn info_table(rows: &[(&str, String)]) -> String {
    let mut s = String::from("<table>");
    for (k, v) in rows {
        let _ = write!(s, "<tr><th>{}</th><td class=\"t\">{}</td></tr>", escape(k), escape(v));
    }
    s.push_str("</table>\n");
    s
}

/// Run information rows of a `run.json`.
pub fn run_rows(info: &RunInfo) -> Vec<(&'static str, String)> {
    vec![
        ("suite", format!("{} ({} scenarios): {}", info.suite.name, info.suite.scenarios, info.suite.description)),
        ("editor", format!("{} ({}, sha256 {})", info.editor.name, info.editor.path, info.editor.sha256)),
        (
            "encoder",
            info.encoder.as_ref().map_or("none".into(), |e| format!("{} ({}, sha256 {})", e.name, e.path, e.sha256)),
        ),
        ("shard", info.shard.map_or("all".into(), |(i, n)| format!("{i}/{n}"))),
        ("merged from", if info.merged_from.is_empty() { "-".into() } else { info.merged_from.join(", ") }),
        ("config hash", info.config_hash.clone()),
        ("gsmile", info.gsmile_version.clone()),
    ]
}

/// The evaluation report: run info, slice tables with their charts, heatmaps, worst scenarios.
pub fn suite_report(
    info: &RunInfo,
    axes: &[(String, Vec<String>)],
    slices: &[SliceStat],
    results: &[ScenarioResult],
    charts: &[Chart],
) -> String {
    let mut s = head(&format!("gsmile evaluation: {} on {}", info.editor.name, info.suite.name));
    s.push_str("<section><h2>Run</h2>\n");
    let mut rows = run_rows(info);
    rows.push(("scenarios evaluated", results.len().to_string()));
    s.push_str(&info_table(&rows));
    let config = serde_json::to_string_pretty(&info.config).unwrap_or_default();
    let _ = writeln!(s, "<details><summary>configuration</summary><pre>{}</pre></details></section>", escape(&config));

    s.push_str("<section><h2>All scenarios</h2>\n<p class=\"muted\">Means with 95% percentile-bootstrap intervals; n/a: undefined for every scenario of the slice.</p>\n");
    s.push_str(&slice_table(slices, ALL, &[ALL.to_string()]));
    s.push_str("</section>\n");
    for (axis, values) in axes {
        let _ = writeln!(s, "<section><h2>By {}</h2>", escape(axis));
        s.push_str(&slice_table(slices, axis, values));
        for c in charts.iter().filter(|c| c.axis.as_deref() == Some(axis)) {
            s.push_str(&img(c));
        }
        s.push_str("</section>\n");
    }
    let heatmaps: Vec<&Chart> = charts.iter().filter(|c| c.axis.is_none()).collect();
    if !heatmaps.is_empty() {
        s.push_str("<section><h2>Accuracy over pairs of ODD axes</h2>\n");
        for c in heatmaps {
            s.push_str(&img(c));
        }
        s.push_str("</section>\n");
    }
    s.push_str(&worst_table(results));
    s.push_str(PAGE_END);
    s
}

/// The scenarios with the worst [`HEADLINE`] metric (undefined ones left out), worst first,
/// ties by lower ROC AUC, then by id.
pub fn worst(results: &[ScenarioResult], count: usize) -> Vec<&ScenarioResult> {
    let key = |r: &ScenarioResult| {
        let v = (HEADLINE.value)(r);
        if HEADLINE.higher_is_better { v } else { -v }
    };
    let mut w: Vec<&ScenarioResult> = results.iter().filter(|r| !key(r).is_nan()).collect();
    w.sort_by(|a, b| {
        key(a).total_cmp(&key(b)).then_with(|| a.roc_auc.total_cmp(&b.roc_auc)).then_with(|| a.id.cmp(&b.id))
    });
    w.truncate(count);
    w
}

fn worst_table(results: &[ScenarioResult]) -> String {
    let columns = result::worst_columns();
    let mut s = format!(
        "<section><h2>Worst {WORST} scenarios by {}</h2>\n<table><tr><th>id</th><th>ODD cell</th><th>instruction</th><th>key words</th><th>top words</th>",
        escape(HEADLINE.label)
    );
    for m in &columns {
        let _ = write!(s, "<th>{}</th>", escape(m.label));
    }
    s.push_str("</tr>\n");
    for r in worst(results, WORST) {
        let k = r.key_labels.iter().filter(|&&l| l).count();
        let top: Vec<String> = crate::metrics::deletion_order(&r.attributions)
            .into_iter()
            .take(k)
            .map(|i| format!("{} ({:+.3})", r.words[i], r.attributions[i]))
            .collect();
        let odd: Vec<String> = r.odd.iter().map(|(a, v)| format!("{a}={v}")).collect();
        let _ = write!(
            s,
            "<tr><td>{}</td><td class=\"t\">{}</td><td class=\"t\">{}</td><td class=\"t\">{}</td><td class=\"t\">{}</td>",
            escape(&r.id),
            escape(&odd.join(", ")),
            escape(&r.instruction),
            escape(&r.key_words.join(", ")),
            escape(&top.join(", ")),
        );
        for m in &columns {
            let _ = write!(s, "<td>{}</td>", tables::fmt3((m.value)(r)));
        }
        s.push_str("</tr>\n");
    }
    s.push_str("</table></section>\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_covers_markup() {
        assert_eq!(escape("<a href=\"x\">&'</a>"), "&lt;a href=&quot;x&quot;&gt;&amp;&#39;&lt;/a&gt;");
    }
}
