//! Per-word spatial heatmaps computed black-box: where in the image each word causes change.
//!
//! For every sample a change map |output_i − reference| (mean over channels, pooled over
//! square patches) is computed, the reference being the input image by default (where the
//! word makes the editor change the image) or the full instruction's edit; the same weighted linear regression as the word surrogate
//! is then fitted for every pixel at once (one design matrix, one factorisation, many
//! targets). Word k's coefficients over the pixels form its heatmap. Unlike DAAM this needs
//! nothing but the editor's outputs.

use ndarray::{Array1, Array2, Array3, ArrayView1, ArrayView2, ArrayView3, ArrayView4, Axis};
use rayon::prelude::*;

use crate::surrogate::{self, SurrogateError};

/// Mean over channels of |a − b|, averaged over `patch`×`patch` blocks (edge blocks may be smaller).
pub fn change_map(a: ArrayView3<f32>, b: ArrayView3<f32>, patch: usize) -> Array2<f32> {
    let (c, h, w) = a.dim();
    let mut pixel = Array2::<f32>::zeros((h, w));
    for ch in 0..c {
        ndarray::Zip::from(&mut pixel)
            .and(a.index_axis(Axis(0), ch))
            .and(b.index_axis(Axis(0), ch))
            .for_each(|d, &x, &y| *d += (x - y).abs());
    }
    pixel /= c.max(1) as f32;
    pool(pixel, patch)
}

/// `pixel` averaged over `patch`×`patch` blocks (edge blocks may be smaller); unchanged for 1.
pub fn pool(pixel: Array2<f32>, patch: usize) -> Array2<f32> {
    let p = patch.max(1);
    if p == 1 {
        return pixel;
    }
    let (h, w) = pixel.dim();
    let (gh, gw) = (h.div_ceil(p), w.div_ceil(p));
    let mut sum = Array2::<f32>::zeros((gh, gw));
    let mut count = Array2::<f32>::zeros((gh, gw));
    for ((y, x), v) in pixel.indexed_iter() {
        sum[[y / p, x / p]] += v;
        count[[y / p, x / p]] += 1.0;
    }
    sum / count
}

/// Fits the weighted surrogate for every cell of the change maps at once.
///
/// `masks` is n×d (0/1), `maps` n×gh×gw, `weights` n. `sign` is applied to the maps first
/// (−1 with the full-edit reference, so a positive coefficient means the word causes change
/// there). Returns d×gh×gw coefficients.
pub fn word_maps(
    masks: ArrayView2<f64>,
    maps: ArrayView3<f32>,
    weights: ArrayView1<f64>,
    sign: f64,
    ridge_alpha: Option<f64>,
) -> Result<Array3<f32>, SurrogateError> {
    let (n, gh, gw) = maps.dim();
    let ys = Array2::from_shape_fn((n, gh * gw), |(i, j)| sign * f64::from(maps[[i, j / gw, j % gw]]));
    fit_pixels(masks, ys.view(), weights, gh, gw, ridge_alpha)
}

/// Fits every pixel column of `ys` (`N × gh·gw`) on the masks and returns the coefficients as `[D, gh, gw]` maps.
fn fit_pixels(
    masks: ArrayView2<f64>,
    ys: ArrayView2<f64>,
    weights: ArrayView1<f64>,
    gh: usize,
    gw: usize,
    ridge_alpha: Option<f64>,
) -> Result<Array3<f32>, SurrogateError> {
    let (coefs, _) = surrogate::fit_many(masks, ys, weights, ridge_alpha)?;
    let d = coefs.nrows();
    Ok(coefs.mapv(|c| c as f32).into_shape_with_order((d, gh, gw)).expect("coefficients are D × gh·gw"))
}

/// The samples of an explanation as the spatial fit needs them.
#[derive(Debug, Clone, Copy)]
pub struct Samples<'a> {
    /// Edits of the distinct perturbed instructions, `[U,3,H,W]`.
    pub edits: ArrayView4<'a, f32>,
    /// Distinct mask each sample drew ([`crate::perturb::distinct`]).
    pub mask_of_sample: &'a [usize],
    /// Row of `edits` each distinct mask renders to (masks rendering the same text share one).
    pub edit_of_mask: &'a [usize],
    /// The regression design: one 0/1 row per sample, one column per word.
    pub masks: ArrayView2<'a, f64>,
    /// Kernel weight of each sample.
    pub weights: ArrayView1<'a, f64>,
}

/// What a sample's change map measures: where its edit differs from a reference.
#[derive(Debug, Clone, Copy)]
pub enum ChangeMaps<'a> {
    /// Mean over channels of |edit − reference| (`[3,H,W]`), pixel by pixel.
    Pixels(ArrayView3<'a, f32>),
    /// Maps measured elsewhere, one `[H,W]` per edit (e.g. LPIPS's per-pixel distance to the reference).
    Given(ArrayView3<'a, f32>),
}

/// Per-word heatmaps `[d, gh, gw]`: the weighted surrogate fitted on every cell of the
/// change maps pooled over `patch`×`patch` blocks, the maps multiplied by `sign` first (−1
/// with the full-edit reference, so a positive coefficient means the word causes change
/// there). `None` when there are no edits.
pub fn heatmaps(
    samples: Samples<'_>,
    change: ChangeMaps<'_>,
    sign: f64,
    patch: usize,
    ridge_alpha: Option<f64>,
) -> Result<Option<Array3<f32>>, SurrogateError> {
    let Samples { edits, mask_of_sample, edit_of_mask, masks: sample_masks, weights: sample_weights } = samples;
    // Samples with the same mask are identical rows of the regression: weighted least squares
    // is unchanged when they are merged into one row carrying the sum of their weights, which
    // makes the fit scale with the distinct masks, not the samples. (Masks are merged, not
    // edits: two masks that render the same text share an edit but are different rows.)
    let count = edit_of_mask.len();
    if edits.dim().0 == 0 || count == 0 {
        return Ok(None);
    }
    if let ChangeMaps::Given(maps) = change
        && maps.dim().0 != edits.dim().0
    {
        return Err(SurrogateError::LengthMismatch {
            what: "change maps",
            expected: edits.dim().0,
            found: maps.dim().0,
        });
    }
    let mut weights = Array1::<f64>::zeros(count);
    let mut masks = Array2::<f64>::zeros((count, sample_masks.ncols()));
    for (i, &m) in mask_of_sample.iter().enumerate() {
        weights[m] += sample_weights[i];
        masks.row_mut(m).assign(&sample_masks.row(i));
    }
    let map_of = |e: usize| match change {
        ChangeMaps::Pixels(reference) => change_map(edits.index_axis(Axis(0), e), reference, patch),
        ChangeMaps::Given(maps) => pool(maps.index_axis(Axis(0), e).to_owned(), patch),
    };
    let (gh, gw) = map_of(0).dim();
    // One regression target per pixel: row r is its edit's (signed) change map, flattened.
    let mut values = vec![0.0f64; count * gh * gw];
    values.par_chunks_mut(gh * gw).zip(edit_of_mask.par_iter()).for_each(|(row, &e)| {
        let map = map_of(e);
        row.iter_mut().zip(map.iter()).for_each(|(y, &m)| *y = sign * f64::from(m));
    });
    let ys = Array2::from_shape_vec((count, gh * gw), values).expect("edits rows of gh·gw values");
    // Rows are distinct masks here, so an index in a fitting error names one of those, not a sample.
    fit_pixels(masks.view(), ys.view(), weights.view(), gh, gw, ridge_alpha).map(Some)
}

/// Resizes a heatmap to `height`×`width` (bilinear), e.g. from patches to the input image.
pub fn upsample(map: ArrayView2<f32>, height: u32, width: u32) -> Array2<f32> {
    let t = map.insert_axis(Axis(0));
    let rgb = ndarray::concatenate(Axis(0), &[t, t, t]).unwrap_or_else(|_| t.to_owned());
    crate::imaging::resize_tensor(rgb.view(), height, width).index_axis_move(Axis(0), 0)
}

/// Share of a heatmap's positive mass that falls inside `mask` (same shape); 0 when there is none.
pub fn mass_share(heat: ArrayView2<f32>, mask: ArrayView2<bool>) -> f64 {
    let (mut inside, mut total) = (0.0f64, 0.0f64);
    for (h, m) in heat.iter().zip(mask.iter()) {
        let v = f64::from(h.max(0.0));
        total += v;
        if *m {
            inside += v;
        }
    }
    if total > 0.0 { inside / total } else { 0.0 }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::{Array1, array};

    #[test]
    fn change_map_pools_patches() {
        let a = Array3::<f32>::zeros((3, 4, 4));
        let mut b = a.clone();
        b[[0, 0, 0]] = 0.3;
        let m = change_map(a.view(), b.view(), 1);
        assert!((m[[0, 0]] - 0.1).abs() < 1e-7);
        let pooled = change_map(a.view(), b.view(), 2);
        assert_eq!(pooled.dim(), (2, 2));
        assert!((pooled[[0, 0]] - 0.025).abs() < 1e-7);
        assert_eq!(pooled[[1, 1]], 0.0);
    }

    #[test]
    fn word_maps_localise_each_word() {
        // Word 0 changes pixel (0,0), word 1 changes pixel (1,1): with the full reference a
        // sample lacking a word differs from the full edit exactly where that word acts.
        let masks = array![[1.0, 1.0], [0.0, 1.0], [1.0, 0.0], [0.0, 0.0], [1.0, 1.0], [0.0, 1.0]];
        let n = masks.nrows();
        let mut maps = Array3::<f32>::zeros((n, 2, 2));
        for i in 0..n {
            maps[[i, 0, 0]] = (1.0 - masks[[i, 0]]) as f32;
            maps[[i, 1, 1]] = (1.0 - masks[[i, 1]]) as f32;
        }
        let w = Array1::ones(n);
        let heat = word_maps(masks.view(), maps.view(), w.view(), -1.0, None).unwrap();
        assert!((heat[[0, 0, 0]] - 1.0).abs() < 1e-6 && heat[[0, 1, 1]].abs() < 1e-6);
        assert!((heat[[1, 1, 1]] - 1.0).abs() < 1e-6 && heat[[1, 0, 0]].abs() < 1e-6);
    }

    #[test]
    fn mass_share_counts_positive_heat_inside() {
        let heat = array![[1.0f32, -5.0], [3.0, 0.0]];
        let mask = array![[true, true], [false, false]];
        assert!((mass_share(heat.view(), mask.view()) - 0.25).abs() < 1e-12);
    }

    #[test]
    fn upsample_keeps_size_and_constant() {
        let m = Array2::from_elem((4, 4), 0.5f32);
        let u = upsample(m.view(), 16, 12);
        assert_eq!(u.dim(), (16, 12));
        assert!(u.iter().all(|v| (v - 0.5).abs() < 1e-6));
    }
}
