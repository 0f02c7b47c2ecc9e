//! What one scenario's evaluation records ([`ScenarioResult`]) and the one list of metrics read
//! from it ([`METRICS`]). Tables, charts, the report and comparisons take every metric's name,
//! order, chart range and label from [`METRICS`] and nothing else.
//!
//! To add a metric, write its maths in [`crate::metrics`] and add one entry to [`METRICS`] whose
//! `value` computes it from what the result stores (words, attributions, key labels, curves). A
//! metric that needs editor runs the result does not keep also needs a field here, filled in
//! [`super::measure`].

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// A deletion or insertion curve and how it compares with random word orders.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CurveResult {
    /// Similarity to the full edit (−distance) at steps 0..=d along the attribution order.
    #[serde(with = "super::nan::vec")]
    pub curve: Vec<f64>,
    /// Area under `curve` (x in [0, 1]).
    #[serde(with = "super::nan")]
    pub attribution_auc: f64,
    /// Mean area under the random orders' curves.
    #[serde(with = "super::nan")]
    pub random_auc_mean: f64,
    /// Their population standard deviation.
    #[serde(with = "super::nan")]
    pub random_auc_std: f64,
    /// Improvement over random, positive = more faithful (see [`crate::metrics::CurveComparison`]).
    #[serde(with = "super::nan")]
    pub gap: f64,
    /// Fraction of random orders beaten, ties counting ½.
    #[serde(with = "super::nan")]
    pub beats_random: f64,
}

/// Everything measured on one scenario; written to `scenarios/<id>.json`.
///
/// NaN (JSON `null`) marks a quantity that is undefined for the scenario, e.g. a Spearman ρ
/// without related images.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScenarioResult {
    /// [`SCENARIO_SCHEMA`](super::SCENARIO_SCHEMA).
    pub schema: String,
    /// [`EvalConfig::hash`](super::EvalConfig::hash) of the run that made it.
    pub config_hash: String,
    /// Hash of the scenario's content (texts, ODD cell, image bytes); a changed scenario is re-run.
    pub scenario_hash: String,
    /// Scenario id.
    pub id: String,
    /// ODD axis → value.
    pub odd: BTreeMap<String, String>,
    /// The explanation method.
    #[serde(default = "default_method")]
    pub method: String,
    /// The explained instruction.
    pub instruction: String,
    /// Ground-truth key words.
    pub key_words: Vec<String>,
    /// The instruction's words, in order.
    pub words: Vec<String>,
    /// Attribution of each word.
    #[serde(with = "super::nan::vec")]
    pub attributions: Vec<f64>,
    /// Whether each word is a key word.
    pub key_labels: Vec<bool>,
    /// ROC AUC of the signed attributions against the key labels.
    #[serde(with = "super::nan")]
    pub roc_auc: f64,
    /// Precision@k with k = number of key words.
    #[serde(with = "super::nan")]
    pub precision_at_k: f64,
    /// The papers' ATT AUROC: ROC AUC, 0.5 when the words hold one class only.
    #[serde(default, with = "super::nan")]
    pub att_auroc: f64,
    /// The papers' ATT F1 (threshold [`crate::metrics::ATT_THRESHOLD`]).
    #[serde(default, with = "super::nan")]
    pub att_f1: f64,
    /// The papers' ATT accuracy (same threshold).
    #[serde(default, with = "super::nan")]
    pub att_accuracy: f64,
    /// Editor calls the explanation needed (distinct perturbed instructions), whether or
    /// not the cache served them: what a user pays per explanation.
    #[serde(default)]
    pub calls: usize,
    /// Weighted in-sample R² of the surrogate.
    #[serde(with = "super::nan")]
    pub r2: f64,
    /// Weighted in-sample MSE.
    #[serde(with = "super::nan")]
    pub mse: f64,
    /// R² on held-out perturbations.
    #[serde(with = "super::nan")]
    pub held_out_r2: f64,
    /// MSE on held-out perturbations.
    #[serde(with = "super::nan")]
    pub held_out_mse: f64,
    /// Weighted mean absolute error of the surrogate on its samples.
    #[serde(default, with = "super::nan")]
    pub mae: f64,
    /// Adjusted R² of the surrogate on its samples.
    #[serde(default, with = "super::nan")]
    pub adjusted_r2: f64,
    /// |mean(y) − mean(ŷ)| on the surrogate's samples.
    #[serde(default, with = "super::nan")]
    pub mean_gap: f64,
    /// L1 norm of the surrogate's residuals.
    #[serde(default, with = "super::nan")]
    pub residual_l1: f64,
    /// L2 norm of the surrogate's residuals.
    #[serde(default, with = "super::nan")]
    pub residual_l2: f64,
    /// Mean pairwise top-k Jaccard over the repeated explanations.
    #[serde(with = "super::nan")]
    pub stability_jaccard: f64,
    /// Mean pairwise Kendall τ over the repeated explanations.
    #[serde(with = "super::nan")]
    pub stability_kendall: f64,
    /// Mean top-k Jaccard of the original's words after neutral insertions ("###", "please"
    /// at the start, middle and end); NaN unless the evaluation makes them.
    #[serde(default, with = "super::nan")]
    pub insertion_stability: f64,
    /// Mean per-word variance of attributions over the repeated explanations.
    #[serde(default, with = "super::nan")]
    pub consistency_variance: f64,
    /// Mean per-word standard deviation of attributions over the repeated explanations.
    #[serde(default, with = "super::nan")]
    pub consistency_std: f64,
    /// Mean Spearman ρ of shared key words' attributions, original vs each paraphrase.
    #[serde(with = "super::nan")]
    pub paraphrase_spearman: f64,
    /// Mean top-k Jaccard of leading words, original vs each paraphrase.
    #[serde(with = "super::nan")]
    pub paraphrase_jaccard: f64,
    /// Mean Spearman ρ of attributions, original image vs each related image.
    #[serde(with = "super::nan")]
    pub related_spearman: f64,
    /// Deletion curve (lower AUC is better).
    pub deletion: CurveResult,
    /// Insertion curve (higher AUC is better).
    pub insertion: CurveResult,
    /// Edits the editor actually ran (the rest came from the cache); not part of the rows.
    pub edits_run: usize,
    /// Wall time in seconds; not part of the rows.
    pub seconds: f64,
}

fn default_method() -> String {
    "gsmile".into()
}

/// Fields of [`ScenarioResult`] that depend on the machine or the cache rather than the
/// method; left out of `rows.csv` and `rows.jsonl` so reruns give identical tables.
pub const RUN_ONLY_FIELDS: [&str; 5] = ["schema", "config_hash", "scenario_hash", "edits_run", "seconds"];

/// The curve a faithfulness metric summarises.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Curve {
    /// Words removed in attribution order (lower area is better).
    Deletion,
    /// Words added in attribution order (higher area is better).
    Insertion,
}

/// One metric of an evaluation: how it is read from a [`ScenarioResult`] and where it is shown.
#[derive(Debug, Clone, Copy)]
pub struct Metric {
    /// Its name in every table, chart file name and comparison.
    pub name: &'static str,
    /// A short name for people (report headings, chart titles).
    pub label: &'static str,
    /// What it measures, in one sentence.
    pub description: &'static str,
    /// Its value for one scenario; NaN where undefined.
    pub value: fn(&ScenarioResult) -> f64,
    /// The fixed y range of its charts; `None` scales them to the data.
    pub range: Option<(f64, f64)>,
    /// Whether larger values mean a better explanation.
    pub higher_is_better: bool,
    /// Aggregated per ODD slice: `slices.csv`, `slices.md`, the report's tables, comparisons.
    pub sliced: bool,
    /// Drawn as bars by every ODD axis.
    pub plotted: bool,
    /// A column of the report's worst-scenarios table.
    pub worst: bool,
    /// The curve it summarises; `rows.csv` puts each curve's columns together, after the others.
    pub curve: Option<Curve>,
    /// Aggregated by the median (with its bootstrap interval) instead of the mean.
    pub median: bool,
}

impl Metric {
    /// A metric shown in `rows.csv` only, higher is better, charted to the data's range.
    const fn new(
        name: &'static str,
        label: &'static str,
        description: &'static str,
        value: fn(&ScenarioResult) -> f64,
    ) -> Metric {
        Metric {
            name,
            label,
            description,
            value,
            range: None,
            higher_is_better: true,
            sliced: false,
            plotted: false,
            worst: false,
            curve: None,
            median: false,
        }
    }

    /// Aggregated by the median: a few extreme scenarios would dominate its mean.
    const fn by_median(mut self) -> Self {
        self.median = true;
        self
    }

    /// Lives in [0, 1], so its charts use that range.
    const fn unit(mut self) -> Self {
        self.range = Some((0.0, 1.0));
        self
    }

    /// Smaller values are better.
    const fn lower_is_better(mut self) -> Self {
        self.higher_is_better = false;
        self
    }

    /// Aggregated per ODD slice.
    const fn slice(mut self) -> Self {
        self.sliced = true;
        self
    }

    /// Charted by ODD axis.
    const fn plot(mut self) -> Self {
        self.plotted = true;
        self
    }

    /// Listed in the worst-scenarios table.
    const fn in_worst(mut self) -> Self {
        self.worst = true;
        self
    }

    /// Summarises `curve`.
    const fn of(mut self, curve: Curve) -> Self {
        self.curve = Some(curve);
        self
    }

    /// Whether its charts use the [0, 1] range.
    pub fn is_unit(&self) -> bool {
        self.range == Some((0.0, 1.0))
    }
}

/// Every metric, in table order.
#[rustfmt::skip]
pub const METRICS: &[Metric] = &[
    Metric::new("roc_auc", "ROC AUC", "ROC AUC of the signed attributions against the key words", |r| r.roc_auc)
        .unit().slice().plot().in_worst(),
    Metric::new("precision_at_k", "precision@k", "Share of key words among the k top words, k = number of key words", |r| r.precision_at_k)
        .unit().slice().plot().in_worst(),
    Metric::new("att_auroc", "ATT AUROC", "The papers' ATT AUROC: ROC AUC, 0.5 with one class", |r| r.att_auroc).unit(),
    Metric::new("att_f1", "ATT F1", "F1 of words above half the largest attribution against the key words", |r| r.att_f1).unit(),
    Metric::new("att_accuracy", "ATT accuracy", "Accuracy of words above half the largest attribution against the key words", |r| r.att_accuracy).unit(),
    Metric::new("calls", "editor calls", "Distinct perturbed instructions the explanation needed", |r| r.calls as f64)
        .lower_is_better().slice(),
    Metric::new("r2", "R²", "Weighted in-sample R² of the surrogate", |r| r.r2).slice(),
    Metric::new("mse", "MSE", "Weighted in-sample MSE of the surrogate", |r| r.mse).lower_is_better(),
    Metric::new("held_out_r2", "held-out R²", "Median R² of the surrogate on fresh perturbations", |r| r.held_out_r2)
        .slice().by_median(),
    Metric::new("held_out_mse", "held-out MSE", "MSE of the surrogate on fresh perturbations", |r| r.held_out_mse)
        .lower_is_better(),
    Metric::new("mae", "MAE", "Weighted mean absolute error of the surrogate on its samples", |r| r.mae).lower_is_better(),
    Metric::new("adjusted_r2", "adjusted R²", "Adjusted R² of the surrogate on its samples", |r| r.adjusted_r2),
    Metric::new("mean_gap", "|mean(y) − mean(ŷ)|", "Gap between the weighted means of targets and predictions", |r| r.mean_gap)
        .lower_is_better(),
    Metric::new("residual_l1", "residual L1", "L1 norm of the surrogate's residuals", |r| r.residual_l1).lower_is_better(),
    Metric::new("residual_l2", "residual L2", "L2 norm of the surrogate's residuals", |r| r.residual_l2).lower_is_better(),
    Metric::new("stability_jaccard", "stability Jaccard", "Mean pairwise top-k Jaccard across mask seeds", |r| r.stability_jaccard)
        .unit().slice(),
    Metric::new("stability_kendall", "stability Kendall τ", "Mean pairwise Kendall τ across mask seeds", |r| r.stability_kendall)
        .slice(),
    Metric::new("insertion_stability", "neutral-insertion Jaccard", "Top-k Jaccard after inserting ### or please at start, middle, end", |r| r.insertion_stability)
        .unit(),
    Metric::new("consistency_variance", "attribution variance", "Mean per-word variance of attributions across mask seeds", |r| r.consistency_variance)
        .lower_is_better(),
    Metric::new("consistency_std", "attribution std", "Mean per-word standard deviation of attributions across mask seeds", |r| r.consistency_std)
        .lower_is_better(),
    Metric::new("paraphrase_spearman", "paraphrase Spearman ρ", "Mean Spearman ρ of shared key words, original vs paraphrases", |r| r.paraphrase_spearman)
        .slice(),
    Metric::new("paraphrase_jaccard", "paraphrase Jaccard", "Mean top-k Jaccard of leading words, original vs paraphrases", |r| r.paraphrase_jaccard)
        .unit().slice(),
    Metric::new("related_spearman", "related-image Spearman ρ", "Mean Spearman ρ of attributions, original vs related images", |r| r.related_spearman)
        .slice(),
    Metric::new("deletion_auc", "deletion AUC", "Area under the deletion curve", |r| r.deletion.attribution_auc)
        .lower_is_better().of(Curve::Deletion),
    Metric::new("deletion_random_auc", "random deletion AUC", "Mean deletion AUC of random word orders", |r| r.deletion.random_auc_mean)
        .lower_is_better().of(Curve::Deletion),
    Metric::new("insertion_auc", "insertion AUC", "Area under the insertion curve", |r| r.insertion.attribution_auc)
        .of(Curve::Insertion),
    Metric::new("insertion_random_auc", "random insertion AUC", "Mean insertion AUC of random word orders", |r| r.insertion.random_auc_mean)
        .of(Curve::Insertion),
    Metric::new("deletion_gap", "deletion gap", "Random orders' mean deletion AUC minus the attribution order's", |r| r.deletion.gap)
        .slice().plot().in_worst().of(Curve::Deletion),
    Metric::new("insertion_gap", "insertion gap", "Attribution order's insertion AUC minus random orders' mean", |r| r.insertion.gap)
        .slice().plot().of(Curve::Insertion),
    Metric::new("deletion_beats_random", "deletion beats random", "Share of random orders the deletion curve beats", |r| r.deletion.beats_random)
        .unit().slice().of(Curve::Deletion),
    Metric::new("insertion_beats_random", "insertion beats random", "Share of random orders the insertion curve beats", |r| r.insertion.beats_random)
        .unit().slice().of(Curve::Insertion),
];

/// The metric the report leads with: first in charts and the worst-scenarios table, which it
/// sorts; the one the heatmaps and the comparison's per-axis charts show.
pub const HEADLINE: &Metric = find("precision_at_k");

/// The metric called `name`; fails to compile when there is none.
const fn find(name: &str) -> &'static Metric {
    let mut i = 0;
    while i < METRICS.len() {
        let (a, b) = (METRICS[i].name.as_bytes(), name.as_bytes());
        let mut same = a.len() == b.len();
        let mut j = 0;
        while same && j < a.len() {
            same = a[j] == b[j];
            j += 1;
        }
        if same {
            return &METRICS[i];
        }
        i += 1;
    }
    panic!("no metric of that name in METRICS");
}

/// The metric called `name`.
pub fn metric(name: &str) -> Option<&'static Metric> {
    METRICS.iter().find(|m| m.name == name)
}

/// Metrics aggregated per ODD slice, in table order.
pub fn sliced() -> impl Iterator<Item = &'static Metric> {
    METRICS.iter().filter(|m| m.sliced)
}

/// The columns of `rows.csv`: metrics of no curve in table order, then each curve's.
pub fn row_columns() -> Vec<&'static Metric> {
    let mut v: Vec<&Metric> = METRICS.iter().collect();
    v.sort_by_key(|m| m.curve);
    v
}

/// Metrics charted by ODD axis: [`HEADLINE`] first, then in table order.
pub fn plotted() -> Vec<&'static Metric> {
    headline_first(|m| m.plotted)
}

/// Columns of the worst-scenarios table: [`HEADLINE`] first, then in table order.
pub fn worst_columns() -> Vec<&'static Metric> {
    headline_first(|m| m.worst)
}

/// The metrics that pass `keep`, [`HEADLINE`] first.
fn headline_first(keep: fn(&Metric) -> bool) -> Vec<&'static Metric> {
    let mut v: Vec<&Metric> = METRICS.iter().filter(|m| keep(m)).collect();
    v.sort_by_key(|m| m.name != HEADLINE.name);
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_every_metric_is_described() {
        let mut names: Vec<&str> = METRICS.iter().map(|m| m.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), METRICS.len());
        for m in METRICS {
            assert!(!m.label.is_empty() && !m.description.is_empty(), "{}", m.name);
            assert!(m.name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'), "{}", m.name);
            assert_eq!(metric(m.name).map(|x| x.name), Some(m.name));
        }
        assert!(metric("no_such_metric").is_none());
    }

    #[test]
    fn headline_leads_the_charts_and_the_worst_table() {
        assert!(HEADLINE.sliced && HEADLINE.plotted && HEADLINE.worst && HEADLINE.range.is_some());
        assert_eq!(plotted()[0].name, HEADLINE.name);
        assert_eq!(worst_columns()[0].name, HEADLINE.name);
        assert_eq!(plotted().len(), METRICS.iter().filter(|m| m.plotted).count());
    }

    #[test]
    fn row_columns_keep_each_curve_together_after_the_others() {
        let cols = row_columns();
        assert_eq!(cols.len(), METRICS.len());
        let curves: Vec<Option<Curve>> = cols.iter().map(|m| m.curve).collect();
        assert!(curves.windows(2).all(|w| w[0] <= w[1]), "{curves:?}");
        for m in METRICS {
            match m.curve {
                Some(Curve::Deletion) => assert!(m.name.starts_with("deletion_"), "{}", m.name),
                Some(Curve::Insertion) => assert!(m.name.starts_with("insertion_"), "{}", m.name),
                None => {}
            }
        }
    }
}
