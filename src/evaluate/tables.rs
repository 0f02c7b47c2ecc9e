//! Tables of an evaluation: one row per scenario (`rows.csv`, `rows.jsonl`) and ODD slices
//! (`slices.csv`, `slices.md`): for every axis value, the mean of each metric with a 95 %
//! percentile-bootstrap interval ([`crate::stats::mean_ci`], seeded per cell); the metrics
//! and their order come from [`super::METRICS`].
//!
//! Everything here is a pure function of the results, so the same results give the same
//! bytes however they were produced (single run, resumed run, merged shards).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use super::measure::derive_seed;
use super::result::{self, Metric};
use super::{RUN_ONLY_FIELDS, Result, ScenarioResult};
use crate::stats;

/// Axis and value names of the slice over every scenario.
pub const ALL: &str = "all";

/// Confidence of slice intervals.
pub const CONFIDENCE: f64 = 0.95;

/// Bootstrap resamples of slice intervals.
pub const RESAMPLES: usize = 2000;

/// One metric's mean over one slice of scenarios.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SliceStat {
    /// ODD axis, or [`ALL`].
    pub axis: String,
    /// Axis value, or [`ALL`].
    pub value: String,
    /// Scenarios in the slice.
    pub n: usize,
    /// The metric.
    pub metric: String,
    /// Scenarios where the metric is defined (not NaN).
    pub n_defined: usize,
    /// Mean over those (the median for metrics aggregated by it, [`Metric::median`]).
    #[serde(with = "super::nan")]
    pub mean: f64,
    /// Lower end of the 95 % bootstrap interval.
    #[serde(with = "super::nan")]
    pub ci_low: f64,
    /// Upper end.
    #[serde(with = "super::nan")]
    pub ci_high: f64,
}

/// The axes to slice by with their values: the suite's values in its order, then any other
/// value the results use (sorted), then axes only the results name.
pub fn axes_with_values(
    suite_axes: &BTreeMap<String, Vec<String>>,
    results: &[ScenarioResult],
) -> Vec<(String, Vec<String>)> {
    let mut axes: BTreeMap<String, Vec<String>> = suite_axes.clone();
    let mut extra: BTreeMap<String, std::collections::BTreeSet<String>> = BTreeMap::new();
    for r in results {
        for (axis, value) in &r.odd {
            if !axes.get(axis).is_some_and(|v| v.contains(value)) {
                extra.entry(axis.clone()).or_default().insert(value.clone());
            }
        }
    }
    for (axis, values) in extra {
        axes.entry(axis).or_default().extend(values);
    }
    axes.into_iter().collect()
}

/// Mean with interval of `metric` over `members`.
pub fn stat(axis: &str, value: &str, metric: &Metric, members: &[&ScenarioResult]) -> Result<SliceStat> {
    let values: Vec<f64> = members.iter().map(|r| (metric.value)(r)).collect();
    let n_defined = values.iter().filter(|v| !v.is_nan()).count();
    let seed = derive_seed(0, &format!("slice\0{axis}\0{value}\0{}", metric.name));
    let (mean, ci_low, ci_high) = if metric.median {
        stats::median_ci(&values, CONFIDENCE, RESAMPLES, seed)?
    } else {
        stats::mean_ci(&values, CONFIDENCE, RESAMPLES, seed)?
    };
    Ok(SliceStat {
        axis: axis.into(),
        value: value.into(),
        n: members.len(),
        metric: metric.name.into(),
        n_defined,
        mean,
        ci_low,
        ci_high,
    })
}

/// Every slice: the [`ALL`] slice first, then each axis value, each with every metric.
pub fn slices(axes: &[(String, Vec<String>)], results: &[ScenarioResult]) -> Result<Vec<SliceStat>> {
    let mut out = Vec::new();
    let all: Vec<&ScenarioResult> = results.iter().collect();
    for m in result::sliced() {
        out.push(stat(ALL, ALL, m, &all)?);
    }
    for (axis, values) in axes {
        for value in values {
            let members: Vec<&ScenarioResult> = results.iter().filter(|r| r.odd.get(axis) == Some(value)).collect();
            for m in result::sliced() {
                out.push(stat(axis, value, m, &members)?);
            }
        }
    }
    Ok(out)
}

/// A number for CSV: Rust's shortest round-trip form, `NaN` when undefined.
pub fn num(v: f64) -> String {
    if v.is_nan() { "NaN".into() } else { format!("{v}") }
}

/// A number with three decimals for people, `n/a` when undefined.
pub fn fmt3(v: f64) -> String {
    if v.is_nan() {
        "n/a".into()
    } else if v != 0.0 && v.abs() < 5e-3 {
        // Three decimals would print 0.000 for small gaps and MSEs.
        format!("{v:.2e}")
    } else {
        format!("{v:.3}")
    }
}

/// A CSV field, quoted when it holds a comma, a quote or a line break (RFC 4180).
pub fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) { format!("\"{}\"", s.replace('"', "\"\"")) } else { s.to_string() }
}

/// Joins fields into one CSV line with a trailing newline.
pub fn csv_line(fields: &[String]) -> String {
    let mut s = fields.iter().map(|f| csv_field(f)).collect::<Vec<_>>().join(",");
    s.push('\n');
    s
}

/// `rows.csv`: one row per scenario, sorted by id, without run-dependent fields.
pub fn rows_csv(axes: &[(String, Vec<String>)], results: &[ScenarioResult]) -> String {
    let mut header: Vec<String> = vec!["id".into()];
    header.extend(axes.iter().map(|(a, _)| format!("odd.{a}")));
    header.extend(["instruction", "words", "key_words", "attributions"].map(String::from));
    let columns = result::row_columns();
    header.extend(columns.iter().map(|m| m.name.to_string()));
    let mut out = csv_line(&header);
    for r in results {
        let mut row = vec![r.id.clone()];
        row.extend(axes.iter().map(|(a, _)| r.odd.get(a).cloned().unwrap_or_default()));
        row.push(r.instruction.clone());
        row.push(r.words.join(" "));
        row.push(r.key_words.join(" "));
        row.push(r.attributions.iter().map(|v| num(*v)).collect::<Vec<_>>().join(" "));
        row.extend(columns.iter().map(|m| num((m.value)(r))));
        out.push_str(&csv_line(&row));
    }
    out
}

/// `rows.jsonl`: each result as one JSON line, sorted by id, without run-dependent fields.
pub fn rows_jsonl(results: &[ScenarioResult]) -> String {
    let mut out = String::new();
    for r in results {
        let mut v = serde_json::to_value(r).unwrap_or_default();
        if let Some(map) = v.as_object_mut() {
            for f in RUN_ONLY_FIELDS {
                map.remove(f);
            }
        }
        out.push_str(&v.to_string());
        out.push('\n');
    }
    out
}

/// `slices.csv`: one line per (axis, value, metric).
pub fn slices_csv(slices: &[SliceStat]) -> String {
    let header = ["axis", "value", "n", "metric", "n_defined", "mean", "ci_low", "ci_high"].map(String::from);
    let mut out = csv_line(&header);
    for s in slices {
        out.push_str(&csv_line(&[
            s.axis.clone(),
            s.value.clone(),
            s.n.to_string(),
            s.metric.clone(),
            s.n_defined.to_string(),
            num(s.mean),
            num(s.ci_low),
            num(s.ci_high),
        ]));
    }
    out
}

/// "0.620 [0.510, 0.730]", or "n/a".
pub fn mean_and_ci(s: &SliceStat) -> String {
    if s.mean.is_nan() { "n/a".into() } else { format!("{} [{}, {}]", fmt3(s.mean), fmt3(s.ci_low), fmt3(s.ci_high)) }
}

/// Escapes `|` for a Markdown table cell.
fn md_cell(s: &str) -> String {
    s.replace('|', "\\|")
}

/// The slices of one axis value, by metric.
pub fn lookup<'a>(slices: &'a [SliceStat], axis: &str, value: &str) -> BTreeMap<&'a str, &'a SliceStat> {
    slices.iter().filter(|s| s.axis == axis && s.value == value).map(|s| (s.metric.as_str(), s)).collect()
}

/// `slices.md`: the overall table, then one table per axis (rows: values; columns: metrics).
pub fn slices_md(suite: &str, axes: &[(String, Vec<String>)], slices: &[SliceStat]) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "# Evaluation of suite `{}` by ODD slice\n", md_cell(suite));
    let _ = writeln!(
        s,
        "Means with {}% percentile-bootstrap intervals ({RESAMPLES} resamples); n/a: undefined for every scenario of the slice.\n",
        (CONFIDENCE * 100.0).round()
    );
    let names: Vec<&str> = result::sliced().map(|m| m.name).collect();
    let header = |s: &mut String, first: &str| {
        let _ = writeln!(s, "| {first} | n | {} |", names.join(" | "));
        let _ = writeln!(s, "|---|---:|{}", "---:|".repeat(names.len()));
    };
    let row = |s: &mut String, label: &str, axis: &str, value: &str| {
        let by = lookup(slices, axis, value);
        let n = by.values().next().map_or(0, |st| st.n);
        let cells: Vec<String> = names.iter().map(|m| by.get(m).map_or("n/a".into(), |st| mean_and_ci(st))).collect();
        let _ = writeln!(s, "| {} | {n} | {} |", md_cell(label), cells.join(" | "));
    };
    let _ = writeln!(s, "## All scenarios\n");
    header(&mut s, "slice");
    row(&mut s, ALL, ALL, ALL);
    for (axis, values) in axes {
        let _ = writeln!(s, "\n## By {}\n", md_cell(axis));
        header(&mut s, axis);
        for v in values {
            row(&mut s, v, axis, v);
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_fields_are_quoted_when_needed() {
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(csv_field("plain"), "plain");
    }

    #[test]
    fn numbers_round_trip_and_nan_is_named() {
        assert_eq!(num(0.1), "0.1");
        assert_eq!(num(f64::NAN), "NaN");
        assert_eq!(num(1.0 / 3.0).parse::<f64>().unwrap(), 1.0 / 3.0);
        assert_eq!(fmt3(0.25), "0.250");
        assert_eq!(fmt3(0.0012), "1.20e-3");
        assert_eq!(fmt3(f64::NAN), "n/a");
    }

    #[test]
    fn axes_keep_suite_order_and_add_unknown_values() {
        let mut suite = BTreeMap::new();
        suite.insert("time".to_string(), vec!["night".to_string(), "day".to_string()]);
        let axes = axes_with_values(&suite, &[]);
        assert_eq!(axes, vec![("time".to_string(), vec!["night".to_string(), "day".to_string()])]);
    }
}
