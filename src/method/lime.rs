//! `lime`: LIME's text explainer (`lime.lime_text.LimeTextExplainer` with its defaults),
//! reproduced on gsmile's measured edits.
//!
//! - Masks: LIME's sampler ([`Strategy::Lime`](crate::perturb::Strategy::Lime)); rows repeat.
//! - Distance: cosine between each mask and the all-kept row, × 100.
//! - Kernel: `√exp(−d²/w²)` with `w = 25`.
//! - Features: `feature_selection = "auto"` with `num_features = 10`, which is
//!   `highest_weights`: a Ridge(α = 0.01) fit on every word, keeping the 10 words with the
//!   largest |coefficient| (all of them for instructions of up to 10 words). (`auto` would use
//!   forward selection only for `num_features ≤ 6`, which LIME's defaults never reach.)
//! - Fit: `Ridge(alpha=1, fit_intercept=True)` with the kernel weights on the kept words.
//!
//! Checked against `lime.lime_base.LimeBase.explain_instance_with_data` on the same
//! neighbourhood (`tests/fixtures/methods`). gsmile adds bootstrap intervals, which LIME
//! does not report.

use ndarray::{Array1, Axis};

use super::{Attribution, Evidence};
use crate::distance::mask_cosine;
use crate::surrogate::{self, SurrogateConfig, SurrogateError};

/// LIME text's kernel width on 100 × cosine distance.
pub const KERNEL_WIDTH: f64 = 25.0;
/// LIME's `num_features` default.
pub const NUM_FEATURES: usize = 10;
/// Ridge penalty of LIME's `highest_weights` feature selection.
pub const SELECTION_ALPHA: f64 = 0.01;
/// Ridge penalty of LIME's explanation model.
pub const RIDGE_ALPHA: f64 = 1.0;

/// LIME's distance of each mask row to the original: 100 × cosine distance to the all-ones row.
pub fn distances(ev: &Evidence<'_>) -> Vec<f64> {
    ev.masks.outer_iter().map(|row| 100.0 * mask_cosine(&row.iter().map(|&v| v > 0.5).collect::<Vec<_>>())).collect()
}

/// LIME's kernel `√exp(−d²/w²)`.
pub fn kernel(distance: f64, width: f64) -> f64 {
    (-(distance * distance) / (width * width)).exp().sqrt()
}

/// Words LIME's `highest_weights` selection keeps, ascending.
pub fn select_features(
    ev: &Evidence<'_>,
    y: &Array1<f64>,
    w: &Array1<f64>,
    num_features: usize,
) -> Result<Vec<usize>, SurrogateError> {
    let d = ev.masks.ncols();
    if d <= num_features {
        return Ok((0..d).collect());
    }
    let cfg = SurrogateConfig { ridge_alpha: Some(SELECTION_ALPHA), bootstrap: 0, ..SurrogateConfig::default() };
    let fit = surrogate::fit(ev.masks, y.view(), w.view(), &cfg)?;
    // |coef × x₀| with x₀ the all-kept row; Python's stable sort keeps ties in word order.
    let mut order: Vec<usize> = (0..d).collect();
    order.sort_by(|&a, &b| fit.coefficients[b].abs().total_cmp(&fit.coefficients[a].abs()));
    let mut used = order[..num_features].to_vec();
    used.sort_unstable();
    Ok(used)
}

/// LIME's explanation of the samples; `cfg` supplies only the bootstrap options.
pub fn attribute(ev: &Evidence<'_>, cfg: &SurrogateConfig) -> Result<Attribution, SurrogateError> {
    let d = ev.masks.ncols();
    let y = Array1::from(ev.targets());
    let w = Array1::from_iter(distances(ev).into_iter().map(|dist| kernel(dist, KERNEL_WIDTH)));
    let used = select_features(ev, &y, &w, NUM_FEATURES)?;
    let x = ev.masks.select(Axis(1), &used);
    let fit_cfg = SurrogateConfig { ridge_alpha: Some(RIDGE_ALPHA), top_k: None, ..cfg.clone() };
    let fit = surrogate::fit(x.view(), y.view(), w.view(), &fit_cfg)?;
    let mut full = Attribution::from_surrogate(fit.clone(), y.to_vec(), w.to_vec());
    full.coefficients = vec![0.0; d];
    full.intervals = vec![(0.0, 0.0); d];
    full.p_values = vec![f64::NAN; d];
    full.selected = vec![false; d];
    for (c, &j) in used.iter().enumerate() {
        full.coefficients[j] = fit.coefficients[c];
        full.intervals[j] = fit.intervals[c];
        full.p_values[j] = fit.p_values[c];
        full.selected[j] = fit.selected[c];
    }
    Ok(full)
}
