//! Statistics shared by the surrogate, the metrics and the evaluator: NaN-skipping means,
//! `numpy.percentile`, average ranks, percentile-bootstrap intervals and paired tests.
//!
//! Pure functions over plain slices, each matching the numpy/scipy function it names, so the
//! surrogate's coefficient intervals, the metrics' rank statistics and the evaluator's slice
//! intervals and editor comparisons all compute these one way. As in [`crate::metrics`],
//! functions over paired slices return [`StatsError`] when lengths differ, a result is `NaN`
//! only where the quantity is undefined, and nothing panics.

use std::cmp::Ordering;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use thiserror::Error;

/// Invalid input to a statistic (the caller's mistake, as opposed to an undefined value).
#[derive(Debug, Clone, PartialEq, Error)]
pub enum StatsError {
    /// Two inputs that must be paired element by element have different lengths.
    #[error("{what}: inputs must have equal lengths, got {left} and {right}")]
    LengthMismatch {
        /// The function that was called.
        what: &'static str,
        /// Length of the first input.
        left: usize,
        /// Length of the second input.
        right: usize,
    },
    /// A confidence level outside the open interval (0, 1).
    #[error("mean_ci: confidence must lie strictly between 0 and 1, got {0}")]
    InvalidConfidence(f64),
    /// A bootstrap was asked for zero resamples.
    #[error("{0}: resamples must be at least 1")]
    NoResamples(&'static str),
}

/// Result of the fallible statistics.
pub type Result<T> = std::result::Result<T, StatsError>;

/// Fails with [`StatsError::LengthMismatch`] unless `left == right`.
fn same_len(what: &'static str, left: usize, right: usize) -> Result<()> {
    if left == right { Ok(()) } else { Err(StatsError::LengthMismatch { what, left, right }) }
}

// ---------------------------------------------------------------------------------------------
// Means, percentiles and ranks
// ---------------------------------------------------------------------------------------------

/// Arithmetic mean (`numpy.mean`); `NaN` when empty.
pub fn mean(values: &[f64]) -> f64 {
    if values.is_empty() { f64::NAN } else { values.iter().sum::<f64>() / values.len() as f64 }
}

/// Mean of the non-`NaN` values (`numpy.nanmean`); `NaN` when there are none.
pub fn nan_mean(values: impl IntoIterator<Item = f64>) -> f64 {
    let kept: Vec<f64> = values.into_iter().filter(|v| !v.is_nan()).collect();
    mean(&kept)
}

/// Linear-interpolation percentile of ascending `sorted` data, `q` in [0, 1]
/// (`numpy.percentile(sorted, 100·q)` with its default interpolation); `NaN` when empty.
pub fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let h = q.clamp(0.0, 1.0) * (sorted.len() - 1) as f64;
    let lo = (h.floor() as usize).min(sorted.len() - 1);
    let hi = (lo + 1).min(sorted.len() - 1);
    sorted[lo] + (h - lo as f64) * (sorted[hi] - sorted[lo])
}

/// 1-based average ranks (`scipy.stats.rankdata(x, method="average")`); `None` if any `NaN`.
pub fn average_ranks(x: &[f64]) -> Option<Vec<f64>> {
    if x.iter().any(|v| v.is_nan()) {
        return None;
    }
    let mut idx: Vec<usize> = (0..x.len()).collect();
    idx.sort_by(|&i, &j| x[i].partial_cmp(&x[j]).unwrap_or(Ordering::Equal));
    let mut ranks = vec![0.0; x.len()];
    let mut start = 0;
    while start < idx.len() {
        let mut end = start + 1;
        while end < idx.len() && x[idx[end]] == x[idx[start]] {
            end += 1;
        }
        // Positions start..end (0-based) share the mean of ranks start+1..=end.
        let rank = (start + 1 + end) as f64 / 2.0;
        for &i in &idx[start..end] {
            ranks[i] = rank;
        }
        start = end;
    }
    Some(ranks)
}

/// Sizes of the groups of equal values in `x` (no `NaN`s expected).
fn tie_group_sizes(x: &[f64]) -> Vec<usize> {
    let mut sorted = x.to_vec();
    sorted.sort_by(|a, b| a.partial_cmp(b).unwrap_or(Ordering::Equal));
    let mut sizes = Vec::new();
    let mut start = 0;
    while start < sorted.len() {
        let mut end = start + 1;
        while end < sorted.len() && sorted[end] == sorted[start] {
            end += 1;
        }
        sizes.push(end - start);
        start = end;
    }
    sizes
}

// ---------------------------------------------------------------------------------------------
// Bootstrap intervals and paired tests
// ---------------------------------------------------------------------------------------------

/// Means of `resamples` bootstrap resamples (with replacement) of `values`, sorted ascending.
fn bootstrap_means(values: &[f64], resamples: usize, seed: u64) -> Vec<f64> {
    let n = values.len();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut means: Vec<f64> =
        (0..resamples).map(|_| (0..n).map(|_| values[rng.random_range(0..n)]).sum::<f64>() / n as f64).collect();
    means.sort_by(f64::total_cmp);
    means
}

/// Two-sided p-value of "the statistic is 0" from its bootstrap `draws`, by percentile
/// inversion: p = min(1, 2·min(#{draw ≤ 0}, #{draw ≥ 0}) / B). `NaN` when there are no draws.
pub fn bootstrap_p(draws: &[f64]) -> f64 {
    if draws.is_empty() {
        return f64::NAN;
    }
    let total = draws.len() as f64;
    let le = draws.iter().filter(|&&m| m <= 0.0).count() as f64 / total;
    let ge = draws.iter().filter(|&&m| m >= 0.0).count() as f64 / total;
    (2.0 * le.min(ge)).min(1.0)
}

/// Mean of `values` with a percentile-bootstrap confidence interval: `(mean, low, high)`.
///
/// `NaN`s are dropped first. `resamples` resamples of size n are drawn with replacement
/// (ChaCha8 seeded with `seed`, so the result is deterministic); low/high are the
/// (1 − confidence)/2 and (1 + confidence)/2 percentiles of the resampled means with
/// `numpy.percentile`'s linear interpolation (Efron & Tibshirani 1993, §13.3). All three are
/// `NaN` when no value remains.
pub fn mean_ci(values: &[f64], confidence: f64, resamples: usize, seed: u64) -> Result<(f64, f64, f64)> {
    if !(confidence > 0.0 && confidence < 1.0) {
        return Err(StatsError::InvalidConfidence(confidence));
    }
    if resamples == 0 {
        return Err(StatsError::NoResamples("mean_ci"));
    }
    let kept: Vec<f64> = values.iter().copied().filter(|v| !v.is_nan()).collect();
    if kept.is_empty() {
        return Ok((f64::NAN, f64::NAN, f64::NAN));
    }
    let means = bootstrap_means(&kept, resamples, seed);
    let alpha = 1.0 - confidence;
    Ok((mean(&kept), percentile(&means, alpha / 2.0), percentile(&means, 1.0 - alpha / 2.0)))
}

/// Median of `values` with a percentile-bootstrap confidence interval: `(median, low, high)`,
/// as [`mean_ci`] does for the mean (`NaN`s dropped; all three `NaN` when none remain). For
/// metrics a few extreme scenarios would dominate the mean of (held-out R² of near-constant targets).
pub fn median_ci(values: &[f64], confidence: f64, resamples: usize, seed: u64) -> Result<(f64, f64, f64)> {
    if !(confidence > 0.0 && confidence < 1.0) {
        return Err(StatsError::InvalidConfidence(confidence));
    }
    if resamples == 0 {
        return Err(StatsError::NoResamples("median_ci"));
    }
    let mut kept: Vec<f64> = values.iter().copied().filter(|v| !v.is_nan()).collect();
    if kept.is_empty() {
        return Ok((f64::NAN, f64::NAN, f64::NAN));
    }
    kept.sort_by(f64::total_cmp);
    let n = kept.len();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut medians: Vec<f64> = (0..resamples)
        .map(|_| {
            let mut draw: Vec<f64> = (0..n).map(|_| kept[rng.random_range(0..n)]).collect();
            draw.sort_by(f64::total_cmp);
            percentile(&draw, 0.5)
        })
        .collect();
    medians.sort_by(f64::total_cmp);
    let alpha = 1.0 - confidence;
    Ok((percentile(&kept, 0.5), percentile(&medians, alpha / 2.0), percentile(&medians, 1.0 - alpha / 2.0)))
}

/// Two-sided paired bootstrap p-value of mean(a − b) ≠ 0.
///
/// Differences dᵢ = aᵢ − bᵢ (pairs with a `NaN` dropped) are resampled `resamples` times
/// (ChaCha8, `seed`); the p-value is [`bootstrap_p`] of the resampled means — the same
/// percentile-inversion p-value the surrogate reports for its coefficients. `NaN` when no
/// pair remains.
pub fn paired_bootstrap_p(a: &[f64], b: &[f64], resamples: usize, seed: u64) -> Result<f64> {
    same_len("paired_bootstrap_p", a.len(), b.len())?;
    if resamples == 0 {
        return Err(StatsError::NoResamples("paired_bootstrap_p"));
    }
    let d: Vec<f64> = a.iter().zip(b).map(|(x, y)| x - y).filter(|v| !v.is_nan()).collect();
    if d.is_empty() {
        return Ok(f64::NAN);
    }
    Ok(bootstrap_p(&bootstrap_means(&d, resamples, seed)))
}

/// Two-sided Wilcoxon signed-rank p-value for paired samples, normal approximation.
///
/// Matches `scipy.stats.wilcoxon(a, b, zero_method="wilcox", correction=False,
/// method="asymptotic").pvalue` (called `method="approx"` in older scipy): zero differences
/// are dropped, leaving n; |dᵢ| get average ranks; R₊ is the rank sum of positive
/// differences; z = (R₊ − n(n+1)/4) / σ with σ² = (n(n+1)(2n+1) − Σ(t³ − t)/2) / 24 over
/// tie groups of size t; p = 2·Φ(−|z|). Use it for n ≳ 20 (scipy's default switches to an
/// exact test below 50 without ties). Pairs with a `NaN` are dropped; `NaN` when no non-zero
/// difference remains or all remaining |dᵢ| are tied so that σ = 0.
pub fn wilcoxon_signed_rank_p(a: &[f64], b: &[f64]) -> Result<f64> {
    same_len("wilcoxon_signed_rank_p", a.len(), b.len())?;
    let d: Vec<f64> = a.iter().zip(b).map(|(x, y)| x - y).filter(|v| !v.is_nan() && *v != 0.0).collect();
    let n = d.len() as f64;
    if d.is_empty() {
        return Ok(f64::NAN);
    }
    let abs: Vec<f64> = d.iter().map(|v| v.abs()).collect();
    let Some(ranks) = average_ranks(&abs) else {
        return Ok(f64::NAN);
    };
    let r_plus: f64 = ranks.iter().zip(&d).filter(|(_, v)| **v > 0.0).map(|(r, _)| r).sum();
    let ties: f64 = tie_group_sizes(&abs).into_iter().map(|t| (t * t * t - t) as f64).sum();
    let var = (n * (n + 1.0) * (2.0 * n + 1.0) - ties / 2.0) / 24.0;
    if var.is_nan() || var <= 0.0 {
        return Ok(f64::NAN);
    }
    let z = (r_plus - n * (n + 1.0) * 0.25) / var.sqrt();
    Ok((2.0 * normal_sf(z.abs())).min(1.0))
}

/// Upper tail of the standard normal, P(Z > z) = erfc(z/√2)/2 (`scipy.stats.norm.sf`).
pub fn normal_sf(z: f64) -> f64 {
    0.5 * erfc(z / std::f64::consts::SQRT_2)
}

/// Complementary error function with fractional error below 1.2·10⁻⁷ everywhere.
///
/// Hand-written because Rust's std has no `erf`/`erfc` and the crate takes no `libm`
/// dependency; this is the Chebyshev-fitted `erfcc` of Press et al., *Numerical Recipes*
/// (2nd ed., §6.2), ample for p-values checked to 1e-6.
fn erfc(x: f64) -> f64 {
    if x.is_nan() {
        return f64::NAN;
    }
    let z = x.abs();
    let t = 1.0 / (1.0 + 0.5 * z);
    let poly = -z * z - 1.265_512_23
        + t * (1.000_023_68
            + t * (0.374_091_96
                + t * (0.096_784_18
                    + t * (-0.186_288_06
                        + t * (0.278_868_07
                            + t * (-1.135_203_98 + t * (1.488_515_87 + t * (-0.822_152_23 + t * 0.170_872_77))))))));
    let ans = t * poly.exp();
    if x >= 0.0 { ans } else { 2.0 - ans }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-12
    }

    #[test]
    fn nan_mean_skips_nan() {
        assert_eq!(nan_mean([1.0, f64::NAN, 3.0]), 2.0);
        assert!(nan_mean([f64::NAN]).is_nan());
        assert!(mean(&[]).is_nan());
        assert_eq!(mean(&[1.0, 2.0]), 1.5);
    }

    #[test]
    fn median_ci_ignores_outliers_the_mean_does_not() {
        let mut v: Vec<f64> = (0..19).map(|i| 0.8 + 0.01 * i as f64).collect();
        v.push(-318.0);
        let (median, lo, hi) = median_ci(&v, 0.95, 500, 3).unwrap();
        assert!((median - 0.885).abs() < 1e-12, "{median}");
        assert!(lo <= median && median <= hi && lo > 0.7, "{lo} {hi}");
        assert!(mean(&v) < -14.0);
        assert!(median_ci(&[f64::NAN], 0.95, 10, 0).unwrap().0.is_nan());
    }

    #[test]
    fn percentile_interpolates_like_numpy() {
        let v = [1.0, 2.0, 4.0, 8.0];
        assert_eq!(percentile(&v, 0.0), 1.0);
        assert_eq!(percentile(&v, 1.0), 8.0);
        // numpy.percentile([1, 2, 4, 8], 50) = 3.0; 25 → 1.75.
        assert_eq!(percentile(&v, 0.5), 3.0);
        assert_eq!(percentile(&v, 0.25), 1.75);
        assert!(percentile(&[], 0.5).is_nan());
    }

    #[test]
    fn bootstrap_p_counts_both_sides() {
        assert_eq!(bootstrap_p(&[1.0, 2.0, 3.0, 4.0]), 0.0);
        assert_eq!(bootstrap_p(&[-1.0, 1.0]), 1.0);
        assert_eq!(bootstrap_p(&[-1.0, 1.0, 2.0, 3.0]), 0.5);
        assert!(bootstrap_p(&[]).is_nan());
    }

    #[test]
    fn mean_ci_is_deterministic_and_contains_the_mean() {
        let v: Vec<f64> = (0..40).map(|i| ((i * 37) % 11) as f64 / 10.0).chain([f64::NAN]).collect();
        let (m, lo, hi) = mean_ci(&v, 0.95, 2000, 3).unwrap();
        assert_eq!((m, lo, hi), mean_ci(&v, 0.95, 2000, 3).unwrap());
        let kept: Vec<f64> = v.iter().copied().filter(|x| !x.is_nan()).collect();
        assert!(close(m, kept.iter().sum::<f64>() / kept.len() as f64));
        assert!(lo < m && m < hi, "{lo} < {m} < {hi}");
        let (m1, l1, h1) = mean_ci(&[2.0], 0.9, 10, 0).unwrap();
        assert_eq!((m1, l1, h1), (2.0, 2.0, 2.0));
        assert!(mean_ci(&[], 0.9, 10, 0).unwrap().0.is_nan());
        assert!(mean_ci(&v, 1.0, 10, 0).is_err());
        assert!(mean_ci(&v, f64::NAN, 10, 0).is_err());
        assert!(mean_ci(&v, 0.9, 0, 0).is_err());
    }

    #[test]
    fn paired_bootstrap_p_separates_shifted_from_equal() {
        let a: Vec<f64> = (0..30).map(|i| (i % 7) as f64).collect();
        let shifted: Vec<f64> = a.iter().map(|x| x + 1.0 + 0.1 * (x % 2.0)).collect();
        let p = paired_bootstrap_p(&shifted, &a, 1000, 1).unwrap();
        assert!(p < 0.01, "{p}");
        assert_eq!(paired_bootstrap_p(&a, &a, 100, 1).unwrap(), 1.0);
        assert!(paired_bootstrap_p(&[], &[], 100, 1).unwrap().is_nan());
        assert!(paired_bootstrap_p(&a, &a, 0, 1).is_err());
    }

    #[test]
    fn wilcoxon_degenerate_inputs() {
        assert!(wilcoxon_signed_rank_p(&[1.0, 2.0], &[1.0, 2.0]).unwrap().is_nan());
        assert!(wilcoxon_signed_rank_p(&[], &[]).unwrap().is_nan());
        let p = wilcoxon_signed_rank_p(&[1.0, 2.0, 3.0], &[0.0, 0.0, 0.0]).unwrap();
        assert!((0.0..=1.0).contains(&p));
    }

    #[test]
    fn normal_sf_known_values() {
        assert!((normal_sf(0.0) - 0.5).abs() < 1e-7);
        assert!((normal_sf(1.959_963_984_540_054) - 0.025).abs() < 1e-8);
        assert!((normal_sf(-1.959_963_984_540_054) - 0.975).abs() < 1e-8);
        assert_eq!(normal_sf(f64::INFINITY), 0.0);
        assert!(normal_sf(f64::NAN).is_nan());
    }

    #[test]
    fn length_mismatch_is_an_error_everywhere() {
        let (a, b) = ([1.0, 2.0], [1.0]);
        assert!(paired_bootstrap_p(&a, &b, 10, 0).is_err());
        assert!(wilcoxon_signed_rank_p(&a, &b).is_err());
        assert!(matches!(wilcoxon_signed_rank_p(&a, &b), Err(StatsError::LengthMismatch { left: 2, right: 1, .. })));
    }

    #[test]
    fn empty_and_non_finite_inputs_do_not_panic() {
        let e: [f64; 0] = [];
        let _ = wilcoxon_signed_rank_p(&e, &e);
        let weird = [f64::NAN, f64::INFINITY, f64::NEG_INFINITY, -0.0, 0.0];
        let _ = wilcoxon_signed_rank_p(&weird, &[0.0; 5]);
        let _ = mean_ci(&weird, 0.5, 5, 0);
        let _ = paired_bootstrap_p(&weird, &weird, 5, 0);
        assert!(average_ranks(&weird).is_none());
    }
}
