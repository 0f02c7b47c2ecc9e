//! `kernel-shap`: Kernel SHAP as `shap.KernelExplainer` computes it, on gsmile's measured edits.
//!
//! The game is `v(S)` = the regression target of the mask keeping `S`; the background is the
//! empty instruction, so `f(empty)` is `v(∅)` and the attributions sum to
//! `f(full) − f(empty)` exactly (the efficiency constraint).
//!
//! - Masks: [`Strategy::KernelShap`](crate::perturb::Strategy::KernelShap): the full and
//!   the empty instruction, every coalition of the sizes the budget covers, the rest drawn
//!   in complementary pairs.
//! - Weights: a coalition of an enumerated size `s` (or `d − s`) weighs
//!   `k(s) / C(d, s)` (halved for paired sizes), `k` the Shapley kernel summed over a size
//!   and normalised; drawn coalitions weigh how often they were drawn, scaled so together they
//!   carry the kernel weight of the sizes not enumerated, as shap does.
//! - Fit: the last word is eliminated through the constraint and the rest solved by weighted
//!   least squares without intercept (shap's `solve`).
//! - Not reproduced: shap's `l1_reg` feature selection (`num_features(10)` above 10 words);
//!   gsmile keeps every word, like `l1_reg=False`.
//!
//! Checked against `shap.KernelExplainer` where both enumerate every coalition
//! (`tests/fixtures/methods`).

use ndarray::{Array1, Array2};

use super::{Attribution, Evidence, bootstrap_rows};
use crate::perturb::{binomial, kernel_shap_plan, mask_count};
use crate::surrogate::weighted_r2_mse;
use crate::surrogate::{self, SurrogateConfig, SurrogateError};

/// Kernel SHAP's attributions; `cfg` supplies only the bootstrap options.
pub fn attribute(ev: &Evidence<'_>, cfg: &SurrogateConfig) -> Result<Attribution, SurrogateError> {
    let d = ev.masks.ncols();
    let y = ev.targets();
    let kept: Vec<usize> = ev.masks.outer_iter().map(|r| r.iter().filter(|&&v| v > 0.5).count()).collect();
    let full = kept.iter().position(|&k| k == d).ok_or(SurrogateError::TooFewSamples(0))?;
    let empty = kept.iter().position(|&k| k == 0).ok_or(SurrogateError::Solver {
        solver: "kernel-shap",
        message: "the samples lack the empty instruction, which Kernel SHAP's background needs".into(),
    })?;
    let (fx, fnull) = (y[full], y[empty]);
    let rows: Vec<usize> = (0..y.len()).filter(|&i| kept[i] != 0 && kept[i] != d).collect();
    let distinct: std::collections::HashSet<Vec<u8>> =
        ev.masks.outer_iter().map(|r| r.iter().map(|&v| (v > 0.5) as u8).collect()).collect();
    let exact = d >= 1 && distinct.len() as u64 == mask_count(d);

    // Row weights: enumerated sizes get the kernel's share, drawn rows their frequency.
    let (enumerated, size_weights) = kernel_shap_plan(d, distinct.len());
    let paired = d.saturating_sub(1) / 2;
    let mut w = vec![0.0; y.len()];
    let mut drawn = Vec::new();
    for &i in &rows {
        let s = kept[i].min(d - kept[i]);
        if s <= enumerated {
            let half = if s <= paired { 2.0 } else { 1.0 };
            w[i] = size_weights[s - 1] / binomial(d, s) / half;
        } else {
            w[i] = 1.0;
            drawn.push(i);
        }
    }
    if !drawn.is_empty() {
        let left: f64 = size_weights[enumerated..].iter().sum();
        let total = drawn.len() as f64;
        drawn.iter().for_each(|&i| w[i] *= left / total);
    }

    let solve = |mult: &[f64]| -> Result<Vec<f64>, SurrogateError> {
        if d == 1 || rows.is_empty() {
            return Ok(vec![(fx - fnull) / d as f64; d]);
        }
        let last = d - 1;
        let z = Array2::from_shape_fn((rows.len(), d - 1), |(r, k)| ev.masks[[rows[r], k]] - ev.masks[[rows[r], last]]);
        let yadj = Array1::from_shape_fn(rows.len(), |r| y[rows[r]] - fnull - ev.masks[[rows[r], last]] * (fx - fnull));
        let wr = Array1::from_shape_fn(rows.len(), |r| w[rows[r]] * mult[r]);
        let b = surrogate::weighted_least_squares(z.view(), yadj.view(), wr.view())?;
        let mut phi = b.to_vec();
        phi.push(fx - fnull - b.sum());
        Ok(phi)
    };
    let phi = solve(&vec![1.0; rows.len()])?;
    let (intervals, p_values) = if exact || cfg.bootstrap == 0 || rows.is_empty() {
        (phi.iter().map(|&p| (p, p)).collect(), vec![f64::NAN; d])
    } else {
        bootstrap_rows(&rows, cfg, &phi, |counts| solve(counts).ok())
    };
    let predictions: Vec<f64> =
        ev.masks.outer_iter().map(|r| fnull + r.iter().zip(&phi).map(|(a, b)| a * b).sum::<f64>()).collect();
    let sub = |v: &[f64]| rows.iter().map(|&i| v[i]).collect::<Vec<f64>>();
    let (r2, mse) = weighted_r2_mse(sub(&y).as_slice().into(), &sub(&predictions), sub(&w).as_slice().into());
    Ok(Attribution {
        coefficients: phi,
        intercept: fnull,
        intervals,
        p_values,
        selected: vec![true; d],
        predictions,
        targets: y,
        weights: w,
        r2,
        mse,
        exact,
    })
}
