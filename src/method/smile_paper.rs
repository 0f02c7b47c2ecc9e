//! `smile-paper`: the procedure of the SMILE / gSMILE papers (Aslansefat et al.; Dehghani
//! et al., "gSMILE"), every choice as published:
//!
//! - Masks: each word kept with probability ½; distinct masks with at least two words kept
//!   ([`Strategy::Half`](crate::perturb::Strategy::Half)), the original instruction first.
//! - Output change: W1 between the output's and the original output's embeddings (so the
//!   reference must be the full edit); target `1 − MinMax(W1)` over the samples, or the
//!   `inverse` form `1 / (W1 + ε)`.
//! - Weights: `√exp(−d²/σ²)` with σ = 0.25, `d` the word mover's distance between the
//!   original and the perturbed instruction: exact optimal transport between their words'
//!   vectors (each word embedded alone by the encoder's text tower), uniform mass, Euclidean
//!   cost ([`crate::distance::word_movers`]).
//! - Fit: weighted `LinearRegression` with intercept.
//! - The W1 of every sample carries SMILE's bootstrap p-value (B = 1000,
//!   [`crate::distance::wasserstein_p_value`]), reported per sample.
//!
//! Where the authors' code differs from their text: it builds perturbed instructions from a
//! Python `set` of the kept words, which scrambles word order; gsmile keeps the order, so
//! the editor sees the instruction the mask describes.
//!
//! Checked against a Python transcription on fixed masks, with the word mover's distance
//! from POT's `ot.emd2` (`tests/fixtures/methods`).

use ndarray::Array1;

use super::{Attribution, Evidence, Settings, SmileTarget};
use crate::surrogate::{self, SurrogateConfig, SurrogateError};

/// σ of the paper's kernel on the word mover's distance.
pub const SIGMA: f64 = 0.25;
/// ε of the `inverse` target.
pub const EPSILON: f64 = 1e-6;
/// Bootstrap replicates of the W1 p-value.
pub const P_VALUE_RESAMPLES: usize = 1000;

/// The paper's regression target from each sample's W1 to the original output.
pub fn targets(w1: &[f64], target: SmileTarget) -> Vec<f64> {
    targets_scaled_like(w1, w1, target)
}

/// The paper's target for distances `w1` measured outside the fit (held-out samples),
/// scaled by the min and max of the fitted samples' `fitted` distances, so a surrogate fitted
/// on [`targets`] can be judged on them.
pub fn targets_scaled_like(w1: &[f64], fitted: &[f64], target: SmileTarget) -> Vec<f64> {
    match target {
        SmileTarget::MinMax => {
            let lo = fitted.iter().copied().fold(f64::INFINITY, f64::min);
            let hi = fitted.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let span = hi - lo;
            w1.iter().map(|&d| if span > 0.0 { 1.0 - (d - lo) / span } else { 1.0 }).collect()
        }
        SmileTarget::Inverse => w1.iter().map(|&d| 1.0 / (d + EPSILON)).collect(),
    }
}

/// The paper's sample weight `√exp(−d²/σ²)`.
pub fn weight(word_movers: f64) -> f64 {
    (-(word_movers * word_movers) / (SIGMA * SIGMA)).exp().sqrt()
}

/// The paper's explanation; `settings` supplies the target form and the bootstrap options.
pub fn attribute(ev: &Evidence<'_>, settings: &Settings) -> Result<Attribution, SurrogateError> {
    let y = targets(ev.distances, settings.smile_target);
    let w: Vec<f64> = ev.instruction_distances.iter().map(|&d| weight(d)).collect();
    let cfg = SurrogateConfig { ridge_alpha: None, top_k: None, ..settings.surrogate.clone() };
    let fit = surrogate::fit(ev.masks, Array1::from(y.clone()).view(), Array1::from(w.clone()).view(), &cfg)?;
    Ok(Attribution::from_surrogate(fit, y, w))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minmax_puts_the_closest_output_at_one() {
        assert_eq!(targets(&[0.0, 2.0, 1.0], SmileTarget::MinMax), [1.0, 0.0, 0.5]);
        assert_eq!(targets(&[3.0, 3.0], SmileTarget::MinMax), [1.0, 1.0]);
        let inv = targets(&[0.0, 1.0], SmileTarget::Inverse);
        assert!((inv[0] - 1e6).abs() < 1e-6 && (inv[1] - 1.0 / (1.0 + EPSILON)).abs() < 1e-12);
        assert_eq!(targets_scaled_like(&[1.0, 3.0], &[0.0, 2.0], SmileTarget::MinMax), [0.5, -0.5]);
        assert_eq!(weight(0.0), 1.0);
        assert!((weight(SIGMA) - (-0.5f64).exp()).abs() < 1e-12);
    }
}
