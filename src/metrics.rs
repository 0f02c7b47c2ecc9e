//! Explanation-quality metrics: how good is a gSMILE explanation?
//!
//! The gSMILE paper (Dehghani, Aslansefat et al., 2025) judges explanations on five
//! properties: accuracy, fidelity, stability, consistency and faithfulness. This module holds
//! the maths for each as pure functions over plain slices; the evaluator that re-runs editors,
//! collects curves and writes reports sits on top of it.
//!
//! * **Accuracy** — agreement of attributions with ground-truth key words:
//!   [`roc_auc`] (Mann–Whitney U / (n₊·n₋), = `sklearn.metrics.roc_auc_score`) and
//!   [`precision_at_k`] / [`precision_at_key_count`]. Attributions are signed and a key word
//!   should *drive* the edit, so the evaluator ranks by the signed attribution; [`by_magnitude`]
//!   gives the |attribution| variant for "important either way" analyses.
//! * **Fidelity** — how well the linear surrogate reproduces the editor:
//!   [`weighted_r2`] (= `sklearn.metrics.r2_score(y, ŷ, sample_weight=w)`),
//!   [`weighted_mse`] (= `mean_squared_error(..., sample_weight=w)`), and
//!   [`held_out_fidelity`] (unweighted R², MSE on fresh perturbations).
//! * **Stability** — agreement between explanations of the same input under different seeds:
//!   [`top_k_jaccard`] (|A∩B| / |A∪B| of the top-k index sets), [`kendall_tau`]
//!   (τ-b, = `scipy.stats.kendalltau`), averaged over runs with [`mean_pairwise`].
//! * **Consistency** — agreement across paraphrases of an instruction and across editor seeds:
//!   [`spearman`] (= `scipy.stats.spearmanr`), [`shared_key_agreement`] over the key words
//!   both paraphrases contain, and [`output_consistency`] (mean output distance between seeds).
//! * **Faithfulness** — deletion/insertion curves (Petsiuk et al., RISE, 2018): remove words in
//!   [`deletion_order`], record similarity to the full edit after each step, and compare the
//!   area under the curve ([`auc_trapezoid`], = `numpy.trapezoid` on x ∈ [0, 1]) with curves
//!   from [`random_orders`] via [`compare_to_random`].
//!
//! Aggregates over a benchmark (percentile-bootstrap intervals, paired tests) and the means,
//! percentiles and ranks these metrics build on are in [`crate::stats`].
//!
//! Conventions: functions over two or more slices return [`MetricsError`] when lengths differ;
//! a result is `NaN` only where the quantity is undefined (empty input, one class absent, a
//! constant vector, `NaN` in a rank-based input), and each function says when. Nothing panics.

use std::cmp::Ordering;

use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use thiserror::Error;

use crate::stats::{average_ranks, mean, nan_mean};

/// Invalid input to a metric (the caller's mistake, as opposed to an undefined value).
#[derive(Debug, Clone, PartialEq, Error)]
pub enum MetricsError {
    /// Two inputs that must be paired element by element have different lengths.
    #[error("{what}: inputs must have equal lengths, got {left} and {right}")]
    LengthMismatch {
        /// The function (and argument) that was called.
        what: &'static str,
        /// Length of the first input.
        left: usize,
        /// Length of the second input.
        right: usize,
    },
    /// A sample weight is negative or not finite.
    #[error("{what}: sample weight {index} is {value}; weights must be finite and non-negative")]
    InvalidWeight {
        /// The function that was called.
        what: &'static str,
        /// Position of the offending weight.
        index: usize,
        /// The offending weight.
        value: f64,
    },
}

/// Result of the fallible metrics.
pub type Result<T> = std::result::Result<T, MetricsError>;

/// Fails with [`MetricsError::LengthMismatch`] unless `left == right`.
fn same_len(what: &'static str, left: usize, right: usize) -> Result<()> {
    if left == right { Ok(()) } else { Err(MetricsError::LengthMismatch { what, left, right }) }
}

// ---------------------------------------------------------------------------------------------
// Ranking helpers
// ---------------------------------------------------------------------------------------------

/// Compares for a descending order with `NaN` last; equal values compare equal.
fn desc_nan_last(a: f64, b: f64) -> Ordering {
    match (a.is_nan(), b.is_nan()) {
        (true, true) => Ordering::Equal,
        (true, false) => Ordering::Greater,
        (false, true) => Ordering::Less,
        // total_cmp would order -0.0 before 0.0; treat them as the tie they are.
        (false, false) => b.partial_cmp(&a).unwrap_or(Ordering::Equal),
    }
}

/// Indices of `values` by descending value, ties by lower index first, `NaN` last.
fn descending_indices(values: &[f64]) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..values.len()).collect();
    // Stable sort keeps equal values in index order.
    idx.sort_by(|&i, &j| desc_nan_last(values[i], values[j]));
    idx
}

// ---------------------------------------------------------------------------------------------
// Accuracy
// ---------------------------------------------------------------------------------------------

/// Area under the ROC curve of `scores` against ground-truth key-word `labels`.
///
/// Matches `sklearn.metrics.roc_auc_score(labels, scores)`: AUC = U / (n₊·n₋) with
/// U = Σ rank(positives) − n₊(n₊+1)/2 over average ranks (Mann–Whitney U), so a tied
/// positive/negative pair counts ½. `NaN` when either class is absent or a score is `NaN`.
/// Pass attributions as they are (signed: a key word should push toward the edit); use
/// [`by_magnitude`] first for the unsigned variant.
pub fn roc_auc(scores: &[f64], labels: &[bool]) -> Result<f64> {
    same_len("roc_auc", scores.len(), labels.len())?;
    let n_pos = labels.iter().filter(|&&l| l).count();
    let n_neg = labels.len() - n_pos;
    if n_pos == 0 || n_neg == 0 {
        return Ok(f64::NAN);
    }
    let Some(ranks) = average_ranks(scores) else {
        return Ok(f64::NAN);
    };
    let rank_sum: f64 = ranks.iter().zip(labels).filter(|(_, l)| **l).map(|(r, _)| r).sum();
    let (p, n) = (n_pos as f64, n_neg as f64);
    let u = rank_sum - p * (p + 1.0) / 2.0;
    Ok(u / (p * n))
}

/// Absolute values of `attributions`, to rank words by importance regardless of direction.
///
/// The evaluator's accuracy uses signed attributions (positive = drives the edit, the
/// gSMILE reading); `roc_auc(&by_magnitude(a), labels)` is the "important either way" variant.
pub fn by_magnitude(attributions: &[f64]) -> Vec<f64> {
    attributions.iter().map(|a| a.abs()).collect()
}

/// Fraction of the `k` highest `scores` whose `labels` are true (precision@k).
///
/// Ties in score are broken by lower index first (the earlier word wins), `NaN` scores rank
/// last, and `k` larger than the number of items is clamped to it. `NaN` when `k` is 0 or the
/// input is empty.
pub fn precision_at_k(scores: &[f64], labels: &[bool], k: usize) -> Result<f64> {
    same_len("precision_at_k", scores.len(), labels.len())?;
    let k = k.min(scores.len());
    if k == 0 {
        return Ok(f64::NAN);
    }
    let hits = descending_indices(scores)[..k].iter().filter(|&&i| labels[i]).count();
    Ok(hits as f64 / k as f64)
}

/// Precision@k with k = the number of true labels (R-precision): did the key words come first?
///
/// `NaN` when no label is true.
pub fn precision_at_key_count(scores: &[f64], labels: &[bool]) -> Result<f64> {
    let k = labels.iter().filter(|&&l| l).count();
    precision_at_k(scores, labels, k)
}

/// The papers' ATT AUROC: [`roc_auc`], but 0.5 (chance) when the labels hold one class only.
pub fn att_auroc(scores: &[f64], labels: &[bool]) -> Result<f64> {
    let auc = roc_auc(scores, labels)?;
    let one_class = labels.iter().all(|&l| l) || labels.iter().all(|&l| !l);
    Ok(if one_class && !labels.is_empty() { 0.5 } else { auc })
}

/// Share of the largest attribution a word must reach to count as found by [`att_f1_accuracy`].
pub const ATT_THRESHOLD: f64 = 0.5;

/// The papers' ATT F1 and ATT accuracy, `(f1, accuracy)`: a word is predicted to be a key
/// word when its attribution is positive and at least [`ATT_THRESHOLD`] × the largest
/// attribution; F1 and accuracy of those predictions against `labels`. F1 is 0 when nothing
/// is predicted or no label is true (sklearn's `zero_division=0`); both `NaN` when empty.
pub fn att_f1_accuracy(attributions: &[f64], labels: &[bool]) -> Result<(f64, f64)> {
    same_len("att_f1_accuracy", attributions.len(), labels.len())?;
    if attributions.is_empty() {
        return Ok((f64::NAN, f64::NAN));
    }
    let max = attributions.iter().copied().filter(|a| a.is_finite()).fold(f64::NEG_INFINITY, f64::max);
    let predicted: Vec<bool> = attributions.iter().map(|&a| a > 0.0 && a >= ATT_THRESHOLD * max).collect();
    let tp = predicted.iter().zip(labels).filter(|(p, l)| **p && **l).count() as f64;
    let fp = predicted.iter().zip(labels).filter(|(p, l)| **p && !**l).count() as f64;
    let fn_ = predicted.iter().zip(labels).filter(|(p, l)| !**p && **l).count() as f64;
    let f1 = if tp == 0.0 { 0.0 } else { 2.0 * tp / (2.0 * tp + fp + fn_) };
    let correct = predicted.iter().zip(labels).filter(|(p, l)| p == l).count() as f64;
    Ok((f1, correct / labels.len() as f64))
}

// ---------------------------------------------------------------------------------------------
// Fidelity
// ---------------------------------------------------------------------------------------------

/// Checks paired lengths and weights of the fidelity metrics.
fn check_weighted(what: &'static str, y: &[f64], pred: &[f64], w: &[f64]) -> Result<()> {
    same_len(what, y.len(), pred.len())?;
    same_len(what, y.len(), w.len())?;
    match w.iter().position(|v| !v.is_finite() || *v < 0.0) {
        Some(index) => Err(MetricsError::InvalidWeight { what, index, value: w[index] }),
        None => Ok(()),
    }
}

/// Weighted coefficient of determination of `pred` against `y` with sample weights `w`.
///
/// Matches `sklearn.metrics.r2_score(y, pred, sample_weight=w)`:
/// R² = 1 − Σwᵢ(yᵢ−ŷᵢ)² / Σwᵢ(yᵢ−ȳ_w)² with ȳ_w = Σwᵢyᵢ / Σwᵢ; like sklearn's default
/// `force_finite=True`, a zero denominator gives 1 for a perfect fit and 0 otherwise.
/// `NaN` with fewer than two samples (sklearn warns and returns `nan`) or zero total weight.
pub fn weighted_r2(y: &[f64], pred: &[f64], w: &[f64]) -> Result<f64> {
    check_weighted("weighted_r2", y, pred, w)?;
    Ok(r2_unchecked(y, pred, w))
}

/// R² without input checks; see [`weighted_r2`].
fn r2_unchecked(y: &[f64], pred: &[f64], w: &[f64]) -> f64 {
    let sw: f64 = w.iter().sum();
    if y.len() < 2 || sw <= 0.0 {
        return f64::NAN;
    }
    let mean = y.iter().zip(w).map(|(y, w)| w * y).sum::<f64>() / sw;
    let num: f64 = y.iter().zip(pred).zip(w).map(|((y, p), w)| w * (y - p) * (y - p)).sum();
    let den: f64 = y.iter().zip(w).map(|(y, w)| w * (y - mean) * (y - mean)).sum();
    if den == 0.0 {
        return if num == 0.0 { 1.0 } else { 0.0 };
    }
    1.0 - num / den
}

/// Weighted mean squared error of `pred` against `y` with sample weights `w`.
///
/// Matches `sklearn.metrics.mean_squared_error(y, pred, sample_weight=w)`:
/// Σwᵢ(yᵢ−ŷᵢ)² / Σwᵢ. `NaN` when empty or the weights sum to zero.
pub fn weighted_mse(y: &[f64], pred: &[f64], w: &[f64]) -> Result<f64> {
    check_weighted("weighted_mse", y, pred, w)?;
    Ok(mse_unchecked(y, pred, w))
}

/// MSE without input checks; see [`weighted_mse`].
fn mse_unchecked(y: &[f64], pred: &[f64], w: &[f64]) -> f64 {
    let sw: f64 = w.iter().sum();
    if sw <= 0.0 {
        return f64::NAN;
    }
    y.iter().zip(pred).zip(w).map(|((y, p), w)| w * (y - p) * (y - p)).sum::<f64>() / sw
}

/// Unweighted `(R², MSE)` of surrogate predictions on fresh held-out perturbations.
///
/// Equal weights in [`weighted_r2`] and [`weighted_mse`] (`r2_score(y_true, y_pred)`,
/// `mean_squared_error(y_true, y_pred)`): held-out samples are drawn afresh, so no locality
/// kernel applies. R² is `NaN` below two samples, MSE when empty.
pub fn held_out_fidelity(y_true: &[f64], y_pred: &[f64]) -> Result<(f64, f64)> {
    same_len("held_out_fidelity", y_true.len(), y_pred.len())?;
    let w = vec![1.0; y_true.len()];
    Ok((r2_unchecked(y_true, y_pred, &w), mse_unchecked(y_true, y_pred, &w)))
}

/// The papers' fidelity forms of a surrogate on its own samples.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FidelityForms {
    /// Weighted MSE ([`weighted_mse`]).
    pub mse: f64,
    /// Weighted mean absolute error Σwᵢ|yᵢ−ŷᵢ| / Σwᵢ.
    pub mae: f64,
    /// Weighted R² ([`weighted_r2`]).
    pub r2: f64,
    /// Adjusted R², 1 − (1 − R²)(n − 1)/(n − p − 1) with n samples and p words; `NaN` when n ≤ p + 1.
    pub adjusted_r2: f64,
    /// |mean(y) − mean(ŷ)| (weighted means).
    pub mean_gap: f64,
    /// L1 norm of the residuals, Σ|yᵢ−ŷᵢ| (unweighted).
    pub l1: f64,
    /// L2 norm of the residuals, √Σ(yᵢ−ŷᵢ)² (unweighted).
    pub l2: f64,
}

/// Every fidelity form of `pred` against `y` with weights `w`, for a model of `p` words.
pub fn fidelity_forms(y: &[f64], pred: &[f64], w: &[f64], p: usize) -> Result<FidelityForms> {
    check_weighted("fidelity_forms", y, pred, w)?;
    let sw: f64 = w.iter().sum();
    let wmean = |v: &[f64]| if sw > 0.0 { v.iter().zip(w).map(|(a, b)| a * b).sum::<f64>() / sw } else { f64::NAN };
    let r2 = r2_unchecked(y, pred, w);
    let n = y.len() as f64;
    let adjusted_r2 = if n > p as f64 + 1.0 { 1.0 - (1.0 - r2) * (n - 1.0) / (n - p as f64 - 1.0) } else { f64::NAN };
    let abs: Vec<f64> = y.iter().zip(pred).map(|(a, b)| (a - b).abs()).collect();
    Ok(FidelityForms {
        mse: mse_unchecked(y, pred, w),
        mae: wmean(&abs),
        r2,
        adjusted_r2,
        mean_gap: (wmean(y) - wmean(pred)).abs(),
        l1: abs.iter().sum(),
        l2: abs.iter().map(|a| a * a).sum::<f64>().sqrt(),
    })
}

// ---------------------------------------------------------------------------------------------
// Stability
// ---------------------------------------------------------------------------------------------

/// Jaccard index |A∩B| / |A∪B| of the index sets of the `k` largest values of `a` and of `b`.
///
/// Top-k uses the same order as [`deletion_order`] (descending, ties by lower index, `NaN`
/// last); `k` beyond the length is clamped. `NaN` when `k` is 0 or the inputs are empty.
pub fn top_k_jaccard(a: &[f64], b: &[f64], k: usize) -> Result<f64> {
    same_len("top_k_jaccard", a.len(), b.len())?;
    let k = k.min(a.len());
    if k == 0 {
        return Ok(f64::NAN);
    }
    let top_a = &descending_indices(a)[..k];
    let top_b = &descending_indices(b)[..k];
    let inter = top_a.iter().filter(|i| top_b.contains(i)).count();
    Ok(inter as f64 / (2 * k - inter) as f64)
}

/// Kendall rank correlation τ-b of `a` and `b`, accounting for ties.
///
/// Matches `scipy.stats.kendalltau(a, b).statistic`: τ_b = (n_c − n_d) /
/// √((n₀ − n₁)(n₀ − n₂)) with n₀ = n(n−1)/2 pairs, n₁ / n₂ pairs tied in `a` / `b`, clipped to
/// [−1, 1]. O(n²) over pairs, fine for instruction-length vectors. `NaN` with fewer than two
/// items, a constant input, or any `NaN` (scipy's `nan_policy="propagate"`).
pub fn kendall_tau(a: &[f64], b: &[f64]) -> Result<f64> {
    same_len("kendall_tau", a.len(), b.len())?;
    let n = a.len();
    if n < 2 || a.iter().chain(b).any(|v| v.is_nan()) {
        return Ok(f64::NAN);
    }
    let (mut s, mut tie_a, mut tie_b) = (0i64, 0u64, 0u64);
    for i in 0..n {
        for j in i + 1..n {
            let da = a[i].partial_cmp(&a[j]).unwrap_or(Ordering::Equal);
            let db = b[i].partial_cmp(&b[j]).unwrap_or(Ordering::Equal);
            tie_a += u64::from(da == Ordering::Equal);
            tie_b += u64::from(db == Ordering::Equal);
            s += (da as i64) * (db as i64);
        }
    }
    let total = (n as u64) * (n as u64 - 1) / 2;
    if tie_a == total || tie_b == total {
        return Ok(f64::NAN);
    }
    // One square root of the product (scipy divides by two roots): the same value up to
    // rounding, and exactly ±1 for identical or reversed inputs.
    let tau = s as f64 / (((total - tie_a) as f64) * ((total - tie_b) as f64)).sqrt();
    Ok(tau.clamp(-1.0, 1.0))
}

/// Mean of `f` over all unordered pairs of `runs` (stability across seeds).
///
/// Pairs where `f` gives `NaN` are skipped; `NaN` with fewer than two runs or no defined pair.
/// Wrap a fallible metric as `|a, b| kendall_tau(a, b).unwrap_or(f64::NAN)`.
pub fn mean_pairwise<F: Fn(&[f64], &[f64]) -> f64>(runs: &[Vec<f64>], f: F) -> f64 {
    if runs.len() < 2 {
        return f64::NAN;
    }
    let f = &f;
    nan_mean((0..runs.len()).flat_map(|i| (i + 1..runs.len()).map(move |j| f(&runs[i], &runs[j]))))
}

// ---------------------------------------------------------------------------------------------
// Consistency
// ---------------------------------------------------------------------------------------------

/// The papers' consistency over repeated runs, `(variance, standard deviation)`: each word's
/// attribution variance across `runs` (population variance, `numpy.var`), averaged over
/// words, and the mean of the per-word standard deviations. `NaN` with fewer than two runs.
pub fn attribution_spread(runs: &[Vec<f64>]) -> (f64, f64) {
    let Some(first) = runs.first() else { return (f64::NAN, f64::NAN) };
    if runs.len() < 2 || first.is_empty() || runs.iter().any(|r| r.len() != first.len()) {
        return (f64::NAN, f64::NAN);
    }
    let m = runs.len() as f64;
    let (mut var, mut std) = (0.0, 0.0);
    for j in 0..first.len() {
        let mean = runs.iter().map(|r| r[j]).sum::<f64>() / m;
        let v = runs.iter().map(|r| (r[j] - mean).powi(2)).sum::<f64>() / m;
        var += v;
        std += v.sqrt();
    }
    let d = first.len() as f64;
    (var / d, std / d)
}

/// The neutral insertions of the papers' stability test: `"###"` and `"please"` at the start,
/// the middle (before word ⌊d/2⌋, counting from 0) and the end of `instruction`, each with the index of the
/// inserted word among the new instruction's words (`None` for `"###"`, which is not a word).
pub fn neutral_insertions(instruction: &str) -> Vec<(String, Option<usize>)> {
    let words = crate::perturb::split_words(instruction);
    let middle_word = words.len() / 2;
    let cut = words.get(middle_word).map_or(instruction.len(), |w| w.start);
    let mut out = Vec::new();
    for token in ["###", "please"] {
        let is_word = token != "###";
        out.push((format!("{token} {instruction}"), is_word.then_some(0)));
        let middle = format!("{} {token} {}", instruction[..cut].trim_end(), &instruction[cut..]);
        out.push((middle.trim().to_string(), is_word.then_some(middle_word)));
        out.push((format!("{instruction} {token}"), is_word.then_some(words.len())));
    }
    out
}

/// Spearman rank correlation of `a` and `b` (Pearson correlation of their average ranks).
///
/// Matches `scipy.stats.spearmanr(a, b).statistic`, ties getting average ranks, clipped to
/// [−1, 1]. `NaN` with fewer than two items, a constant input, or any `NaN`.
pub fn spearman(a: &[f64], b: &[f64]) -> Result<f64> {
    same_len("spearman", a.len(), b.len())?;
    if a.len() < 2 {
        return Ok(f64::NAN);
    }
    let (Some(ra), Some(rb)) = (average_ranks(a), average_ranks(b)) else {
        return Ok(f64::NAN);
    };
    Ok(pearson(&ra, &rb))
}

/// Pearson correlation of equal-length slices; `NaN` when either is constant.
fn pearson(x: &[f64], y: &[f64]) -> f64 {
    let (mx, my) = (mean(x), mean(y));
    let (mut sxy, mut sxx, mut syy) = (0.0, 0.0, 0.0);
    for (a, b) in x.iter().zip(y) {
        let (dx, dy) = (a - mx, b - my);
        sxy += dx * dy;
        sxx += dx * dx;
        syy += dy * dy;
    }
    if sxx == 0.0 || syy == 0.0 {
        return f64::NAN;
    }
    (sxy / (sxx.sqrt() * syy.sqrt())).clamp(-1.0, 1.0)
}

/// Agreement of two paraphrases' explanations on the key words both contain.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct KeyAgreement {
    /// [`spearman`] of the shared key words' attributions (`NaN` below two shared words).
    pub spearman: f64,
    /// Jaccard of the two paraphrases' top-k word sets (case-insensitive), k = `shared`.
    pub top_k_jaccard: f64,
    /// Number of distinct key words found in both paraphrases.
    pub shared: usize,
}

/// Compares the attributions of the key words two paraphrases share (consistency).
///
/// Words match case-insensitively; a word repeated in a paraphrase contributes its first
/// occurrence, and repeated key words count once. `spearman` correlates the shared key
/// words' attributions in `a_words` and `b_words`; `top_k_jaccard` is |A∩B| / |A∪B| of the
/// sets of lower-cased words holding the k = `shared` largest attributions in each
/// paraphrase (ties by position), i.e. whether the same words lead both explanations.
/// Both are `NaN` when no key word is shared.
pub fn shared_key_agreement(
    a_words: &[(String, f64)],
    b_words: &[(String, f64)],
    key_words: &[String],
) -> KeyAgreement {
    let lookup =
        |words: &[(String, f64)], key: &str| words.iter().find(|(w, _)| w.to_lowercase() == key).map(|(_, v)| *v);
    let mut seen: Vec<String> = Vec::new();
    let (mut va, mut vb) = (Vec::new(), Vec::new());
    for key in key_words {
        let key = key.to_lowercase();
        if seen.contains(&key) {
            continue;
        }
        if let (Some(x), Some(y)) = (lookup(a_words, &key), lookup(b_words, &key)) {
            va.push(x);
            vb.push(y);
        }
        seen.push(key);
    }
    let shared = va.len();
    // Equal lengths by construction, so this cannot fail.
    let rho = spearman(&va, &vb).unwrap_or(f64::NAN);
    let top_words = |words: &[(String, f64)]| {
        let values: Vec<f64> = words.iter().map(|(_, v)| *v).collect();
        let mut set: Vec<String> = Vec::new();
        for i in descending_indices(&values).into_iter().take(shared) {
            let w = words[i].0.to_lowercase();
            if !set.contains(&w) {
                set.push(w);
            }
        }
        set
    };
    let jaccard = if shared == 0 {
        f64::NAN
    } else {
        let (ta, tb) = (top_words(a_words), top_words(b_words));
        let inter = ta.iter().filter(|w| tb.contains(w)).count();
        let union = ta.len() + tb.len() - inter;
        if union == 0 { f64::NAN } else { inter as f64 / union as f64 }
    };
    KeyAgreement { spearman: rho, top_k_jaccard: jaccard, shared }
}

/// Mean output distance between runs of a stochastic editor with different seeds.
///
/// The baseline against which explanation differences are judged: an explanation cannot be
/// more consistent than the editor's own outputs. `NaN` entries are skipped; `NaN` when none.
pub fn output_consistency(distances_between_seeds: &[f64]) -> f64 {
    nan_mean(distances_between_seeds.iter().copied())
}

// ---------------------------------------------------------------------------------------------
// Faithfulness
// ---------------------------------------------------------------------------------------------

/// Order in which to delete (or insert) words: descending attribution, ties by lower index.
///
/// `NaN` attributions go last. Step t of a deletion curve removes the first t words of this
/// order (Petsiuk et al. 2018, RISE deletion metric).
pub fn deletion_order(attributions: &[f64]) -> Vec<usize> {
    descending_indices(attributions)
}

/// Area under a curve sampled at evenly spaced x in [0, 1] by the trapezoidal rule.
///
/// Matches `numpy.trapezoid(values, dx=1/(len-1))`; a single point gives its value (a
/// constant curve over [0, 1]); `NaN` when empty.
pub fn auc_trapezoid(values: &[f64]) -> f64 {
    match values.len() {
        0 => f64::NAN,
        1 => values[0],
        n => {
            let dx = 1.0 / (n - 1) as f64;
            values.windows(2).map(|p| dx * (p[0] + p[1]) / 2.0).sum()
        }
    }
}

/// How an attribution-ordered curve's AUC compares with AUCs of random orderings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CurveComparison {
    /// [`auc_trapezoid`] of the attribution-ordered curve.
    pub attribution_auc: f64,
    /// Mean AUC of the random curves (`NaN` when there are none).
    pub random_auc_mean: f64,
    /// Population standard deviation (ddof = 0, `numpy.std`) of the random AUCs.
    pub random_auc_std: f64,
    /// Improvement over random, positive = more faithful: mean − attribution AUC when lower is
    /// better, attribution − mean when higher is better.
    pub gap: f64,
    /// Fraction of random orderings whose AUC the attribution order beats, ties counting ½.
    pub beats_random: f64,
}

/// Compares the attribution order's curve with curves from random word orders.
///
/// For deletion curves of "similarity to the full edit" a faithful explanation makes the
/// similarity drop fast, so lower AUC is better (`higher_is_better = false`); for insertion
/// curves pass `true`. Every random curve must have the attribution curve's length.
pub fn compare_to_random(
    attribution_curve: &[f64],
    random_curves: &[Vec<f64>],
    higher_is_better: bool,
) -> Result<CurveComparison> {
    for c in random_curves {
        same_len("compare_to_random (random curve vs attribution curve)", c.len(), attribution_curve.len())?;
    }
    let attribution_auc = auc_trapezoid(attribution_curve);
    let aucs: Vec<f64> = random_curves.iter().map(|c| auc_trapezoid(c)).collect();
    let (random_auc_mean, random_auc_std, beats_random) = if aucs.is_empty() {
        (f64::NAN, f64::NAN, f64::NAN)
    } else {
        let n = aucs.len() as f64;
        let mean = mean(&aucs);
        let std = (aucs.iter().map(|a| (a - mean) * (a - mean)).sum::<f64>() / n).sqrt();
        let score: f64 = aucs
            .iter()
            .map(|&r| {
                let better = if higher_is_better { attribution_auc > r } else { attribution_auc < r };
                if better {
                    1.0
                } else if attribution_auc == r {
                    0.5
                } else {
                    0.0
                }
            })
            .sum();
        (mean, std, score / n)
    };
    let gap = if higher_is_better { attribution_auc - random_auc_mean } else { random_auc_mean - attribution_auc };
    Ok(CurveComparison { attribution_auc, random_auc_mean, random_auc_std, gap, beats_random })
}

/// `count` random permutations of `0..d`, deterministic for a `seed` (ChaCha8, Fisher–Yates).
pub fn random_orders(d: usize, count: usize, seed: u64) -> Vec<Vec<usize>> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    (0..count)
        .map(|_| {
            let mut order: Vec<usize> = (0..d).collect();
            order.shuffle(&mut rng);
            order
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-12
    }

    // --- accuracy ---

    #[test]
    fn roc_auc_perfect_reversed_and_tied() {
        let labels = [true, true, false, false, false];
        assert_eq!(roc_auc(&[5.0, 4.0, 3.0, 2.0, 1.0], &labels).unwrap(), 1.0);
        assert_eq!(roc_auc(&[1.0, 2.0, 3.0, 4.0, 5.0], &labels).unwrap(), 0.0);
        assert_eq!(roc_auc(&[1.0; 5], &labels).unwrap(), 0.5);
        // One tied positive/negative pair of six counts ½: (5 + 0.5) / 6.
        assert!(close(roc_auc(&[5.0, 3.0, 3.0, 2.0, 1.0], &labels).unwrap(), 5.5 / 6.0));
    }

    #[test]
    fn roc_auc_undefined_cases_are_nan() {
        assert!(roc_auc(&[1.0, 2.0], &[true, true]).unwrap().is_nan());
        assert!(roc_auc(&[], &[]).unwrap().is_nan());
        assert!(roc_auc(&[f64::NAN, 1.0], &[true, false]).unwrap().is_nan());
    }

    #[test]
    fn by_magnitude_ranks_negative_key_words() {
        let labels = [true, false, false];
        let a = [-3.0, 1.0, 0.5];
        assert_eq!(roc_auc(&a, &labels).unwrap(), 0.0);
        assert_eq!(roc_auc(&by_magnitude(&a), &labels).unwrap(), 1.0);
    }

    #[test]
    fn precision_at_k_counts_top_hits_with_index_tie_break() {
        let scores = [0.9, 0.1, 0.5, 0.5];
        let labels = [true, false, false, true];
        assert_eq!(precision_at_k(&scores, &labels, 1).unwrap(), 1.0);
        // Top-2 = {0, 2}: index 2 beats index 3 on the tie.
        assert_eq!(precision_at_k(&scores, &labels, 2).unwrap(), 0.5);
        assert!(close(precision_at_k(&scores, &labels, 3).unwrap(), 2.0 / 3.0));
        assert_eq!(precision_at_k(&scores, &labels, 10).unwrap(), 0.5);
        assert!(precision_at_k(&scores, &labels, 0).unwrap().is_nan());
        assert_eq!(precision_at_key_count(&scores, &labels).unwrap(), 0.5);
        assert!(precision_at_key_count(&scores, &[false; 4]).unwrap().is_nan());
    }

    // --- fidelity ---

    #[test]
    fn fidelity_perfect_and_mean_predictions() {
        let y = [1.0, 2.0, 3.0, 4.0];
        let w = [1.0, 2.0, 1.0, 0.5];
        assert_eq!(weighted_r2(&y, &y, &w).unwrap(), 1.0);
        assert_eq!(weighted_mse(&y, &y, &w).unwrap(), 0.0);
        let (r2, mse) = held_out_fidelity(&y, &[2.5; 4]).unwrap();
        assert!(close(r2, 0.0));
        assert!(close(mse, 1.25));
        // Constant target: sklearn's force_finite gives 1 for a perfect fit, 0 otherwise.
        assert_eq!(weighted_r2(&[2.0; 3], &[2.0; 3], &[1.0; 3]).unwrap(), 1.0);
        assert_eq!(weighted_r2(&[2.0; 3], &[1.0; 3], &[1.0; 3]).unwrap(), 0.0);
        assert!(weighted_r2(&[1.0], &[1.0], &[1.0]).unwrap().is_nan());
        assert!(weighted_mse(&[], &[], &[]).unwrap().is_nan());
        assert!(weighted_mse(&y, &y, &[0.0; 4]).unwrap().is_nan());
    }

    #[test]
    fn fidelity_rejects_bad_weights() {
        let err = weighted_r2(&[1.0, 2.0], &[1.0, 2.0], &[1.0, -1.0]).unwrap_err();
        assert!(matches!(err, MetricsError::InvalidWeight { index: 1, .. }));
        assert!(weighted_mse(&[1.0], &[1.0], &[f64::NAN]).is_err());
    }

    // --- stability ---

    #[test]
    fn top_k_jaccard_identical_disjoint_and_partial() {
        let a = [4.0, 3.0, 2.0, 1.0];
        assert_eq!(top_k_jaccard(&a, &a, 2).unwrap(), 1.0);
        assert_eq!(top_k_jaccard(&a, &[1.0, 2.0, 3.0, 4.0], 2).unwrap(), 0.0);
        // {0, 1} vs {0, 2}: 1 / 3.
        assert!(close(top_k_jaccard(&a, &[4.0, 1.0, 3.0, 2.0], 2).unwrap(), 1.0 / 3.0));
        assert_eq!(top_k_jaccard(&a, &[0.0, 1.0, 2.0, 3.0], 9).unwrap(), 1.0);
        assert!(top_k_jaccard(&a, &a, 0).unwrap().is_nan());
        assert!(top_k_jaccard(&[], &[], 3).unwrap().is_nan());
    }

    #[test]
    fn kendall_tau_identical_reversed_and_undefined() {
        let a = [1.0, 2.0, 3.0, 4.0, 5.0];
        let r = [5.0, 4.0, 3.0, 2.0, 1.0];
        assert_eq!(kendall_tau(&a, &a).unwrap(), 1.0);
        assert_eq!(kendall_tau(&a, &r).unwrap(), -1.0);
        assert!(kendall_tau(&a, &[1.0; 5]).unwrap().is_nan());
        assert!(kendall_tau(&[1.0], &[1.0]).unwrap().is_nan());
        assert!(kendall_tau(&[1.0, f64::NAN], &[1.0, 2.0]).unwrap().is_nan());
    }

    #[test]
    fn mean_pairwise_skips_nan_pairs() {
        let runs = vec![vec![1.0, 2.0, 3.0], vec![1.0, 2.0, 3.0], vec![3.0, 2.0, 1.0]];
        let tau = |a: &[f64], b: &[f64]| kendall_tau(a, b).unwrap_or(f64::NAN);
        // Pairs: (0,1) = 1, (0,2) = -1, (1,2) = -1.
        assert!(close(mean_pairwise(&runs, tau), -1.0 / 3.0));
        assert!(mean_pairwise(&runs[..1], tau).is_nan());
        let with_const = vec![vec![1.0, 2.0], vec![1.0, 2.0], vec![0.0, 0.0]];
        assert_eq!(mean_pairwise(&with_const, tau), 1.0);
    }

    // --- consistency ---

    #[test]
    fn spearman_identical_reversed_and_ties() {
        let a = [1.0, 2.0, 3.0, 4.0];
        assert!(close(spearman(&a, &a).unwrap(), 1.0));
        assert!(close(spearman(&a, &[4.0, 3.0, 2.0, 1.0]).unwrap(), -1.0));
        assert!(spearman(&a, &[1.0; 4]).unwrap().is_nan());
        assert!(spearman(&[], &[]).unwrap().is_nan());
    }

    #[test]
    fn shared_key_agreement_matches_case_insensitively() {
        let words = |v: &[(&str, f64)]| v.iter().map(|(w, x)| (w.to_string(), *x)).collect::<Vec<_>>();
        let a = words(&[("Make", 0.1), ("the", 0.0), ("sky", 0.5), ("orange", 0.9)]);
        let b = words(&[("turn", 0.2), ("SKY", 0.4), ("orange", 0.8), ("the", -0.1), ("sky", -5.0)]);
        let keys = vec!["sky".to_string(), "Orange".to_string(), "sun".to_string(), "SKY".to_string()];
        let k = shared_key_agreement(&a, &b, &keys);
        assert_eq!(k.shared, 2);
        assert!(close(k.spearman, 1.0));
        // Top-2 words: {orange, sky} in both.
        assert_eq!(k.top_k_jaccard, 1.0);
        let none = shared_key_agreement(&a, &b, &["sun".to_string()]);
        assert_eq!(none.shared, 0);
        assert!(none.spearman.is_nan() && none.top_k_jaccard.is_nan());
    }

    #[test]
    fn output_consistency_is_mean_without_nans() {
        assert!(close(output_consistency(&[0.1, f64::NAN, 0.3]), 0.2));
        assert!(output_consistency(&[]).is_nan());
    }

    // --- faithfulness ---

    #[test]
    fn deletion_order_descending_with_index_ties_and_nan_last() {
        assert_eq!(deletion_order(&[0.1, 0.5, f64::NAN, 0.5, -1.0]), vec![1, 3, 0, 4, 2]);
        assert!(deletion_order(&[]).is_empty());
    }

    #[test]
    fn auc_trapezoid_simple_curves() {
        assert!(close(auc_trapezoid(&[1.0, 0.0]), 0.5));
        assert!(close(auc_trapezoid(&[1.0, 1.0, 1.0]), 1.0));
        assert_eq!(auc_trapezoid(&[0.7]), 0.7);
        assert!(auc_trapezoid(&[]).is_nan());
    }

    #[test]
    fn compare_to_random_beats_every_random_curve() {
        let attribution = [1.0, 0.1, 0.0, 0.0];
        let random = vec![vec![1.0, 0.8, 0.5, 0.0], vec![1.0, 0.6, 0.3, 0.0], vec![1.0, 0.9, 0.9, 0.0]];
        let c = compare_to_random(&attribution, &random, false).unwrap();
        assert_eq!(c.beats_random, 1.0);
        assert!(c.gap > 0.0);
        assert!(c.random_auc_std > 0.0);
        let ins = compare_to_random(&attribution, &random, true).unwrap();
        assert_eq!(ins.beats_random, 0.0);
        assert!(ins.gap < 0.0);
        let tie = compare_to_random(&attribution, &[attribution.to_vec()], false).unwrap();
        assert_eq!(tie.beats_random, 0.5);
        assert_eq!(tie.random_auc_std, 0.0);
        let empty = compare_to_random(&attribution, &[], false).unwrap();
        assert!(empty.random_auc_mean.is_nan() && empty.beats_random.is_nan());
        assert!(compare_to_random(&attribution, &[vec![1.0]], false).is_err());
    }

    #[test]
    fn random_orders_are_seeded_permutations() {
        let a = random_orders(6, 4, 7);
        assert_eq!(a, random_orders(6, 4, 7));
        assert_ne!(a, random_orders(6, 4, 8));
        for o in &a {
            let mut s = o.clone();
            s.sort_unstable();
            assert_eq!(s, (0..6).collect::<Vec<_>>());
        }
        assert_eq!(random_orders(0, 2, 1), vec![Vec::<usize>::new(); 2]);
    }

    #[test]
    fn length_mismatch_is_an_error_everywhere() {
        let (a, b) = ([1.0, 2.0], [1.0]);
        assert!(matches!(roc_auc(&a, &[true]), Err(MetricsError::LengthMismatch { left: 2, right: 1, .. })));
        assert!(precision_at_k(&a, &[true], 1).is_err());
        assert!(precision_at_key_count(&a, &[true]).is_err());
        assert!(weighted_r2(&a, &b, &a).is_err());
        assert!(weighted_r2(&a, &a, &b).is_err());
        assert!(weighted_mse(&a, &b, &a).is_err());
        assert!(held_out_fidelity(&a, &b).is_err());
        assert!(top_k_jaccard(&a, &b, 1).is_err());
        assert!(kendall_tau(&a, &b).is_err());
        assert!(spearman(&a, &b).is_err());
        let msg = kendall_tau(&a, &b).unwrap_err().to_string();
        assert!(msg.contains("kendall_tau") && msg.contains('2') && msg.contains('1'), "{msg}");
    }

    #[test]
    fn empty_and_non_finite_inputs_do_not_panic() {
        let e: [f64; 0] = [];
        let _ = roc_auc(&e, &[]);
        let _ = precision_at_k(&e, &[], 3);
        let _ = held_out_fidelity(&e, &e);
        let _ = top_k_jaccard(&e, &e, 1);
        let _ = kendall_tau(&e, &e);
        let _ = spearman(&e, &e);
        let _ = shared_key_agreement(&[], &[], &[]);
        let _ = compare_to_random(&e, &[vec![]], true);
        let weird = [f64::NAN, f64::INFINITY, f64::NEG_INFINITY, -0.0, 0.0];
        let _ = roc_auc(&weird, &[true, false, true, false, true]);
        let _ = precision_at_k(&weird, &[true; 5], 2);
        let _ = top_k_jaccard(&weird, &weird, 3);
        let _ = kendall_tau(&weird, &weird);
        let _ = spearman(&weird, &weird);
        let _ = compare_to_random(&weird, &[weird.to_vec()], false);
        assert_eq!(deletion_order(&weird).len(), 5);
    }
}
