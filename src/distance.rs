//! Distances between editor outputs, the `y` of the gSMILE surrogate.
//!
//! gSMILE measures how much an edited output changed when words of the instruction were
//! removed by a distance between the output for the full instruction and the output for the
//! perturbed one. Outputs are either embeddings (compared as vectors, or as 1-D empirical
//! distributions of their components, as gSMILE does) or `[3, H, W]` images in `[0, 1]`
//! (compared as distributions of pixel values per channel, or of projected colours).
//!
//! Every 1-D function matches a scipy function, checked against scipy by
//! `tests/integration/stats_parity.rs`. The functions return `f64` and never panic: an empty input
//! gives `NaN`, and so does any `NaN` in the input (values are ordered with
//! [`f32::total_cmp`], but a `NaN` sample has no place on the real line, so the distance is
//! undefined). [`between_vectors`] and [`between_images`] turn such cases into a
//! [`DistanceError`].

use std::fmt;

use ndarray::{Array2, ArrayView2, ArrayView3, Axis, CowArray, Ix2};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

/// Number of random directions [`between_images`] uses for [`Metric::SlicedWasserstein`].
pub const SLICED_PROJECTIONS: usize = 64;

/// Which distance measures the change between two outputs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Metric {
    /// 1-Wasserstein (earth mover's) distance between 1-D empirical distributions.
    Wasserstein,
    /// Mean 1-Wasserstein distance between pixel colours projected on random directions.
    SlicedWasserstein,
    /// Two-sample Kolmogorov–Smirnov statistic (largest gap between empirical CDFs).
    Ks,
    /// Cosine distance `1 − u·v / (‖u‖‖v‖)`.
    Cosine,
    /// Optimal transport between the two images' sets of patch tokens (a features encoder's
    /// local features), Euclidean ground cost: [`patch_ot`].
    PatchOt,
}

impl Metric {
    /// The name used on the command line and in `explanation.json`.
    pub fn name(self) -> &'static str {
        match self {
            Metric::Wasserstein => "wasserstein",
            Metric::SlicedWasserstein => "sliced-wasserstein",
            Metric::Ks => "ks",
            Metric::Cosine => "cosine",
            Metric::PatchOt => "patch-ot",
        }
    }
}

impl fmt::Display for Metric {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What each sample's output is compared with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Reference {
    /// The full instruction's output: "how far is this sample from the complete edit" (gSMILE); target = −distance.
    #[default]
    Full,
    /// The unedited input image: "how much did this instruction edit the image"; target = +distance.
    Input,
}

impl Reference {
    /// Sign that turns a distance into the regression target, so a positive attribution
    /// always means "moves the output toward the full edit".
    pub fn target_sign(self) -> f64 {
        match self {
            Reference::Full => -1.0,
            Reference::Input => 1.0,
        }
    }
}

/// Cosine distance between a word mask and the full instruction's all-kept mask, LIME's
/// text-explainer distance (`sklearn.metrics.pairwise_distances(..., metric="cosine")`
/// against the all-ones row): `1 − √(kept / words)`, and 1 for a mask that keeps nothing.
pub fn mask_cosine(mask: &[bool]) -> f64 {
    let kept = mask.iter().filter(|&&b| b).count() as f64;
    if kept == 0.0 { 1.0 } else { 1.0 - (kept / mask.len() as f64).sqrt() }
}

/// The word mover's distance between an instruction and a perturbed copy of it: the exact
/// optimal-transport cost between the vectors of all its words and of the `kept` ones, each
/// side carrying uniform mass, with Euclidean ground cost (Kusner et al. 2015); `+∞` when no
/// word is kept.
///
/// Uniform masses `1/n` and `1/m` make the transport an assignment between `L/n` copies of
/// every word and `L/m` copies of every kept word, `L = lcm(n, m)` points each side, solved
/// exactly with the `lsap` crate (scipy's `linear_sum_assignment`, `O(L³)`); callers keep
/// `n` at most [`WORD_MOVERS_MAX_WORDS`], so `L` stays in the hundreds.
pub fn word_movers(vectors: &[Vec<f32>], kept: &[bool]) -> f64 {
    let n = vectors.len();
    let kept_idx: Vec<usize> = (0..n).filter(|&i| kept.get(i).copied().unwrap_or(false)).collect();
    let m = kept_idx.len();
    if m == 0 || n == 0 {
        return f64::INFINITY;
    }
    if m == n {
        return 0.0;
    }
    let euclid = |a: &[f32], b: &[f32]| a.iter().zip(b).map(|(x, y)| ((x - y) as f64).powi(2)).sum::<f64>().sqrt();
    let gcd = |mut a: usize, mut b: usize| {
        while b != 0 {
            (a, b) = (b, a % b);
        }
        a
    };
    let size = n / gcd(n, m) * m;
    let (per_word, per_kept) = (size / n, size / m);
    let mut cost = vec![0.0; size * size];
    for r in 0..size {
        let a = &vectors[r / per_word];
        for c in 0..size {
            cost[r * size + c] = euclid(a, &vectors[kept_idx[c / per_kept]]);
        }
    }
    match lsap::solve(size, size, &cost, false) {
        Ok((rows, cols)) => rows.iter().zip(&cols).map(|(&r, &c)| cost[r * size + c]).sum::<f64>() / size as f64,
        Err(_) => f64::NAN,
    }
}

/// The most tokens a side [`patch_ot`] solves exactly (an `O(T³)` assignment); larger sets
/// are solved by Sinkhorn iterations.
pub const PATCH_OT_EXACT_MAX: usize = 256;

/// Sinkhorn's entropic regularisation ε for [`patch_ot`] on large sets, as a fraction of the
/// mean ground cost: small enough that the plan is close to the exact one (the cost it gives
/// is within a few per cent above the exact cost), large enough to converge in a few hundred
/// iterations.
pub const SINKHORN_EPSILON: f64 = 0.02;

/// Sinkhorn iterations at most; it stops earlier once the plan's row masses are within 1e-4
/// (L1) of uniform, which puts the cost within about 1e-4 of the converged one.
pub const SINKHORN_MAX_ITERATIONS: usize = 10_000;

/// Optimal-transport distance between two sets of tokens (rows of `a` and `b`, the same
/// width), each token carrying uniform mass, with Euclidean ground cost: how far the image's
/// local features had to move, whichever patch they moved to. Unlike W1 over the components
/// of one vector it knows which feature is which, and unlike cosine on pooled features it
/// sees local change that averages out.
///
/// Equal sets of at most [`PATCH_OT_EXACT_MAX`] tokens are solved exactly: with uniform
/// masses an optimal plan is a permutation (Birkhoff), an assignment solved by the `lsap`
/// crate (scipy's `linear_sum_assignment`). Larger or unequal sets are solved by log-domain
/// Sinkhorn with ε = [`SINKHORN_EPSILON`] × the mean cost, returning the plan's transport
/// cost `⟨P, C⟩` (POT's `sinkhorn2`). Sinkhorn is written here: no maintained Rust crate
/// offers it on plain slices (the OT crates found are unmaintained or tie it to their own
/// array types), and it is thirty lines. `NaN` for an empty set or unequal widths.
pub fn patch_ot(a: ArrayView2<f32>, b: ArrayView2<f32>) -> f64 {
    let (n, m) = (a.nrows(), b.nrows());
    let Some(cost) = ground_cost(a, b) else { return f64::NAN };
    if n == m && n <= PATCH_OT_EXACT_MAX {
        return match lsap::solve(n, n, &cost, false) {
            Ok((rows, cols)) => rows.iter().zip(&cols).map(|(&r, &c)| cost[r * n + c]).sum::<f64>() / n as f64,
            Err(_) => f64::NAN,
        };
    }
    sinkhorn(&cost, n, m)
}

/// The entropic optimal-transport cost [`patch_ot`] uses for large sets, for any sizes
/// (POT's `sinkhorn2` with `reg` = [`SINKHORN_EPSILON`] × the mean cost); `NaN` as [`patch_ot`].
pub fn sinkhorn_ot(a: ArrayView2<f32>, b: ArrayView2<f32>) -> f64 {
    ground_cost(a, b).map_or(f64::NAN, |cost| sinkhorn(&cost, a.nrows(), b.nrows()))
}

/// Euclidean distances between the rows of `a` and `b`, row-major; `None` for an empty set
/// or unequal widths.
fn ground_cost(a: ArrayView2<f32>, b: ArrayView2<f32>) -> Option<Vec<f64>> {
    let (n, d) = a.dim();
    let (m, d2) = b.dim();
    if n == 0 || m == 0 || d != d2 {
        return None;
    }
    let mut cost = vec![0.0f64; n * m];
    cost.par_chunks_mut(m).enumerate().for_each(|(i, row)| {
        let x = a.row(i);
        for (j, c) in row.iter_mut().enumerate() {
            *c = x.iter().zip(b.row(j)).map(|(&p, &q)| (f64::from(p) - f64::from(q)).powi(2)).sum::<f64>().sqrt();
        }
    });
    Some(cost)
}

/// Log-domain Sinkhorn between uniform masses on `n` and `m` points with `cost` (`n × m`,
/// row-major); the transport cost of the final plan.
fn sinkhorn(cost: &[f64], n: usize, m: usize) -> f64 {
    let mean = cost.iter().sum::<f64>() / cost.len() as f64;
    if mean == 0.0 {
        return 0.0;
    }
    let eps = SINKHORN_EPSILON * mean;
    let (log_a, log_b) = (-(n as f64).ln(), -(m as f64).ln());
    let (mut f, mut g) = (vec![0.0f64; n], vec![0.0f64; m]);
    // log Σ exp of `n` terms, shifted by their largest for stability.
    fn lse(terms: impl Iterator<Item = f64> + Clone) -> f64 {
        let top = terms.clone().fold(f64::NEG_INFINITY, f64::max);
        top + terms.map(|x| (x - top).exp()).sum::<f64>().ln()
    }
    let plan = |f: &[f64], g: &[f64], i: usize, j: usize| ((f[i] + g[j] - cost[i * m + j]) / eps).exp();
    for iteration in 0..SINKHORN_MAX_ITERATIONS {
        f.par_iter_mut().enumerate().for_each(|(i, fi)| {
            *fi = eps * (log_a - lse((0..m).map(|j| (g[j] - cost[i * m + j]) / eps)));
        });
        g.par_iter_mut().enumerate().for_each(|(j, gj)| {
            *gj = eps * (log_b - lse((0..n).map(|i| (f[i] - cost[i * m + j]) / eps)));
        });
        // Columns now match their mass exactly; the rows' gap says how far from converged.
        if iteration % 10 == 9 {
            let gap: f64 =
                (0..n).map(|i| ((0..m).map(|j| plan(&f, &g, i, j)).sum::<f64>() - 1.0 / n as f64).abs()).sum();
            if gap < 1e-4 {
                break;
            }
        }
    }
    (0..n).map(|i| (0..m).map(|j| plan(&f, &g, i, j) * cost[i * m + j]).sum::<f64>()).sum()
}

/// The most words [`word_movers`] is asked to solve exactly (the assignment grows with the
/// least common multiple of the two word counts).
pub const WORD_MOVERS_MAX_WORDS: usize = 24;

/// SMILE's bootstrap p-value of a W1 distance between two samples: the share of `resamples`
/// replicates, each drawing `|u|` and `|v|` values without replacement from the pooled
/// values (ChaCha8 seeded with `seed`), whose W1 is at least the observed one. Small when
/// the two distributions differ; `NaN` for empty inputs.
pub fn wasserstein_p_value(u: &[f32], v: &[f32], resamples: usize, seed: u64) -> f64 {
    use rand::SeedableRng;
    use rand::seq::index;
    if u.is_empty() || v.is_empty() || resamples == 0 {
        return f64::NAN;
    }
    let observed = wasserstein_1d(u, v);
    let pooled: Vec<f32> = u.iter().chain(v).copied().collect();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let mut at_least = 0usize;
    for _ in 0..resamples {
        let a: Vec<f32> = index::sample(&mut rng, pooled.len(), u.len()).iter().map(|i| pooled[i]).collect();
        let b: Vec<f32> = index::sample(&mut rng, pooled.len(), v.len()).iter().map(|i| pooled[i]).collect();
        if wasserstein_1d(&a, &b) >= observed {
            at_least += 1;
        }
    }
    at_least as f64 / resamples as f64
}

/// Why a distance could not be computed for a metric and pair of outputs.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DistanceError {
    /// Sliced Wasserstein was asked for between embedding vectors.
    #[error(
        "metric `sliced-wasserstein` is only for pixels (it projects RGB colours); \
         for embeddings use `wasserstein`, `ks` or `cosine`"
    )]
    SlicedOnVectors,
    /// Patch-OT was asked for between pooled vectors or images, which have no token sets.
    #[error(
        "metric `patch-ot` compares sets of patch tokens, which only a features encoder gives. \
         Fix: set `space = embedding` with a features encoder (e.g. onnx/tiny-dinov2), or use `wasserstein` or `cosine`"
    )]
    NeedsTokens,
    /// Cosine distance was asked for between vectors or images of different sizes.
    #[error(
        "metric `cosine` needs outputs of the same size, got {left} and {right} values; \
         use `wasserstein` or `ks`, which compare distributions of different sizes"
    )]
    LengthMismatch {
        /// Number of values in the first output.
        left: usize,
        /// Number of values in the second output.
        right: usize,
    },
    /// An image was not `[3, H, W]`.
    #[error(
        "metric `{metric}` on images needs [3, H, W] RGB arrays, got shape {shape:?}; \
         convert the image to 3 channels first"
    )]
    NotRgb {
        /// The metric that was asked for.
        metric: Metric,
        /// The offending shape.
        shape: Vec<usize>,
    },
    /// One of the outputs had no values.
    #[error("metric `{metric}` got an empty {space}; the editor or encoder produced no values")]
    Empty {
        /// The metric that was asked for.
        metric: Metric,
        /// `"vector"` or `"image"`.
        space: &'static str,
    },
    /// The distance is undefined for these values (NaN input, or a zero vector for cosine).
    #[error("metric `{metric}` is undefined here: {reason}. Fix: {fix}")]
    Undefined {
        /// The metric that was asked for.
        metric: Metric,
        /// What made it undefined.
        reason: &'static str,
        /// What to do about it (never the metric that just failed).
        fix: &'static str,
    },
}

/// 1-Wasserstein distance between two unweighted empirical distributions, matching
/// `scipy.stats.wasserstein_distance(u, v)`.
///
/// Integrates `|CDF_u(t) − CDF_v(t)|` over the merged sorted samples (scipy's
/// `_cdf_distance(1, u, v)`), in `f64`. The samples may differ in length. Returns `NaN` if
/// either sample is empty or contains `NaN`.
pub fn wasserstein_1d(u: &[f32], v: &[f32]) -> f64 {
    let mut su = u.to_vec();
    let mut sv = v.to_vec();
    su.sort_unstable_by(f32::total_cmp);
    sv.sort_unstable_by(f32::total_cmp);
    w1_sorted(&su, &sv)
}

/// Two-sided two-sample Kolmogorov–Smirnov statistic, matching
/// `scipy.stats.ks_2samp(u, v).statistic`.
///
/// The largest absolute difference between the two right-continuous empirical CDFs,
/// evaluated at every sample value (ties are consumed together, as scipy's
/// `searchsorted(..., side="right")` does). Returns `NaN` if either sample is empty or
/// contains `NaN`.
pub fn ks_statistic(u: &[f32], v: &[f32]) -> f64 {
    let mut su = u.to_vec();
    let mut sv = v.to_vec();
    su.sort_unstable_by(f32::total_cmp);
    sv.sort_unstable_by(f32::total_cmp);
    ks_sorted(&su, &sv)
}

/// Cosine distance `1 − u·v / (‖u‖‖v‖)`, matching `scipy.spatial.distance.cosine(u, v)`
/// (including its clipping to `[0, 2]`).
///
/// Returns `NaN` if the lengths differ, either vector is empty or all zeros, or a value is
/// `NaN`.
pub fn cosine_distance(u: &[f32], v: &[f32]) -> f64 {
    if u.len() != v.len() || u.is_empty() {
        return f64::NAN;
    }
    let (mut uv, mut uu, mut vv) = (0.0f64, 0.0f64, 0.0f64);
    for (&a, &b) in u.iter().zip(v) {
        let (a, b) = (f64::from(a), f64::from(b));
        uv += a * b;
        uu += a * a;
        vv += b * b;
    }
    if uu == 0.0 || vv == 0.0 {
        return f64::NAN;
    }
    // NaN propagates through clamp.
    (1.0 - uv / (uu * vv).sqrt()).clamp(0.0, 2.0)
}

/// Sum over channels of the 1-Wasserstein distance between the channels' pixel values
/// (each channel of `[3, H, W]` images in `[0, 1]` treated as a 1-D empirical distribution,
/// `scipy.stats.wasserstein_distance` per channel).
///
/// The images may differ in size. Returns `NaN` if the channel counts differ, an image is
/// empty, or a pixel is `NaN`.
pub fn pixel_wasserstein(a: ArrayView3<f32>, b: ArrayView3<f32>) -> f64 {
    per_channel(a, b, w1_sorted)
}

/// Mean over channels of the two-sample KS statistic between the channels' pixel values
/// (`scipy.stats.ks_2samp(...).statistic` per channel, averaged so the result stays in
/// `[0, 1]`).
///
/// Returns `NaN` under the same conditions as [`pixel_wasserstein`].
pub fn pixel_ks(a: ArrayView3<f32>, b: ArrayView3<f32>) -> f64 {
    let channels = a.len_of(Axis(0));
    per_channel(a, b, ks_sorted) / channels as f64
}

/// Sliced 1-Wasserstein distance between the colour distributions of two images: the mean,
/// over `projections` random unit directions `θ` (drawn from a seeded `ChaCha8Rng` as
/// standard normals, Box–Muller, then normalised), of the 1-Wasserstein distance between
/// the projected colours `⟨θ, rgb⟩` of the pixels of `a` and of `b`.
///
/// Unlike [`pixel_wasserstein`], this sees changes in how channels co-vary (a hue swap that
/// keeps every channel histogram). The same `seed` always gives the same directions.
/// Returns `NaN` if `projections` is 0, the channel counts differ, an image is empty, or a
/// pixel is `NaN`.
pub fn sliced_wasserstein(a: ArrayView3<f32>, b: ArrayView3<f32>, projections: usize, seed: u64) -> f64 {
    let channels = a.len_of(Axis(0));
    if projections == 0 || channels == 0 || channels != b.len_of(Axis(0)) {
        return f64::NAN;
    }
    // Channel planes as rows, [C, H*W]; borrowed when the input is contiguous.
    let pa = channels_by_row(a);
    let pb = channels_by_row(b);
    if pa.ncols() == 0 || pb.ncols() == 0 {
        return f64::NAN;
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut theta = vec![0.0f64; channels];
    let mut buf_a = Vec::with_capacity(pa.ncols());
    let mut buf_b = Vec::with_capacity(pb.ncols());
    let mut total = 0.0;
    for _ in 0..projections {
        random_unit_direction(&mut rng, &mut theta);
        project(&pa, &theta, &mut buf_a);
        project(&pb, &theta, &mut buf_b);
        buf_a.sort_unstable_by(f64::total_cmp);
        buf_b.sort_unstable_by(f64::total_cmp);
        total += w1_sorted(&buf_a, &buf_b);
    }
    total / projections as f64
}

/// Distance between two embedding vectors under `metric` (gSMILE compares embeddings with
/// the 1-Wasserstein distance between their components taken as 1-D empirical
/// distributions).
///
/// [`Metric::SlicedWasserstein`] is rejected: it is defined for pixel colours only.
pub fn between_vectors(metric: Metric, u: &[f32], v: &[f32]) -> Result<f64, DistanceError> {
    if u.is_empty() || v.is_empty() {
        return Err(DistanceError::Empty { metric, space: "vector" });
    }
    let d = match metric {
        Metric::Wasserstein => wasserstein_1d(u, v),
        Metric::Ks => ks_statistic(u, v),
        Metric::SlicedWasserstein => return Err(DistanceError::SlicedOnVectors),
        Metric::PatchOt => return Err(DistanceError::NeedsTokens),
        Metric::Cosine => {
            if u.len() != v.len() {
                return Err(DistanceError::LengthMismatch { left: u.len(), right: v.len() });
            }
            cosine_distance(u, v)
        }
    };
    check_defined(metric, d)
}

/// Distance between two `[3, H, W]` images in `[0, 1]` under `metric`:
/// [`pixel_wasserstein`], [`sliced_wasserstein`] with [`SLICED_PROJECTIONS`] directions
/// drawn from `seed`, [`pixel_ks`], or the cosine distance of the flattened images.
pub fn between_images(metric: Metric, a: ArrayView3<f32>, b: ArrayView3<f32>, seed: u64) -> Result<f64, DistanceError> {
    for shape in [a.shape(), b.shape()] {
        if shape.len() != 3 || shape[0] != 3 {
            return Err(DistanceError::NotRgb { metric, shape: shape.to_vec() });
        }
        if shape.contains(&0) {
            return Err(DistanceError::Empty { metric, space: "image" });
        }
    }
    let d = match metric {
        Metric::Wasserstein => pixel_wasserstein(a, b),
        Metric::SlicedWasserstein => sliced_wasserstein(a, b, SLICED_PROJECTIONS, seed),
        Metric::Ks => pixel_ks(a, b),
        Metric::PatchOt => return Err(DistanceError::NeedsTokens),
        Metric::Cosine => {
            if a.shape() != b.shape() {
                return Err(DistanceError::LengthMismatch { left: a.len(), right: b.len() });
            }
            let fa: Vec<f32> = a.iter().copied().collect();
            let fb: Vec<f32> = b.iter().copied().collect();
            cosine_distance(&fa, &fb)
        }
    };
    check_defined(metric, d)
}

fn check_defined(metric: Metric, d: f64) -> Result<f64, DistanceError> {
    if d.is_nan() {
        // Model outputs are checked for NaN as they are read, so a NaN here came from the
        // caller's arrays; cosine is also undefined for an all-zero vector, which the other
        // metrics handle.
        let (reason, fix) = if metric == Metric::Cosine {
            ("an output is all zeros or contains NaN", "use `wasserstein` or `ks`, which are defined for a zero output")
        } else {
            ("an output contains NaN", "check the editor's and encoder's outputs; no metric is defined on NaN")
        };
        Err(DistanceError::Undefined { metric, reason, fix })
    } else {
        Ok(d)
    }
}

/// Applies a sorted-sample statistic to every channel pair and sums the results, reusing two
/// buffers for all channels (the hot path: one sort of H*W values per channel and image).
fn per_channel(a: ArrayView3<f32>, b: ArrayView3<f32>, stat: fn(&[f32], &[f32]) -> f64) -> f64 {
    let channels = a.len_of(Axis(0));
    if channels == 0 || channels != b.len_of(Axis(0)) {
        return f64::NAN;
    }
    let mut buf_a: Vec<f32> = Vec::with_capacity(a.len() / channels);
    let mut buf_b: Vec<f32> = Vec::with_capacity(b.len() / channels);
    let mut total = 0.0;
    for c in 0..channels {
        buf_a.clear();
        buf_b.clear();
        fill(&mut buf_a, a.index_axis(Axis(0), c));
        fill(&mut buf_b, b.index_axis(Axis(0), c));
        buf_a.sort_unstable_by(f32::total_cmp);
        buf_b.sort_unstable_by(f32::total_cmp);
        total += stat(&buf_a, &buf_b);
    }
    total
}

fn fill(buf: &mut Vec<f32>, plane: ArrayView2<f32>) {
    match plane.as_slice() {
        Some(s) => buf.extend_from_slice(s),
        None => buf.extend(plane.iter().copied()),
    }
}

/// `[C, H, W]` → `[C, H*W]`, borrowing when the input is in standard layout.
fn channels_by_row(img: ArrayView3<'_, f32>) -> CowArray<'_, f32, Ix2> {
    let (c, h, w) = img.dim();
    let owned = |img: ArrayView3<'_, f32>| {
        let flat: Vec<f32> = img.iter().copied().collect();
        // The element count is c*h*w by construction, so this cannot fail.
        Array2::from_shape_vec((c, h * w), flat).unwrap_or_else(|_| Array2::zeros((c, 0)))
    };
    if img.is_standard_layout() {
        match img.into_shape_with_order((c, h * w)) {
            Ok(flat) => CowArray::from(flat),
            Err(_) => CowArray::from(owned(img)),
        }
    } else {
        CowArray::from(owned(img))
    }
}

/// Writes `⟨θ, rgb⟩` for every pixel into `out`, one channel plane at a time (contiguous,
/// vectorisable).
fn project(planes: &CowArray<'_, f32, Ix2>, theta: &[f64], out: &mut Vec<f64>) {
    out.clear();
    out.resize(planes.ncols(), 0.0);
    for (plane, &t) in planes.outer_iter().zip(theta) {
        for (o, &x) in out.iter_mut().zip(plane.iter()) {
            *o += t * f64::from(x);
        }
    }
}

/// Draws a uniformly distributed unit vector: standard normals by Box–Muller, normalised.
fn random_unit_direction(rng: &mut ChaCha8Rng, theta: &mut [f64]) {
    loop {
        for t in theta.iter_mut() {
            // u1 in (0, 1] so ln(u1) is finite.
            let u1: f64 = 1.0 - rng.random::<f64>();
            let u2: f64 = rng.random::<f64>();
            *t = (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos();
        }
        let norm = theta.iter().map(|t| t * t).sum::<f64>().sqrt();
        if norm > 1e-12 {
            theta.iter_mut().for_each(|t| *t /= norm);
            return;
        }
    }
}

/// scipy's `_cdf_distance(1, u, v)` on already sorted samples: walks the merged order once,
/// adding `|F_u − F_v| · Δt` between consecutive merged values.
fn w1_sorted<T: Copy + Into<f64>>(u: &[T], v: &[T]) -> f64 {
    let (nu, nv) = (u.len(), v.len());
    if nu == 0 || nv == 0 {
        return f64::NAN;
    }
    let (mut i, mut j) = (0usize, 0usize);
    let first: f64 = u[0].into();
    let mut prev = first.min(v[0].into());
    let mut total = 0.0f64;
    while i < nu || j < nv {
        let take_u = j == nv || (i < nu && u[i].into() <= v[j].into());
        let x: f64 = if take_u { u[i].into() } else { v[j].into() };
        if x.is_nan() {
            return f64::NAN;
        }
        // Before consuming x, i and j count the samples <= prev (ties give Δt = 0).
        // |i/nu − j/nv| = |i·nv − j·nu| / (nu·nv): integer counts, one division at the end.
        total += (i * nv).abs_diff(j * nu) as f64 * (x - prev);
        prev = x;
        if take_u {
            i += 1;
        } else {
            j += 1;
        }
    }
    total / (nu as f64 * nv as f64)
}

/// Two-sided KS statistic on already sorted samples: the largest `|F_u − F_v|` after all
/// samples equal to each distinct value have been counted.
fn ks_sorted(u: &[f32], v: &[f32]) -> f64 {
    let (nu, nv) = (u.len(), v.len());
    if nu == 0 || nv == 0 {
        return f64::NAN;
    }
    let (fu, fv) = (nu as f64, nv as f64);
    let (mut i, mut j) = (0usize, 0usize);
    let mut d = 0.0f64;
    while i < nu || j < nv {
        let x = match (u.get(i), v.get(j)) {
            (Some(&a), Some(&b)) => a.min(b),
            (Some(&a), None) => a,
            (None, Some(&b)) => b,
            (None, None) => break,
        };
        if x.is_nan() {
            return f64::NAN;
        }
        while i < nu && u[i] <= x {
            i += 1;
        }
        while j < nv && v[j] <= x {
            j += 1;
        }
        d = d.max(((i as f64) / fu - (j as f64) / fv).abs());
    }
    d
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array3;

    #[test]
    fn permuting_feature_dimensions_changes_cosine_and_patch_ot_but_not_component_w1() {
        // Sixteen tokens of eight features; the "other image" is the same tokens with their
        // features shuffled (a fixed permutation), which is a different image to any model.
        let tokens = Array2::from_shape_fn((16, 8), |(t, d)| ((t * 7 + d * 3) % 11) as f32 / 11.0 + d as f32 * 0.2);
        let perm = [3, 0, 7, 1, 6, 2, 5, 4];
        let shuffled = Array2::from_shape_fn((16, 8), |(t, d)| tokens[[t, perm[d]]]);
        let pooled = tokens.mean_axis(Axis(0)).unwrap().to_vec();
        let pooled_shuffled = shuffled.mean_axis(Axis(0)).unwrap().to_vec();
        let w1 = between_vectors(Metric::Wasserstein, &pooled, &pooled_shuffled).unwrap();
        let cos = between_vectors(Metric::Cosine, &pooled, &pooled_shuffled).unwrap();
        let ot = patch_ot(tokens.view(), shuffled.view());
        assert!(w1.abs() < 1e-7, "W1 over components is blind to the shuffle: {w1}");
        assert!(cos > 1e-3, "cosine sees it: {cos}");
        assert!(ot > 0.1, "patch-OT sees it: {ot}");
        // Reordering the tokens themselves (patches moved, features intact) is free for patch-OT.
        let reversed = Array2::from_shape_fn((16, 8), |(t, d)| tokens[[15 - t, d]]);
        assert!(patch_ot(tokens.view(), reversed.view()).abs() < 1e-9);
        let err = between_vectors(Metric::PatchOt, &pooled, &pooled).unwrap_err().to_string();
        assert!(err.contains("features encoder"), "{err}");
    }

    #[test]
    fn patch_ot_is_a_distance_on_small_sets() {
        let a = Array2::from_shape_fn((5, 3), |(i, j)| (i * 3 + j) as f32 * 0.1);
        let b = a.mapv(|v| v + 0.5);
        assert_eq!(patch_ot(a.view(), a.view()), 0.0);
        let ab = patch_ot(a.view(), b.view());
        assert!((ab - patch_ot(b.view(), a.view())).abs() < 1e-12, "symmetric");
        // Every token moved by (0.5, 0.5, 0.5): the cost is that shift's length.
        assert!((ab - (0.75f64).sqrt()).abs() < 1e-6, "{ab}");
        assert!(patch_ot(a.view(), Array2::<f32>::zeros((5, 4)).view()).is_nan(), "unequal widths");
        assert!(patch_ot(Array2::<f32>::zeros((0, 3)).view(), a.view()).is_nan(), "an empty set");
    }

    #[test]
    fn mask_cosine_matches_the_cosine_of_the_mask_and_the_all_ones_row() {
        for mask in [vec![true, false, true, true], vec![false, false, true], vec![true; 5]] {
            let u: Vec<f32> = mask.iter().map(|&b| if b { 1.0 } else { 0.0 }).collect();
            let ones = vec![1.0f32; mask.len()];
            assert!((mask_cosine(&mask) - cosine_distance(&u, &ones)).abs() < 1e-7, "{mask:?}");
        }
        assert_eq!(mask_cosine(&[false, false]), 1.0);
    }

    #[test]
    fn w1_of_shifted_samples_is_the_shift() {
        let u = [0.1f32, 0.5, 0.2, 0.9, 0.3];
        let v: Vec<f32> = u.iter().map(|x| x + 2.0).collect();
        assert!((wasserstein_1d(&u, &v) - 2.0).abs() < 1e-6);
        assert_eq!(wasserstein_1d(&u, &u), 0.0);
    }

    #[test]
    fn w1_of_single_points_is_their_gap() {
        assert!((wasserstein_1d(&[-1.0], &[2.5]) - 3.5).abs() < 1e-12);
    }

    #[test]
    fn ks_of_disjoint_samples_is_one() {
        assert_eq!(ks_statistic(&[0.0, 0.1, 0.2], &[5.0, 6.0]), 1.0);
        assert_eq!(ks_statistic(&[1.0, 1.0], &[1.0, 1.0, 1.0]), 0.0);
    }

    #[test]
    fn ks_handles_ties_across_samples() {
        // F_u jumps to 1 at 1; F_v is 1/2 at 1 then 1 at 2.
        assert!((ks_statistic(&[1.0, 1.0], &[1.0, 2.0]) - 0.5).abs() < 1e-12);
    }

    #[test]
    fn cosine_matches_definition() {
        assert!(cosine_distance(&[1.0, 0.0], &[0.0, 1.0]) - 1.0 < 1e-12);
        assert_eq!(cosine_distance(&[1.0, 2.0], &[2.0, 4.0]), 0.0);
        assert_eq!(cosine_distance(&[1.0, 2.0], &[-1.0, -2.0]), 2.0);
        assert!(cosine_distance(&[0.0, 0.0], &[1.0, 1.0]).is_nan());
        assert!(cosine_distance(&[1.0], &[1.0, 2.0]).is_nan());
    }

    #[test]
    fn empty_and_nan_give_nan_not_panic() {
        assert!(wasserstein_1d(&[], &[1.0]).is_nan());
        assert!(ks_statistic(&[1.0], &[]).is_nan());
        assert!(wasserstein_1d(&[f32::NAN, 1.0], &[1.0]).is_nan());
        assert!(ks_statistic(&[f32::NAN, 1.0], &[1.0]).is_nan());
        let e = Array3::<f32>::zeros((3, 0, 0));
        assert!(pixel_wasserstein(e.view(), e.view()).is_nan());
        assert!(sliced_wasserstein(e.view(), e.view(), 4, 0).is_nan());
    }

    fn ramp(shift: f32) -> Array3<f32> {
        Array3::from_shape_fn((3, 4, 5), |(c, h, w)| {
            (c as f32 * 0.1 + h as f32 * 0.05 + w as f32 * 0.01 + shift).clamp(0.0, 1.0)
        })
    }

    #[test]
    fn pixel_distances_of_a_brightness_shift() {
        let a = ramp(0.0);
        let b = ramp(0.2);
        assert!((pixel_wasserstein(a.view(), b.view()) - 0.6).abs() < 1e-5);
        assert_eq!(pixel_wasserstein(a.view(), a.view()), 0.0);
        assert!(pixel_ks(a.view(), b.view()) > 0.0 && pixel_ks(a.view(), b.view()) <= 1.0);
        // A uniform shift s along every channel moves every projection by s·Σθ.
        let sw = sliced_wasserstein(a.view(), b.view(), 16, 7);
        assert!(sw > 0.0 && sw <= 0.2 * 3f64.sqrt() + 1e-6);
        assert_eq!(sw, sliced_wasserstein(a.view(), b.view(), 16, 7));
        assert_eq!(sliced_wasserstein(a.view(), a.view(), 16, 7), 0.0);
    }

    #[test]
    fn sliced_sees_a_channel_swap_that_pixel_w1_misses() {
        let a = ramp(0.0);
        let mut b = a.clone();
        // Swap the colours of two pixels in channel 0 only: per-channel histograms unchanged.
        let t = b[[0, 0, 0]];
        b[[0, 0, 0]] = b[[0, 3, 4]];
        b[[0, 3, 4]] = t;
        assert_eq!(pixel_wasserstein(a.view(), b.view()), 0.0);
        assert!(sliced_wasserstein(a.view(), b.view(), 64, 1) > 0.0);
    }

    #[test]
    fn metric_dispatch_and_errors() {
        let u = [0.1f32, 0.2, 0.3];
        let v = [0.2f32, 0.3, 0.4];
        assert!((between_vectors(Metric::Wasserstein, &u, &v).unwrap() - 0.1).abs() < 1e-6);
        assert_eq!(between_vectors(Metric::SlicedWasserstein, &u, &v), Err(DistanceError::SlicedOnVectors));
        assert!(matches!(
            between_vectors(Metric::Cosine, &u, &v[..2]),
            Err(DistanceError::LengthMismatch { left: 3, right: 2 })
        ));
        assert!(matches!(
            between_vectors(Metric::Cosine, &[0.0, 0.0], &[1.0, 0.0]),
            Err(DistanceError::Undefined { .. })
        ));
        assert!(matches!(between_vectors(Metric::Ks, &[], &v), Err(DistanceError::Empty { .. })));
        let a = ramp(0.0);
        let gray = Array3::<f32>::zeros((1, 4, 5));
        assert!(matches!(
            between_images(Metric::Wasserstein, a.view(), gray.view(), 0),
            Err(DistanceError::NotRgb { .. })
        ));
        for m in [Metric::Wasserstein, Metric::SlicedWasserstein, Metric::Ks, Metric::Cosine] {
            assert_eq!(between_images(m, a.view(), a.view(), 3).unwrap(), 0.0, "{m}");
        }
        let msg = DistanceError::SlicedOnVectors.to_string();
        assert!(msg.contains("only for pixels") && msg.contains("wasserstein"));
    }

    #[test]
    fn metric_serialises_kebab_case() {
        let s = serde_json::to_string(&Metric::SlicedWasserstein).unwrap();
        assert_eq!(s, "\"sliced-wasserstein\"");
        let m: Metric = serde_json::from_str("\"ks\"").unwrap();
        assert_eq!(m, Metric::Ks);
    }
}
