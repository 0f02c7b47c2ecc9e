//! Parity of the explanation methods (`gsmile::method`) with the packages they reproduce:
//! `lime`'s `LimeBase`, `shap.KernelExplainer`, brute-force Shapley and Banzhaf values, and a
//! transcription of the SMILE papers' procedure with POT's exact optimal transport.
//!
//! The reference values come from `tests/fixtures/methods/make_methods.py` (package versions
//! recorded in the JSON).

use std::path::PathBuf;

use gsmile::distance;
use gsmile::method::{Evidence, Method, Settings, SmileTarget, exact, lime, smile_paper};
use gsmile::surrogate::SurrogateConfig;
use ndarray::Array2;
use serde::Deserialize;

#[derive(Deserialize)]
struct LimeCase {
    name: String,
    d: usize,
    masks: Vec<Vec<f64>>,
    labels: Vec<f64>,
    distances: Vec<f64>,
    intercept: f64,
    coefficients: Vec<f64>,
    used_features: Vec<usize>,
}

#[derive(Deserialize)]
struct ShapCase {
    name: String,
    d: usize,
    values: Vec<f64>,
    fx: f64,
    fnull: f64,
    phi: Vec<f64>,
}

#[derive(Deserialize)]
struct ExactCase {
    name: String,
    d: usize,
    values: Vec<f64>,
    shapley: Vec<f64>,
    banzhaf: Vec<f64>,
}

#[derive(Deserialize)]
struct SmileCase {
    name: String,
    masks: Vec<Vec<f64>>,
    w1: Vec<f64>,
    word_vectors: Vec<Vec<f32>>,
    wmd: Vec<f64>,
    weights: Vec<f64>,
    coef_minmax: Vec<f64>,
    intercept_minmax: f64,
    coef_inverse: Vec<f64>,
    intercept_inverse: f64,
}

#[derive(Deserialize)]
struct Fixture {
    lime: Vec<LimeCase>,
    kernel_shap: Vec<ShapCase>,
    exact: Vec<ExactCase>,
    smile_paper: Vec<SmileCase>,
}

fn fixture() -> Fixture {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/methods/methods.json");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e}; regenerate with tests/fixtures/methods/make_methods.py", path.display()));
    serde_json::from_str(&text).expect("methods.json parses")
}

fn matrix(rows: &[Vec<f64>]) -> Array2<f64> {
    Array2::from_shape_fn((rows.len(), rows[0].len()), |(i, j)| rows[i][j])
}

/// Every mask of `d` words as rows, the full one first; row r > 0 is mask b = 2^d − 1 − r.
fn all_masks(d: usize) -> (Array2<f64>, Vec<usize>) {
    let n = 1usize << d;
    let order: Vec<usize> = (0..n).rev().collect();
    let x = Array2::from_shape_fn((n, d), |(r, k)| ((order[r] >> (d - 1 - k)) & 1) as f64);
    (x, order)
}

fn settings() -> Settings {
    Settings {
        surrogate: SurrogateConfig { bootstrap: 0, ..SurrogateConfig::default() },
        kernel_width: 1.0,
        smile_target: SmileTarget::MinMax,
    }
}

fn assert_close(got: &[f64], want: &[f64], tol: f64, what: &str) {
    assert_eq!(got.len(), want.len(), "{what}");
    for (k, (g, w)) in got.iter().zip(want).enumerate() {
        assert!((g - w).abs() <= tol * w.abs().max(1.0), "{what}[{k}]: {g} vs {w}");
    }
}

#[test]
fn lime_equals_lime_base_on_the_same_neighbourhood() {
    for case in fixture().lime {
        let x = matrix(&case.masks);
        let ev = Evidence { masks: x.view(), distances: &case.labels, sign: 1.0, instruction_distances: &[] };
        assert_close(&lime::distances(&ev), &case.distances, 1e-9, &format!("{} distances", case.name));
        let a = Method::Lime.attribute(&ev, &settings()).unwrap();
        assert_close(&a.coefficients, &case.coefficients, 1e-6, &case.name);
        assert!(
            (a.intercept - case.intercept).abs() < 1e-6,
            "{}: intercept {} vs {}",
            case.name,
            a.intercept,
            case.intercept
        );
        let used: Vec<usize> = (0..case.d).filter(|&j| a.selected[j]).collect();
        assert_eq!(used, case.used_features, "{}: auto feature selection", case.name);
    }
}

#[test]
fn kernel_shap_equals_shap_where_both_enumerate_and_is_efficient() {
    for case in fixture().kernel_shap {
        let (x, order) = all_masks(case.d);
        let v: Vec<f64> = order.iter().map(|&b| case.values[b]).collect();
        let ev = Evidence { masks: x.view(), distances: &v, sign: 1.0, instruction_distances: &[] };
        let a = Method::KernelShap.attribute(&ev, &settings()).unwrap();
        assert!(a.exact, "{}: every coalition measured", case.name);
        assert_close(&a.coefficients, &case.phi, 1e-6, &case.name);
        let sum: f64 = a.coefficients.iter().sum();
        assert!(
            (sum - (case.fx - case.fnull)).abs() < 1e-9,
            "{}: efficiency {sum} vs {}",
            case.name,
            case.fx - case.fnull
        );
    }
}

#[test]
fn sampled_kernel_shap_keeps_the_efficiency_constraint() {
    let case = &fixture().kernel_shap[2];
    // The sampler's masks for 40 of the 128 coalitions; the game supplies their values.
    let masks = gsmile::perturb::sample_masks(case.d, 40, gsmile::perturb::Strategy::KernelShap, 9).unwrap();
    let x = Array2::from_shape_fn((masks.len(), case.d), |(i, k)| masks[i][k] as u8 as f64);
    let v: Vec<f64> = masks.iter().map(|m| case.values[m.iter().fold(0, |b, &k| b << 1 | k as usize)]).collect();
    let ev = Evidence { masks: x.view(), distances: &v, sign: 1.0, instruction_distances: &[] };
    let cfg = Settings { surrogate: SurrogateConfig { bootstrap: 50, ..SurrogateConfig::default() }, ..settings() };
    let a = Method::KernelShap.attribute(&ev, &cfg).unwrap();
    assert!(!a.exact);
    assert!((a.coefficients.iter().sum::<f64>() - (case.fx - case.fnull)).abs() < 1e-9);
    assert!(
        a.intervals
            .iter()
            .zip(&a.coefficients)
            .all(|((lo, hi), c)| lo <= hi && (lo - 1e-12..=hi + 1e-12).contains(c) || lo == hi)
    );
    // Close to the exact values it estimates.
    let err: f64 = a.coefficients.iter().zip(&case.phi).map(|(g, w)| (g - w).abs()).sum::<f64>();
    let scale: f64 = case.phi.iter().map(|p| p.abs()).sum();
    assert!(err < 0.5 * scale, "sampled Kernel SHAP far from exact: {err} vs {scale}");
}

#[test]
fn exact_values_equal_brute_force_and_shapley_is_efficient() {
    for case in fixture().exact {
        assert_close(&exact::values(&case.values, case.d, exact::Value::Shapley), &case.shapley, 1e-9, &case.name);
        assert_close(&exact::values(&case.values, case.d, exact::Value::Banzhaf), &case.banzhaf, 1e-9, &case.name);
        let (x, order) = all_masks(case.d);
        let v: Vec<f64> = order.iter().map(|&b| case.values[b]).collect();
        let ev = Evidence { masks: x.view(), distances: &v, sign: 1.0, instruction_distances: &[] };
        let a = Method::Exact.attribute(&ev, &settings()).unwrap();
        let full = case.values[(1 << case.d) - 1] - case.values[0];
        assert!((a.coefficients.iter().sum::<f64>() - full).abs() < 1e-9, "{}", case.name);
        // Missing masks are refused, not guessed.
        let partial = x.slice(ndarray::s![..x.nrows() - 1, ..]).to_owned();
        let ev =
            Evidence { masks: partial.view(), distances: &v[..v.len() - 1], sign: 1.0, instruction_distances: &[] };
        assert!(Method::Exact.attribute(&ev, &settings()).is_err());
    }
}

#[test]
fn smile_paper_equals_its_transcription_with_exact_word_movers() {
    for case in fixture().smile_paper {
        let kept: Vec<Vec<bool>> = case.masks.iter().map(|r| r.iter().map(|&v| v > 0.5).collect()).collect();
        let wmd: Vec<f64> = kept.iter().map(|m| distance::word_movers(&case.word_vectors, m)).collect();
        assert_close(&wmd, &case.wmd, 1e-6, &format!("{} word mover's distance vs ot.emd2", case.name));
        let weights: Vec<f64> = wmd.iter().map(|&d| smile_paper::weight(d)).collect();
        assert_close(&weights, &case.weights, 1e-6, &format!("{} weights", case.name));
        let x = matrix(&case.masks);
        let ev = Evidence { masks: x.view(), distances: &case.w1, sign: -1.0, instruction_distances: &wmd };
        let a = Method::SmilePaper.attribute(&ev, &settings()).unwrap();
        assert_close(&a.coefficients, &case.coef_minmax, 1e-6, &format!("{} min-max", case.name));
        assert!((a.intercept - case.intercept_minmax).abs() < 1e-6);
        let inverse = Settings { smile_target: SmileTarget::Inverse, ..settings() };
        let a = Method::SmilePaper.attribute(&ev, &inverse).unwrap();
        assert_close(&a.coefficients, &case.coef_inverse, 1e-6, &format!("{} inverse", case.name));
        assert!((a.intercept - case.intercept_inverse).abs() <= 1e-6 * case.intercept_inverse.abs());
    }
}

#[test]
fn the_w1_p_value_separates_different_distributions_from_equal_ones() {
    let a: Vec<f32> = (0..64).map(|i| (i as f32 * 0.37).sin()).collect();
    let shifted: Vec<f32> = a.iter().map(|v| v + 1.5).collect();
    let shuffled: Vec<f32> = a.iter().rev().copied().collect();
    assert!(distance::wasserstein_p_value(&a, &shifted, smile_paper::P_VALUE_RESAMPLES, 1) < 0.01);
    assert!(distance::wasserstein_p_value(&a, &shuffled, smile_paper::P_VALUE_RESAMPLES, 1) > 0.5);
}
