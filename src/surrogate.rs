//! The weighted linear surrogate of gSMILE: word attributions from perturbation samples.
//!
//! Each perturbation sample is a 0/1 mask over the words of the instruction (`x`, one row per
//! sample, 1 = word kept), the distance between the editor's output for that instruction and
//! for the full one (`y`), and a kernel weight saying how close the perturbed instruction is to
//! the original (`w`, from [`exponential_kernel`]). A weighted least-squares fit `y ≈ b + xβ`
//! gives one coefficient per word: its attribution. [`fit`] also reports goodness of fit,
//! bootstrap intervals and p-values; [`fit_many`] fits thousands of targets at once (one per
//! pixel) for spatial maps.
//!
//! The fits match scikit-learn with `sample_weight` (`LinearRegression`, `Ridge`), checked by
//! `tests/integration/stats_parity.rs`.
//!
//! **Constant columns.** A column that is constant over the samples that carry weight (a word
//! never removed, or always removed) has no effect that the data can identify. Like sklearn
//! (where its centred column is zero) it gets coefficient 0; here it is also left out of the
//! solve and marked not selected. **Collinear columns** (two words always removed together)
//! make ordinary least squares rank deficient; then the minimum-norm solution is returned, as
//! `numpy.linalg.lstsq` inside sklearn's `LinearRegression` does, which splits the effect
//! between the collinear words.

use linfa::DatasetBase;
use linfa::traits::Fit;
use linfa_linalg::cholesky::SolveCInplace;
use linfa_linalg::eigh::Eigh;
use linfa_linear::LinearRegression;
use ndarray::{Array1, Array2, ArrayView1, ArrayView2, Axis};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

use crate::stats::{bootstrap_p, percentile};

/// A column whose weighted variance is below this fraction of its weighted second moment
/// counts as constant.
const CONSTANT_TOL: f64 = 1e-12;
/// Eigenvalues of the weighted, centred Gram matrix below this fraction of the largest one
/// count as zero (rank deficiency; `σ_min/σ_max < 1e-6` for the design itself).
const RANK_TOL: f64 = 1e-12;
/// gSMILE's sample weight `exp(−d²/σ²)` for a perturbed output at distance `d` from the
/// original, with kernel width `σ` (the exponential kernel of SMILE/gSMILE; LIME's kernel is
/// its square root).
///
/// Returns `NaN` when `width` is not positive and finite, or `distance` is `NaN`.
pub fn exponential_kernel(distance: f64, width: f64) -> f64 {
    if !(width.is_finite() && width > 0.0) {
        return f64::NAN;
    }
    (-(distance * distance) / (width * width)).exp()
}

/// Options of [`fit`] that change its results.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SurrogateConfig {
    /// Ridge penalty `α` as in sklearn's `Ridge(alpha)`; `None` (or 0) is ordinary weighted
    /// least squares.
    pub ridge_alpha: Option<f64>,
    /// Number of bootstrap replicates for intervals and p-values; 0 disables the bootstrap.
    pub bootstrap: usize,
    /// Coverage of the percentile bootstrap intervals, in `(0, 1)`.
    pub confidence: f64,
    /// Seed of the bootstrap resampling (replicate `b` uses `seed + b`).
    pub seed: u64,
    /// Keep only the `k` words with the largest |coefficient| and refit on them.
    pub top_k: Option<usize>,
}

impl Default for SurrogateConfig {
    fn default() -> Self {
        SurrogateConfig { ridge_alpha: None, bootstrap: 200, confidence: 0.95, seed: 0, top_k: None }
    }
}

/// A fitted weighted linear surrogate: one attribution per word plus diagnostics.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Surrogate {
    /// Coefficient of each column of `x` (word attribution); 0 for columns not selected.
    pub coefficients: Vec<f64>,
    /// Intercept `b`, the predicted output change with every word removed.
    pub intercept: f64,
    /// Weighted coefficient of determination (sklearn `r2_score(y, pred, sample_weight=w)`).
    pub r2: f64,
    /// Weighted mean squared error (sklearn `mean_squared_error(y, pred, sample_weight=w)`).
    pub mse: f64,
    /// Percentile bootstrap interval of each coefficient at `confidence`; `(coef, coef)` when
    /// the bootstrap is disabled, `(0, 0)` for columns not selected.
    pub intervals: Vec<(f64, f64)>,
    /// Two-sided bootstrap p-value of each coefficient; `NaN` when the bootstrap is disabled
    /// or the column is not selected.
    pub p_values: Vec<f64>,
    /// Whether each column took part in the final fit (false: constant, or cut by `top_k`).
    pub selected: Vec<bool>,
    /// Fitted values `b + xβ` for every sample, in input order.
    pub predictions: Vec<f64>,
}

/// Why a surrogate could not be fitted.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SurrogateError {
    /// Two inputs disagree about the number of samples.
    #[error("{what} has {found} samples but x has {expected} rows; pass one value per sample")]
    LengthMismatch {
        /// Which input disagrees (`"y"`, `"w"`, `"ys"`).
        what: &'static str,
        /// Rows of `x`.
        expected: usize,
        /// Samples in `what`.
        found: usize,
    },
    /// Fewer than two samples.
    #[error("a surrogate needs at least 2 perturbation samples, got {0}; draw more samples")]
    TooFewSamples(usize),
    /// `x` has no columns.
    #[error("x has no columns (an instruction with no words?); nothing to attribute")]
    NoFeatures,
    /// A weight is negative, infinite or NaN.
    #[error("weight {index} is {value}; kernel weights must be finite and >= 0")]
    InvalidWeight {
        /// Sample index.
        index: usize,
        /// The offending weight.
        value: f64,
    },
    /// Every weight is zero.
    #[error(
        "all sample weights are zero; the kernel width is too small for these distances, \
         increase it"
    )]
    ZeroWeights,
    /// `x` or `y` holds a non-finite value.
    #[error("{what} has a non-finite value at sample {index}; check the distances fed to the surrogate")]
    NonFinite {
        /// `"x"`, `"y"` or `"ys"`.
        what: &'static str,
        /// Sample index.
        index: usize,
    },
    /// The ridge penalty is negative or not finite.
    #[error("ridge alpha must be finite and >= 0, got {0}")]
    InvalidAlpha(f64),
    /// The confidence level is outside `(0, 1)`.
    #[error("bootstrap confidence must be in (0, 1), got {0}; e.g. 0.95")]
    InvalidConfidence(f64),
    /// `top_k` is zero.
    #[error("top_k must be at least 1 (or unset to keep every word)")]
    InvalidTopK,
    /// Every column is constant, so no coefficient can be estimated.
    #[error(
        "all {0} columns of x are constant over the weighted samples (each word was always \
         kept or always removed); draw more perturbation samples so every word is both kept \
         and removed"
    )]
    NothingToFit(usize),
    /// The linear-algebra backend failed.
    #[error("{solver} failed: {message}; try more perturbation samples or a ridge penalty")]
    Solver {
        /// Which solver (`"linfa-linear OLS"`, `"linfa-linalg eigh"`, ...).
        solver: &'static str,
        /// The backend's message.
        message: String,
    },
}

/// Fits the weighted linear surrogate `y ≈ b + xβ` with weights `w`, matching sklearn's
/// `LinearRegression().fit(x, y, sample_weight=w)` (or `Ridge(alpha)` when
/// `cfg.ridge_alpha` is set), then bootstraps intervals and p-values.
///
/// The bootstrap resamples rows with replacement (replicate `b` draws from
/// `ChaCha8Rng::seed_from_u64(cfg.seed + b)`, so the parallel result is deterministic),
/// refits the selected columns, and reports the percentile interval at `cfg.confidence`
/// (`numpy.percentile`, linear interpolation) and the two-sided bootstrap p-value
/// `min(1, 2·min(P*(β ≤ 0), P*(β ≥ 0)))`, the bootstrap test SMILE uses for image-editing
/// explanations. A column constant within a replicate counts as coefficient 0 there, and
/// replicates whose weights sum to zero are skipped.
///
/// With `cfg.top_k = Some(k)`, the model is fitted on all columns, the `k` largest
/// |coefficients| are kept and the model is refitted on those alone.
pub fn fit(
    x: ArrayView2<f64>,
    y: ArrayView1<f64>,
    w: ArrayView1<f64>,
    cfg: &SurrogateConfig,
) -> Result<Surrogate, SurrogateError> {
    let alpha = check_inputs(x, w, cfg.ridge_alpha)?;
    check_len("y", x.nrows(), y.len())?;
    check_finite("y", y.iter())?;
    if !(cfg.confidence > 0.0 && cfg.confidence < 1.0) {
        return Err(SurrogateError::InvalidConfidence(cfg.confidence));
    }
    if cfg.top_k == Some(0) {
        return Err(SurrogateError::InvalidTopK);
    }
    let d = x.ncols();
    let all: Vec<usize> = (0..d).collect();
    let mut core = weighted_fit(x, y, w, &all, alpha)?;
    if !core.active.iter().any(|&a| a) {
        return Err(SurrogateError::NothingToFit(d));
    }
    if let Some(k) = cfg.top_k {
        let mut ranked: Vec<usize> = (0..d).filter(|&j| core.active[j]).collect();
        if k < ranked.len() {
            // Largest |coef| first; ties keep the lower index (stable sort).
            ranked.sort_by(|&a, &b| core.coef[b].abs().total_cmp(&core.coef[a].abs()));
            ranked.truncate(k);
            ranked.sort_unstable();
            core = weighted_fit(x, y, w, &ranked, alpha)?;
        }
    }
    let selected = core.active.clone();
    let cols: Vec<usize> = (0..d).filter(|&j| selected[j]).collect();

    let predictions: Vec<f64> = x
        .outer_iter()
        .map(|row| core.intercept + row.iter().zip(&core.coef).map(|(a, b)| a * b).sum::<f64>())
        .collect();
    let (r2, mse) = weighted_r2_mse(y, &predictions, w);

    let (intervals, p_values) = if cfg.bootstrap == 0 {
        let iv = core.coef.iter().map(|&c| (c, c)).collect();
        (iv, vec![f64::NAN; d])
    } else {
        bootstrap(x, y, w, &cols, alpha, cfg, &core.coef, &selected)
    };

    Ok(Surrogate {
        coefficients: core.coef,
        intercept: core.intercept,
        r2,
        mse,
        intervals,
        p_values,
        selected,
        predictions,
    })
}

/// Fits the weighted linear surrogate for `m` targets at once (the columns of `ys`, e.g. one
/// per pixel), returning the `d×m` coefficients and `m` intercepts.
///
/// Solves the weighted, centred normal equations `(X̃ᵀWX̃ + αI)β = X̃ᵀWY` with one Cholesky
/// factorisation for all targets (`X̃ = X − 1x̄_wᵀ`; `Y` needs no centring because
/// `X̃ᵀw = 0`); intercepts are `ȳ_w − x̄_wᵀβ`. Gives the same answer as [`fit`] without
/// bootstrap, column by column, including the handling of constant columns; a rank-deficient
/// OLS system falls back to the minimum-norm solution through an eigendecomposition.
pub fn fit_many(
    x: ArrayView2<f64>,
    ys: ArrayView2<f64>,
    w: ArrayView1<f64>,
    ridge_alpha: Option<f64>,
) -> Result<(Array2<f64>, Array1<f64>), SurrogateError> {
    let alpha = check_inputs(x, w, ridge_alpha)?;
    check_len("ys", x.nrows(), ys.nrows())?;
    for (i, row) in ys.outer_iter().enumerate() {
        if row.iter().any(|v| !v.is_finite()) {
            return Err(SurrogateError::NonFinite { what: "ys", index: i });
        }
    }
    let (d, m) = (x.ncols(), ys.ncols());
    let all: Vec<usize> = (0..d).collect();
    let sw = w.sum();
    let (xbar, active) = weighted_means_and_active(x, w, &all);
    let cols: Vec<usize> = (0..d).filter(|&j| active[j]).collect();
    if cols.is_empty() {
        return Err(SurrogateError::NothingToFit(d));
    }
    let k = cols.len();
    // Centred active columns, and the same scaled by w (not √w: W appears once in X̃ᵀWY).
    let xc = Array2::from_shape_fn((x.nrows(), k), |(i, c)| x[[i, cols[c]]] - xbar[cols[c]]);
    let xcw = &xc * &w.insert_axis(Axis(1));
    let mut gram = xcw.t().dot(&xc);
    if let Some(a) = alpha {
        gram.diag_mut().mapv_inplace(|g| g + a);
    }
    let rhs = xcw.t().dot(&ys);
    let beta = solve_spd_or_min_norm(gram, rhs, alpha.is_some())?;

    // As a 1×n GEMM: ndarray's vector·matrix product walks each column of `ys` with a stride.
    let ybar = w.insert_axis(Axis(0)).dot(&ys).remove_axis(Axis(0)) / sw;
    let mut coef = Array2::zeros((d, m));
    let mut intercepts = ybar;
    for (c, &j) in cols.iter().enumerate() {
        coef.row_mut(j).assign(&beta.row(c));
        intercepts.scaled_add(-xbar[j], &beta.row(c));
    }
    Ok((coef, intercepts))
}

/// Weighted least squares without an intercept, `argmin_β Σ wᵢ (yᵢ − xᵢβ)²`, through the
/// normal equations (Cholesky; the minimum-norm solution when `XᵀWX` is singular). For
/// estimators that fix the intercept themselves, such as Kernel SHAP's constrained fit.
pub fn weighted_least_squares(
    x: ArrayView2<f64>,
    y: ArrayView1<f64>,
    w: ArrayView1<f64>,
) -> Result<Array1<f64>, SurrogateError> {
    check_len("y", x.nrows(), y.len())?;
    check_len("w", x.nrows(), w.len())?;
    check_finite("y", y.iter())?;
    let xw = &x * &w.insert_axis(Axis(1));
    let gram = xw.t().dot(&x);
    let rhs = xw.t().dot(&y).insert_axis(Axis(1));
    Ok(solve_spd_or_min_norm(gram, rhs, false)?.remove_axis(Axis(1)))
}

/// Result of one weighted solve on a subset of columns (full width, zeros elsewhere).
struct Core {
    coef: Vec<f64>,
    intercept: f64,
    active: Vec<bool>,
}

/// Shared validation of `fit` and `fit_many`; returns the effective ridge penalty.
fn check_inputs(
    x: ArrayView2<f64>,
    w: ArrayView1<f64>,
    ridge_alpha: Option<f64>,
) -> Result<Option<f64>, SurrogateError> {
    let n = x.nrows();
    check_len("w", n, w.len())?;
    if n < 2 {
        return Err(SurrogateError::TooFewSamples(n));
    }
    if x.ncols() == 0 {
        return Err(SurrogateError::NoFeatures);
    }
    for (i, row) in x.outer_iter().enumerate() {
        if row.iter().any(|v| !v.is_finite()) {
            return Err(SurrogateError::NonFinite { what: "x", index: i });
        }
    }
    for (index, &value) in w.iter().enumerate() {
        if !(value.is_finite() && value >= 0.0) {
            return Err(SurrogateError::InvalidWeight { index, value });
        }
    }
    // Weights are finite and >= 0 here, so the sum is never NaN.
    if w.sum() <= 0.0 {
        return Err(SurrogateError::ZeroWeights);
    }
    match ridge_alpha {
        Some(a) if !(a.is_finite() && a >= 0.0) => Err(SurrogateError::InvalidAlpha(a)),
        Some(a) if a > 0.0 => Ok(Some(a)),
        _ => Ok(None),
    }
}

fn check_len(what: &'static str, expected: usize, found: usize) -> Result<(), SurrogateError> {
    if expected == found { Ok(()) } else { Err(SurrogateError::LengthMismatch { what, expected, found }) }
}

fn check_finite<'a>(what: &'static str, mut values: impl Iterator<Item = &'a f64>) -> Result<(), SurrogateError> {
    match values.position(|v| !v.is_finite()) {
        Some(index) => Err(SurrogateError::NonFinite { what, index }),
        None => Ok(()),
    }
}

/// Weighted column means over all `d` columns, and which of `cols` vary over the weighted
/// samples (`Σw(x − x̄)² > CONSTANT_TOL · Σw x²`).
fn weighted_means_and_active(x: ArrayView2<f64>, w: ArrayView1<f64>, cols: &[usize]) -> (Vec<f64>, Vec<bool>) {
    let sw = w.sum();
    let d = x.ncols();
    let mut xbar = vec![0.0; d];
    let mut active = vec![false; d];
    for &j in cols {
        let col = x.column(j);
        let mean = col.dot(&w) / sw;
        let (mut var, mut second) = (0.0, 0.0);
        for (&v, &wi) in col.iter().zip(w) {
            var += wi * (v - mean) * (v - mean);
            second += wi * v * v;
        }
        xbar[j] = mean;
        active[j] = var > CONSTANT_TOL * second;
    }
    (xbar, active)
}

/// Weighted least squares with intercept on the columns `cols` of `x`, with linfa.
///
/// linfa-linear's `LinearRegression` takes no sample weights, so the weighted problem
/// `min Σ wᵢ(yᵢ − b − xᵢβ)²` is turned into an unweighted one with the same solution: centre
/// `x` and `y` by their weighted means (which solves for `b`), then scale every row by `√wᵢ`
/// and fit without intercept. This is exactly what sklearn does internally
/// (`_preprocess_data` + `_rescale_data`).
fn weighted_fit(
    x: ArrayView2<f64>,
    y: ArrayView1<f64>,
    w: ArrayView1<f64>,
    cols: &[usize],
    alpha: Option<f64>,
) -> Result<Core, SurrogateError> {
    let n = x.nrows();
    let d = x.ncols();
    let sw = w.sum();
    let ybar = y.dot(&w) / sw;
    let (xbar, active) = weighted_means_and_active(x, w, cols);
    let fit_cols: Vec<usize> = (0..d).filter(|&j| active[j]).collect();
    let mut coef = vec![0.0; d];
    let k = fit_cols.len();
    if k > 0 {
        let sqrt_w = w.mapv(f64::sqrt);
        let xs = Array2::from_shape_fn((n, k), |(i, c)| (x[[i, fit_cols[c]]] - xbar[fit_cols[c]]) * sqrt_w[i]);
        let ys = Array1::from_shape_fn(n, |i| (y[i] - ybar) * sqrt_w[i]);
        let beta = if ys.iter().all(|&v| v == 0.0) {
            // Nothing to explain: every solution path gives β = 0; skip the factorisation.
            Array1::zeros(k)
        } else {
            match alpha {
                Some(a) => ridge_linfa(xs, ys, a)?,
                None => ols_linfa(xs, ys)?,
            }
        };
        for (c, &j) in fit_cols.iter().enumerate() {
            coef[j] = beta[c];
        }
    }
    let intercept = ybar - xbar.iter().zip(&coef).map(|(m, b)| m * b).sum::<f64>();
    Ok(Core { coef, intercept, active })
}

/// OLS without intercept on already centred, √w-scaled data: linfa's QR least squares when
/// the design has full column rank, otherwise the minimum-norm solution (sklearn's `lstsq`).
fn ols_linfa(xs: Array2<f64>, ys: Array1<f64>) -> Result<Array1<f64>, SurrogateError> {
    let gram = xs.t().dot(&xs);
    if full_rank(&gram)? {
        let ds = DatasetBase::new(xs, ys);
        let model = LinearRegression::new()
            .with_intercept(false)
            .fit(&ds)
            .map_err(|e| SurrogateError::Solver { solver: "linfa-linear OLS", message: e.to_string() })?;
        Ok(model.params().to_owned())
    } else {
        let rhs = xs.t().dot(&ys).insert_axis(Axis(1));
        Ok(min_norm_solve(gram, rhs)?.remove_axis(Axis(1)))
    }
}

/// Ridge without intercept on already centred, √w-scaled data, as linfa OLS on the augmented
/// system `[X; √α·I] β ≈ [y; 0]`, whose least-squares objective `‖y − Xβ‖² + α‖β‖²` is
/// exactly sklearn's `Ridge(alpha)` objective.
///
/// Why not `linfa_elasticnet::ElasticNet` with `l1_ratio = 0`, `penalty = α/n` (the same
/// objective divided by `2n`)? In linfa-elasticnet 0.8.1 the duality gap it stops on is, for
/// `l1_ratio = 0`, the primal objective itself, which never falls below the tolerance, so
/// every fit runs to `max_iterations` (about 25 s per fit at 100k sweeps for n = 120, d = 6,
/// and the 200 bootstrap refits multiply that). The augmented system gives the exact
/// minimiser with one QR factorisation.
fn ridge_linfa(xs: Array2<f64>, ys: Array1<f64>, alpha: f64) -> Result<Array1<f64>, SurrogateError> {
    let (n, k) = xs.dim();
    let mut aug = Array2::zeros((n + k, k));
    aug.slice_mut(ndarray::s![..n, ..]).assign(&xs);
    aug.slice_mut(ndarray::s![n.., ..]).diag_mut().fill(alpha.sqrt());
    let mut target = Array1::zeros(n + k);
    target.slice_mut(ndarray::s![..n]).assign(&ys);
    let ds = DatasetBase::new(aug, target);
    let model = LinearRegression::new()
        .with_intercept(false)
        .fit(&ds)
        .map_err(|e| SurrogateError::Solver { solver: "linfa-linear ridge (augmented OLS)", message: e.to_string() })?;
    Ok(model.params().to_owned())
}

/// Whether a symmetric positive semi-definite Gram matrix is numerically non-singular.
fn full_rank(gram: &Array2<f64>) -> Result<bool, SurrogateError> {
    let (vals, _) =
        gram.eigh().map_err(|e| SurrogateError::Solver { solver: "linfa-linalg eigh", message: e.to_string() })?;
    let max = vals.iter().cloned().fold(0.0f64, f64::max);
    let min = vals.iter().cloned().fold(f64::INFINITY, f64::min);
    Ok(max > 0.0 && min > RANK_TOL * max)
}

/// Minimum-norm solution of `G β = R` for a positive semi-definite `G`, through its
/// eigendecomposition (eigenvalues below `RANK_TOL · λ_max` treated as zero).
fn min_norm_solve(gram: Array2<f64>, rhs: Array2<f64>) -> Result<Array2<f64>, SurrogateError> {
    let (vals, vecs) =
        gram.eigh().map_err(|e| SurrogateError::Solver { solver: "linfa-linalg eigh", message: e.to_string() })?;
    let max = vals.iter().cloned().fold(0.0f64, f64::max);
    let inv = vals.mapv(|l| if max > 0.0 && l > RANK_TOL * max { 1.0 / l } else { 0.0 });
    let proj = vecs.t().dot(&rhs) * &inv.insert_axis(Axis(1));
    Ok(vecs.dot(&proj))
}

/// Solves `G β = R` by Cholesky (one factorisation for every column of `R`); when `G` is
/// singular and no ridge penalty guarantees it is definite, returns the minimum-norm
/// solution instead.
fn solve_spd_or_min_norm(gram: Array2<f64>, rhs: Array2<f64>, ridge: bool) -> Result<Array2<f64>, SurrogateError> {
    if ridge || full_rank(&gram)? {
        let mut factor = gram.clone();
        let k = gram.nrows();
        if rhs.ncols() > k {
            // linfa-linalg substitutes column by column through ndarray slices, which dominated
            // fits with one column per pixel; solving for the k×k inverse once and applying it
            // with one matrix product costs the same flops for the factorisation and a GEMM for the rest.
            let mut inverse = Array2::eye(k);
            if factor.solvec_inplace(&mut inverse).is_ok() {
                return Ok(inverse.dot(&rhs));
            }
        } else {
            let mut sol = rhs.clone();
            if factor.solvec_inplace(&mut sol).is_ok() {
                return Ok(sol);
            }
        }
    }
    min_norm_solve(gram, rhs)
}

/// Weighted R² (sklearn `r2_score(..., sample_weight=w)`, including its convention of 1.0 for
/// a perfect fit of constant `y` and 0.0 for an imperfect one) and weighted MSE (sklearn
/// `mean_squared_error(..., sample_weight=w)`).
pub(crate) fn weighted_r2_mse(y: ArrayView1<f64>, pred: &[f64], w: ArrayView1<f64>) -> (f64, f64) {
    let sw = w.sum();
    let ybar = y.dot(&w) / sw;
    let (mut ss_res, mut ss_tot) = (0.0, 0.0);
    for ((&yi, &pi), &wi) in y.iter().zip(pred).zip(w) {
        ss_res += wi * (yi - pi) * (yi - pi);
        ss_tot += wi * (yi - ybar) * (yi - ybar);
    }
    let r2 = if ss_tot != 0.0 {
        1.0 - ss_res / ss_tot
    } else if ss_res == 0.0 {
        1.0
    } else {
        0.0
    };
    (r2, ss_res / sw)
}

/// Percentile intervals and two-sided p-values from `cfg.bootstrap` seeded replicates.
#[allow(clippy::too_many_arguments)]
fn bootstrap(
    x: ArrayView2<f64>,
    y: ArrayView1<f64>,
    w: ArrayView1<f64>,
    cols: &[usize],
    alpha: Option<f64>,
    cfg: &SurrogateConfig,
    coef: &[f64],
    selected: &[bool],
) -> (Vec<(f64, f64)>, Vec<f64>) {
    let n = x.nrows();
    let d = x.ncols();
    // A replicate's rows are copies of original rows, and weighted least squares is unchanged
    // when identical rows are merged into one carrying the sum of their weights. So each
    // replicate is fitted on the distinct original rows it drew (identical samples, such as
    // repeated masks, count as one), weighted by w times how often it drew them: the same
    // fit on fewer rows.
    let (group_of, first) = identical_rows(x, y);
    let (xg, yg) = (x.select(Axis(0), &first), y.select(Axis(0), &first));
    let replicates: Vec<Vec<f64>> = (0..cfg.bootstrap)
        .into_par_iter()
        .filter_map(|b| {
            let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed.wrapping_add(b as u64));
            let mut drawn = vec![0.0f64; first.len()];
            for _ in 0..n {
                let i = rng.random_range(0..n);
                drawn[group_of[i]] += w[i];
            }
            let keep: Vec<usize> = (0..first.len()).filter(|&g| drawn[g] > 0.0).collect();
            if keep.is_empty() {
                return None;
            }
            let wb = Array1::from_iter(keep.iter().map(|&g| drawn[g]));
            let xb = xg.select(Axis(0), &keep);
            let yb = yg.select(Axis(0), &keep);
            // The normal equations with one Cholesky factorisation (`fit_many`, same minimiser
            // and the same constant-column and rank rules as the linfa fit above) make a
            // replicate a few microseconds instead of a QR decomposition's tens.
            let mut coef = vec![0.0; d];
            match fit_many(xb.select(Axis(1), cols).view(), yb.insert_axis(Axis(1)).view(), wb.view(), alpha) {
                Ok((beta, _)) => cols.iter().zip(beta.column(0)).for_each(|(&j, &b)| coef[j] = b),
                // Every selected column constant in this replicate: each counts as 0.
                Err(SurrogateError::NothingToFit(_) | SurrogateError::TooFewSamples(_)) => {}
                Err(_) => return None,
            }
            Some(coef)
        })
        .collect();

    let mut intervals = Vec::with_capacity(d);
    let mut p_values = Vec::with_capacity(d);
    let lo_q = (1.0 - cfg.confidence) / 2.0;
    let hi_q = 1.0 - lo_q;
    for j in 0..d {
        if !selected[j] {
            intervals.push((0.0, 0.0));
            p_values.push(f64::NAN);
            continue;
        }
        if replicates.is_empty() {
            intervals.push((coef[j], coef[j]));
            p_values.push(f64::NAN);
            continue;
        }
        let mut draws: Vec<f64> = replicates.iter().map(|r| r[j]).collect();
        draws.sort_unstable_by(f64::total_cmp);
        intervals.push((percentile(&draws, lo_q), percentile(&draws, hi_q)));
        p_values.push(bootstrap_p(&draws));
    }
    (intervals, p_values)
}

/// The group of every row of `(x, y)`, rows with bit-identical values sharing one, and the
/// first row of each group.
fn identical_rows(x: ArrayView2<f64>, y: ArrayView1<f64>) -> (Vec<usize>, Vec<usize>) {
    let mut seen: std::collections::HashMap<Vec<u64>, usize> = std::collections::HashMap::new();
    let mut first = Vec::new();
    let group_of = x
        .outer_iter()
        .zip(y)
        .enumerate()
        .map(|(i, (row, v))| {
            let bits: Vec<u64> = row.iter().chain(std::iter::once(v)).map(|a| a.to_bits()).collect();
            *seen.entry(bits).or_insert_with(|| {
                first.push(i);
                first.len() - 1
            })
        })
        .collect();
    (group_of, first)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn r2_is_one_for_a_perfect_fit_and_weighted() {
        let r2_mse = |y: &[f64], p: &[f64], w: &[f64]| weighted_r2_mse(y.into(), p, w.into());
        assert_eq!(r2_mse(&[1.0, 2.0, 3.0], &[1.0, 2.0, 3.0], &[1.0; 3]), (1.0, 0.0));
        let (r2, mse) = r2_mse(&[0.0, 2.0], &[1.0, 1.0], &[1.0, 3.0]);
        assert_eq!(mse, 1.0);
        assert!((r2 + 1.0 / 3.0).abs() < 1e-12, "weighted mean 1.5: 1 − 4/3, got {r2}");
    }
    use ndarray::{Array1, Array2};

    /// Deterministic 0/1 design: row 0 all ones, then pseudo-random bits.
    fn design(n: usize, d: usize, seed: u64) -> Array2<f64> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        Array2::from_shape_fn((n, d), |(i, _)| if i == 0 || rng.random::<bool>() { 1.0 } else { 0.0 })
    }

    fn weights(n: usize, seed: u64) -> Array1<f64> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        Array1::from_shape_fn(n, |_| exponential_kernel(rng.random::<f64>(), 0.5))
    }

    fn no_boot() -> SurrogateConfig {
        SurrogateConfig { bootstrap: 0, ..Default::default() }
    }

    #[test]
    fn kernel_is_one_at_zero_and_decays() {
        assert_eq!(exponential_kernel(0.0, 0.25), 1.0);
        assert!((exponential_kernel(1.0, 1.0) - (-1.0f64).exp()).abs() < 1e-15);
        assert!(exponential_kernel(2.0, 1.0) < exponential_kernel(1.0, 1.0));
        assert!(exponential_kernel(1.0, 0.0).is_nan());
    }

    #[test]
    fn fit_recovers_exact_coefficients_without_noise() {
        let x = design(40, 5, 1);
        let beta = [0.5, -1.0, 2.0, 0.0, 0.25];
        let y = x.dot(&Array1::from(beta.to_vec())) + 0.7;
        let w = weights(40, 2);
        let s = fit(x.view(), y.view(), w.view(), &no_boot()).unwrap();
        for (c, b) in s.coefficients.iter().zip(beta) {
            assert!((c - b).abs() < 1e-10, "{c} vs {b}");
        }
        assert!((s.intercept - 0.7).abs() < 1e-10);
        assert!((s.r2 - 1.0).abs() < 1e-12 && s.mse < 1e-20);
        assert!(s.selected.iter().all(|&v| v));
        assert_eq!(s.predictions.len(), 40);
        assert!(s.p_values.iter().all(|p| p.is_nan()));
        assert!(s.intervals.iter().zip(&s.coefficients).all(|(iv, c)| iv.0 == *c && iv.1 == *c));
    }

    #[test]
    fn ridge_shrinks_towards_zero() {
        let x = design(60, 4, 3);
        let y = x.dot(&Array1::from(vec![1.0, -2.0, 0.5, 1.5]));
        let w = weights(60, 4);
        let ols = fit(x.view(), y.view(), w.view(), &no_boot()).unwrap();
        let cfg = SurrogateConfig { ridge_alpha: Some(5.0), ..no_boot() };
        let ridge = fit(x.view(), y.view(), w.view(), &cfg).unwrap();
        let norm = |v: &[f64]| v.iter().map(|c| c * c).sum::<f64>();
        assert!(norm(&ridge.coefficients) < norm(&ols.coefficients));
    }

    #[test]
    fn constant_columns_get_zero_and_are_not_selected() {
        let mut x = design(30, 4, 5);
        x.column_mut(1).fill(1.0); // never removed
        x.column_mut(3).fill(0.0); // always removed
        let y = x.column(0).mapv(|v| 2.0 * v) + x.column(2).mapv(|v| -v) + 1.0;
        let w = weights(30, 6);
        let s = fit(x.view(), y.view(), w.view(), &SurrogateConfig::default()).unwrap();
        assert_eq!(s.selected, vec![true, false, true, false]);
        assert_eq!(s.coefficients[1], 0.0);
        assert_eq!(s.coefficients[3], 0.0);
        assert!((s.coefficients[0] - 2.0).abs() < 1e-10);
        assert_eq!(s.intervals[1], (0.0, 0.0));
        assert!(s.p_values[3].is_nan());
    }

    #[test]
    fn all_constant_columns_is_an_error() {
        let x = Array2::<f64>::ones((5, 3));
        let y = Array1::from(vec![1.0, 2.0, 3.0, 4.0, 5.0]);
        let w = Array1::ones(5);
        let err = fit(x.view(), y.view(), w.view(), &no_boot()).unwrap_err();
        assert_eq!(err, SurrogateError::NothingToFit(3));
        assert!(err.to_string().contains("more perturbation samples"));
        assert!(fit_many(x.view(), y.view().insert_axis(Axis(1)), w.view(), None).is_err());
    }

    #[test]
    fn collinear_columns_give_the_minimum_norm_split() {
        // Columns 0 and 1 always removed together: sklearn/lstsq splits the effect evenly.
        let mut x = design(30, 3, 7);
        let c0 = x.column(0).to_owned();
        x.column_mut(1).assign(&c0);
        let y = c0.mapv(|v| 3.0 * v) + x.column(2).mapv(|v| v) + 0.5;
        let w = weights(30, 8);
        let s = fit(x.view(), y.view(), w.view(), &no_boot()).unwrap();
        assert!((s.coefficients[0] - 1.5).abs() < 1e-8, "{:?}", s.coefficients);
        assert!((s.coefficients[1] - 1.5).abs() < 1e-8);
        assert!((s.coefficients[2] - 1.0).abs() < 1e-8);
        let (c, b) = fit_many(x.view(), y.view().insert_axis(Axis(1)), w.view(), None).unwrap();
        assert!((c[[0, 0]] - 1.5).abs() < 1e-8 && (b[0] - s.intercept).abs() < 1e-8);
    }

    #[test]
    fn fewer_samples_than_words_does_not_panic() {
        let x = design(4, 8, 9);
        let y = Array1::from(vec![0.0, 1.0, 0.5, 0.2]);
        let w = Array1::ones(4);
        let s = fit(x.view(), y.view(), w.view(), &SurrogateConfig::default()).unwrap();
        assert!(s.coefficients.iter().all(|c| c.is_finite()));
        // Interpolates the 4 samples.
        assert!(s.mse < 1e-12);
    }

    #[test]
    fn bootstrap_is_deterministic_and_covers_the_estimate() {
        let x = design(80, 4, 10);
        let mut rng = ChaCha8Rng::seed_from_u64(11);
        let noise = Array1::from_shape_fn(80, |_| rng.random::<f64>() - 0.5);
        let y = x.dot(&Array1::from(vec![1.0, 0.0, -0.5, 2.0])) + noise * 0.3;
        let w = weights(80, 12);
        let cfg = SurrogateConfig { bootstrap: 100, seed: 42, ..Default::default() };
        let a = fit(x.view(), y.view(), w.view(), &cfg).unwrap();
        let b = fit(x.view(), y.view(), w.view(), &cfg).unwrap();
        assert_eq!(a.intervals, b.intervals);
        assert_eq!(a.p_values, b.p_values);
        for (iv, c) in a.intervals.iter().zip(&a.coefficients) {
            assert!(iv.0 <= *c && *c <= iv.1, "{iv:?} vs {c}");
        }
        assert!(a.p_values[0] < 0.05 && a.p_values[3] < 0.05);
        assert!(a.p_values.iter().all(|p| (0.0..=1.0).contains(p)));
        let other = fit(x.view(), y.view(), w.view(), &SurrogateConfig { seed: 43, ..cfg }).unwrap();
        assert_ne!(other.intervals, a.intervals);
    }

    #[test]
    fn bootstrap_equals_refitting_the_drawn_rows() {
        // 24 distinct rows, each repeated (as repeated masks are), so replicates merge both
        // the rows they draw twice and the identical rows.
        let base = design(24, 5, 21);
        let rows: Vec<usize> = (0..60).map(|i| (i * 7) % 24).collect();
        let x = base.select(Axis(0), &rows);
        let y = x.dot(&Array1::from(vec![0.7, -1.0, 0.0, 0.3, 1.2])) + x.column(1).mapv(|v| 0.2 * v * v);
        let w = Array1::from_iter(rows.iter().map(|&r| 0.2 + r as f64 / 24.0));
        for alpha in [None, Some(0.5)] {
            let cfg = SurrogateConfig { bootstrap: 40, seed: 5, ridge_alpha: alpha, ..Default::default() };
            let s = fit(x.view(), y.view(), w.view(), &cfg).unwrap();
            let cols: Vec<usize> = (0..5).collect();
            let draws: Vec<Vec<f64>> = (0..40u64)
                .map(|b| {
                    let mut rng = ChaCha8Rng::seed_from_u64(5 + b);
                    let idx: Vec<usize> = (0..60).map(|_| rng.random_range(0..60)).collect();
                    let (xb, yb, wb) = (x.select(Axis(0), &idx), y.select(Axis(0), &idx), w.select(Axis(0), &idx));
                    weighted_fit(xb.view(), yb.view(), wb.view(), &cols, alpha).unwrap().coef
                })
                .collect();
            for j in 0..5 {
                let mut v: Vec<f64> = draws.iter().map(|r| r[j]).collect();
                v.sort_unstable_by(f64::total_cmp);
                let (lo, hi) = (percentile(&v, 0.025), percentile(&v, 0.975));
                assert!((s.intervals[j].0 - lo).abs() < 1e-9 && (s.intervals[j].1 - hi).abs() < 1e-9, "{alpha:?} {j}");
            }
        }
    }

    #[test]
    fn top_k_keeps_the_k_largest() {
        let x = design(50, 5, 13);
        let y = x.dot(&Array1::from(vec![0.1, -3.0, 0.2, 2.0, 0.05]));
        let w = weights(50, 14);
        let cfg = SurrogateConfig { top_k: Some(2), ..no_boot() };
        let s = fit(x.view(), y.view(), w.view(), &cfg).unwrap();
        assert_eq!(s.selected, vec![false, true, false, true, false]);
        assert_eq!(s.selected.iter().filter(|&&v| v).count(), 2);
        assert_eq!(s.coefficients[0], 0.0);
        let big = fit(x.view(), y.view(), w.view(), &SurrogateConfig { top_k: Some(9), ..no_boot() });
        assert!(big.unwrap().selected.iter().all(|&v| v));
    }

    #[test]
    fn bad_inputs_are_errors_not_panics() {
        let x = design(10, 3, 15);
        let y = Array1::<f64>::zeros(10);
        let w = Array1::<f64>::ones(10);
        let cfg = no_boot();
        let short = Array1::<f64>::ones(9);
        assert!(matches!(
            fit(x.view(), short.view(), w.view(), &cfg),
            Err(SurrogateError::LengthMismatch { what: "y", .. })
        ));
        assert!(matches!(
            fit(x.view(), y.view(), short.view(), &cfg),
            Err(SurrogateError::LengthMismatch { what: "w", .. })
        ));
        let mut bad_w = w.clone();
        bad_w[3] = -1.0;
        assert!(matches!(
            fit(x.view(), y.view(), bad_w.view(), &cfg),
            Err(SurrogateError::InvalidWeight { index: 3, .. })
        ));
        bad_w[3] = f64::NAN;
        assert!(fit(x.view(), y.view(), bad_w.view(), &cfg).is_err());
        let zero_w = Array1::<f64>::zeros(10);
        assert_eq!(fit(x.view(), y.view(), zero_w.view(), &cfg).unwrap_err(), SurrogateError::ZeroWeights);
        let one = x.slice(ndarray::s![..1, ..]);
        assert_eq!(
            fit(one, y.slice(ndarray::s![..1]), w.slice(ndarray::s![..1]), &cfg).unwrap_err(),
            SurrogateError::TooFewSamples(1)
        );
        let mut bad_y = y.clone();
        bad_y[2] = f64::INFINITY;
        assert!(matches!(
            fit(x.view(), bad_y.view(), w.view(), &cfg),
            Err(SurrogateError::NonFinite { what: "y", index: 2 })
        ));
        let neg = SurrogateConfig { ridge_alpha: Some(-1.0), ..no_boot() };
        assert!(matches!(fit(x.view(), y.view(), w.view(), &neg), Err(SurrogateError::InvalidAlpha(_))));
        let conf = SurrogateConfig { confidence: 1.5, ..no_boot() };
        assert!(matches!(fit(x.view(), y.view(), w.view(), &conf), Err(SurrogateError::InvalidConfidence(_))));
        let k0 = SurrogateConfig { top_k: Some(0), ..no_boot() };
        assert_eq!(fit(x.view(), y.view(), w.view(), &k0).unwrap_err(), SurrogateError::InvalidTopK);
        let empty = Array2::<f64>::zeros((10, 0));
        assert_eq!(fit(empty.view(), y.view(), w.view(), &cfg).unwrap_err(), SurrogateError::NoFeatures);
        // Constant y is fine: zero coefficients, R² = 1.
        let s = fit(x.view(), y.view(), w.view(), &cfg).unwrap();
        assert!(s.coefficients.iter().all(|&c| c == 0.0) && s.r2 == 1.0);
    }

    #[test]
    fn fit_many_equals_fit_per_column() {
        let (n, d, m) = (120, 6, 5);
        let mut x = design(n, d, 16);
        x.column_mut(4).fill(1.0);
        let w = weights(n, 17);
        let mut rng = ChaCha8Rng::seed_from_u64(18);
        let ys = Array2::from_shape_fn((n, m), |(i, j)| {
            x.row(i).iter().enumerate().map(|(k, v)| v * ((k + j) as f64 - 2.5)).sum::<f64>() + rng.random::<f64>()
        });
        for alpha in [None, Some(0.7)] {
            let (coef, icpt) = fit_many(x.view(), ys.view(), w.view(), alpha).unwrap();
            assert_eq!(coef.dim(), (d, m));
            for j in 0..m {
                let cfg = SurrogateConfig { ridge_alpha: alpha, ..no_boot() };
                let s = fit(x.view(), ys.column(j), w.view(), &cfg).unwrap();
                for k in 0..d {
                    assert!((coef[[k, j]] - s.coefficients[k]).abs() < 1e-9, "{alpha:?} {k} {j}");
                }
                assert!((icpt[j] - s.intercept).abs() < 1e-9, "{alpha:?} {j}");
            }
            assert!(coef.row(4).iter().all(|&c| c == 0.0));
        }
    }
}
