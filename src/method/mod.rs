//! Explanation methods: the one seam between measured edits and word attributions.
//!
//! A [`Method`] decides three things: how masks are drawn (a [`Strategy`] of
//! [`crate::perturb`]), how a perturbed instruction's closeness to the original is measured
//! (a [`Weighting`], which `explain` computes), and how attributions are estimated from the
//! masks and their measured output distances ([`Method::attribute`]). Everything before the
//! estimate (editing, embedding, distances, the cache) is shared, so methods compared on one
//! instruction pay only for the union of their distinct masks.
//!
//! | method | masks | weights | estimate |
//! |---|---|---|---|
//! | `gsmile` | the configured strategy (default: removal levels) | the configured kernel (default `exp(−r²/1.5²)`, r = words removed) | weighted linear fit with bootstrap intervals |
//! | `lime` | LIME's text sampler | `√exp(−d²/25²)` on 100 × mask cosine | Ridge α = 1 with intercept, `auto` feature selection ([`lime`]) |
//! | `kernel-shap` | `shap.KernelExplainer`'s | the Shapley kernel | weighted least squares under the efficiency constraint ([`kernel_shap`]) |
//! | `exact`, `banzhaf` | all 2^d masks | — | Shapley or Banzhaf values by definition ([`exact`]) |
//! | `smile-paper` | each word kept with probability ½ | `√exp(−d²/0.25²)` on the word mover's distance | weighted OLS on 1 − MinMax(W1) ([`smile_paper`]) |

pub mod adaptive;
pub mod exact;
pub mod kernel_shap;
pub mod lime;
pub mod smile_paper;

use ndarray::{Array1, ArrayView2};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::perturb::Strategy;
use crate::stats::{bootstrap_p, percentile};
use crate::surrogate::{self, Surrogate, SurrogateConfig, SurrogateError};

/// How word attributions are estimated; `gsmile evaluate --method A --method B` compares them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default, PartialOrd, Ord)]
#[serde(rename_all = "kebab-case")]
pub enum Method {
    /// gsmile's default: the configured sampler, kernel and fit (chosen by measurement, see
    /// the README's method sweep).
    #[default]
    Gsmile,
    /// LIME's text explainer, reproduced faithfully.
    Lime,
    /// Kernel SHAP as `shap.KernelExplainer` computes it.
    KernelShap,
    /// Exact Shapley values from all 2^d masks.
    Exact,
    /// Exact Banzhaf values from all 2^d masks.
    Banzhaf,
    /// The gSMILE authors' published procedure.
    SmilePaper,
}

impl Method {
    /// Every method, in the order tables list them.
    pub const ALL: [Method; 6] =
        [Method::Gsmile, Method::Lime, Method::KernelShap, Method::Exact, Method::Banzhaf, Method::SmilePaper];

    /// The method's name as the command line spells it.
    pub fn name(self) -> &'static str {
        match self {
            Method::Gsmile => "gsmile",
            Method::Lime => "lime",
            Method::KernelShap => "kernel-shap",
            Method::Exact => "exact",
            Method::Banzhaf => "banzhaf",
            Method::SmilePaper => "smile-paper",
        }
    }

    /// The mask sampler: the configured one for `gsmile`, the method's own otherwise.
    pub fn strategy(self, configured: Strategy) -> Strategy {
        match self {
            Method::Gsmile => configured,
            Method::Lime => Strategy::Lime,
            Method::KernelShap => Strategy::KernelShap,
            Method::Exact | Method::Banzhaf => Strategy::Exhaustive,
            Method::SmilePaper => Strategy::Half,
        }
    }

    /// The instruction distance the method weights samples by, if any.
    pub fn weighting(self, configured: Weighting) -> Option<Weighting> {
        match self {
            Method::Gsmile => Some(configured),
            Method::Lime => Some(Weighting::MaskCosine),
            Method::KernelShap | Method::Exact | Method::Banzhaf => None,
            Method::SmilePaper => Some(Weighting::WordMovers),
        }
    }

    /// Whether the attributions are Shapley values, which sum to f(full) − f(empty).
    pub fn is_efficient(self) -> bool {
        matches!(self, Method::KernelShap | Method::Exact)
    }

    /// Estimates the attributions from the measured samples.
    pub fn attribute(self, evidence: &Evidence<'_>, settings: &Settings) -> Result<Attribution, SurrogateError> {
        match self {
            Method::Gsmile => gsmile(evidence, settings),
            Method::Lime => lime::attribute(evidence, &settings.surrogate),
            Method::KernelShap => kernel_shap::attribute(evidence, &settings.surrogate),
            Method::Exact => exact::attribute(evidence, exact::Value::Shapley),
            Method::Banzhaf => exact::attribute(evidence, exact::Value::Banzhaf),
            Method::SmilePaper => smile_paper::attribute(evidence, settings),
        }
    }
}

/// How close a perturbed instruction is to the original, for sample weights.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Weighting {
    /// The number of words removed (the Hamming distance between the masks; gsmile's
    /// default, with width 1.5: the closest perturbations weigh most, whatever the length).
    #[default]
    RemovedWords,
    /// LIME's cosine distance between the binary masks.
    MaskCosine,
    /// Wasserstein-1 between the text-tower embeddings of the two instructions (gSMILE's paper text).
    TextWasserstein,
    /// The word mover's distance between the two instructions' word vectors (text tower,
    /// one word at a time; exact optimal transport), as the SMILE authors weight samples.
    WordMovers,
}

/// The regression target SMILE's paper fits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum SmileTarget {
    /// 1 − MinMax(W1): 1 for the output closest to the original, 0 for the farthest.
    #[default]
    MinMax,
    /// 1 / (W1 + ε), ε = [`smile_paper::EPSILON`].
    Inverse,
}

/// What a method estimates from: one row per sample.
#[derive(Debug, Clone, Copy)]
pub struct Evidence<'a> {
    /// 0/1 masks, one row per sample (rows may repeat), one column per word; row 0 is the full instruction.
    pub masks: ArrayView2<'a, f64>,
    /// Each sample's output distance to the reference.
    pub distances: &'a [f64],
    /// `+1` or `−1`: the regression target is `sign × distance` (see `Reference::target_sign`).
    pub sign: f64,
    /// Each sample's instruction distance, of [`Method::weighting`]'s kind (empty when it has none).
    pub instruction_distances: &'a [f64],
}

impl Evidence<'_> {
    /// The regression target of each sample.
    pub fn targets(&self) -> Vec<f64> {
        self.distances.iter().map(|d| self.sign * d).collect()
    }
}

/// Options a method may read.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Ridge, bootstrap, confidence, seed and top-k of the fit (`gsmile`; the bootstrap options for all).
    pub surrogate: SurrogateConfig,
    /// Kernel width σ of `gsmile`'s `exp(−d²/σ²)`, resolved.
    pub kernel_width: f64,
    /// `smile-paper`'s target.
    pub smile_target: SmileTarget,
}

/// A method's estimate: one attribution per word plus diagnostics.
#[derive(Debug, Clone)]
pub struct Attribution {
    /// Attribution of each word.
    pub coefficients: Vec<f64>,
    /// The predicted target with every word removed.
    pub intercept: f64,
    /// Percentile bootstrap interval of each attribution; `(a, a)` when exact or disabled.
    pub intervals: Vec<(f64, f64)>,
    /// Two-sided bootstrap p-value of each attribution; `NaN` when exact or disabled.
    pub p_values: Vec<f64>,
    /// Whether each word took part in the estimate.
    pub selected: Vec<bool>,
    /// The additive model's prediction for every sample.
    pub predictions: Vec<f64>,
    /// The regression target of every sample.
    pub targets: Vec<f64>,
    /// The weight of every sample in the fit.
    pub weights: Vec<f64>,
    /// Weighted R² of the predictions.
    pub r2: f64,
    /// Weighted mean squared error.
    pub mse: f64,
    /// True when the attributions carry no sampling error (every mask was measured).
    pub exact: bool,
}

impl Attribution {
    /// An attribution from a weighted linear surrogate fitted on `targets` with `weights`.
    pub fn from_surrogate(fit: Surrogate, targets: Vec<f64>, weights: Vec<f64>) -> Attribution {
        Attribution {
            coefficients: fit.coefficients,
            intercept: fit.intercept,
            intervals: fit.intervals,
            p_values: fit.p_values,
            selected: fit.selected,
            predictions: fit.predictions,
            targets,
            weights,
            r2: fit.r2,
            mse: fit.mse,
            exact: false,
        }
    }
}

/// gsmile's estimate: the configured kernel on the instruction distances and the configured
/// weighted linear fit.
fn gsmile(ev: &Evidence<'_>, s: &Settings) -> Result<Attribution, SurrogateError> {
    let y = ev.targets();
    let w: Vec<f64> =
        ev.instruction_distances.iter().map(|&d| surrogate::exponential_kernel(d, s.kernel_width)).collect();
    let fit = surrogate::fit(ev.masks, Array1::from(y.clone()).view(), Array1::from(w.clone()).view(), &s.surrogate)?;
    Ok(Attribution::from_surrogate(fit, y, w))
}

/// Percentile intervals and bootstrap p-values of an estimator that is refitted on rows
/// resampled with replacement: replicate `b` draws `rows.len()` of `rows` (ChaCha8 seeded
/// `seed + b`) and calls `refit` with how often each row was drawn; replicates it rejects
/// (`None`) are skipped. With no replicate the intervals collapse to `point`.
pub(crate) fn bootstrap_rows(
    rows: &[usize],
    cfg: &SurrogateConfig,
    point: &[f64],
    refit: impl Fn(&[f64]) -> Option<Vec<f64>> + Sync,
) -> (Vec<(f64, f64)>, Vec<f64>) {
    let n = rows.len();
    let replicates: Vec<Vec<f64>> = (0..cfg.bootstrap)
        .into_par_iter()
        .filter_map(|b| {
            let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed.wrapping_add(b as u64));
            let mut counts = vec![0.0; n];
            for _ in 0..n {
                counts[rng.random_range(0..n)] += 1.0;
            }
            refit(&counts)
        })
        .collect();
    let (lo, hi) = ((1.0 - cfg.confidence) / 2.0, (1.0 + cfg.confidence) / 2.0);
    (0..point.len())
        .map(|j| {
            if replicates.is_empty() {
                return ((point[j], point[j]), f64::NAN);
            }
            let mut draws: Vec<f64> = replicates.iter().map(|r| r[j]).collect();
            draws.sort_by(f64::total_cmp);
            ((percentile(&draws, lo), percentile(&draws, hi)), bootstrap_p(&draws))
        })
        .unzip()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_method_has_a_distinct_name_and_a_sampler() {
        let names: std::collections::HashSet<&str> = Method::ALL.iter().map(|m| m.name()).collect();
        assert_eq!(names.len(), Method::ALL.len());
        for m in Method::ALL {
            let json = serde_json::to_string(&m).unwrap();
            assert_eq!(json, format!("\"{}\"", m.name()));
        }
        assert_eq!(Method::Gsmile.strategy(Strategy::Lime), Strategy::Lime, "gsmile takes the configured sampler");
        assert_eq!(Method::Lime.strategy(Strategy::Levels), Strategy::Lime);
        assert_eq!(Method::KernelShap.weighting(Weighting::MaskCosine), None);
        assert_eq!(Weighting::default(), Weighting::RemovedWords);
    }
}
