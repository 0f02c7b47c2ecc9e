//! Parity of `gsmile::metrics` and `gsmile::stats` with scipy, scikit-learn and numpy.
//!
//! The reference values come from `tests/fixtures/metrics/make_metrics.py` (numpy, scipy and
//! scikit-learn versions pinned there and recorded in `cases.json`).

use std::path::PathBuf;

use gsmile::{metrics, stats};
use serde::Deserialize;

/// Tolerance for the closed-form metrics.
const TOL: f64 = 1e-9;
/// Tolerance for the Wilcoxon p-value (the normal CDF is an erfc approximation).
const TOL_WILCOXON: f64 = 1e-6;

#[derive(Deserialize)]
struct Versions {
    numpy: String,
    scipy: String,
    sklearn: String,
}

#[derive(Deserialize)]
struct RocCase {
    name: String,
    scores: Vec<f64>,
    labels: Vec<bool>,
    auc: f64,
}

#[derive(Deserialize)]
struct PairCase {
    name: String,
    a: Vec<f64>,
    b: Vec<f64>,
    value: f64,
}

#[derive(Deserialize)]
struct WeightedCase {
    name: String,
    y: Vec<f64>,
    pred: Vec<f64>,
    w: Vec<f64>,
    r2: f64,
    mse: f64,
    r2_unweighted: f64,
    mse_unweighted: f64,
}

#[derive(Deserialize)]
struct WilcoxonCase {
    name: String,
    a: Vec<f64>,
    b: Vec<f64>,
    n_zero: usize,
    p: f64,
}

#[derive(Deserialize)]
struct TrapezoidCase {
    name: String,
    values: Vec<f64>,
    auc: f64,
}

#[derive(Deserialize)]
struct NormCase {
    z: f64,
    sf: f64,
}

#[derive(Deserialize)]
struct Cases {
    versions: Versions,
    roc_auc: Vec<RocCase>,
    kendall_tau: Vec<PairCase>,
    spearman: Vec<PairCase>,
    weighted: Vec<WeightedCase>,
    wilcoxon: Vec<WilcoxonCase>,
    trapezoid: Vec<TrapezoidCase>,
    norm_sf: Vec<NormCase>,
}

fn cases() -> Cases {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/metrics/cases.json");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e}; regenerate with tests/fixtures/metrics/make_metrics.py", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Absolute tolerance for values up to 1, relative beyond.
fn check(name: &str, what: &str, got: f64, want: f64, tol: f64) {
    assert!(
        (got - want).abs() <= tol * want.abs().max(1.0),
        "{name}: {what} = {got}, reference {want} (diff {:e})",
        (got - want).abs()
    );
}

#[test]
fn fixture_has_enough_cases() {
    let c = cases();
    assert!(!c.versions.numpy.is_empty() && !c.versions.scipy.is_empty() && !c.versions.sklearn.is_empty());
    for (what, n) in [
        ("roc_auc", c.roc_auc.len()),
        ("kendall_tau", c.kendall_tau.len()),
        ("spearman", c.spearman.len()),
        ("weighted", c.weighted.len()),
        ("wilcoxon", c.wilcoxon.len()),
        ("trapezoid", c.trapezoid.len()),
    ] {
        assert!(n >= 8, "{what}: only {n} cases");
    }
    assert!(c.wilcoxon.iter().any(|w| w.n_zero > 0), "no Wilcoxon case with zero differences");
    assert!(c.wilcoxon.iter().all(|w| (20..=60).contains(&w.a.len())));
}

#[test]
fn roc_auc_matches_sklearn() {
    for c in cases().roc_auc {
        let got = metrics::roc_auc(&c.scores, &c.labels).unwrap();
        check(&c.name, "roc_auc", got, c.auc, TOL);
    }
}

#[test]
fn kendall_tau_matches_scipy() {
    for c in cases().kendall_tau {
        let got = metrics::kendall_tau(&c.a, &c.b).unwrap();
        check(&c.name, "kendall_tau", got, c.value, TOL);
    }
}

#[test]
fn spearman_matches_scipy() {
    for c in cases().spearman {
        let got = metrics::spearman(&c.a, &c.b).unwrap();
        check(&c.name, "spearman", got, c.value, TOL);
    }
}

#[test]
fn weighted_r2_and_mse_match_sklearn() {
    for c in cases().weighted {
        check(&c.name, "weighted_r2", metrics::weighted_r2(&c.y, &c.pred, &c.w).unwrap(), c.r2, TOL);
        check(&c.name, "weighted_mse", metrics::weighted_mse(&c.y, &c.pred, &c.w).unwrap(), c.mse, TOL);
        let (r2, mse) = metrics::held_out_fidelity(&c.y, &c.pred).unwrap();
        check(&c.name, "held_out r2", r2, c.r2_unweighted, TOL);
        check(&c.name, "held_out mse", mse, c.mse_unweighted, TOL);
    }
}

#[test]
fn wilcoxon_matches_scipy_asymptotic() {
    for c in cases().wilcoxon {
        let got = stats::wilcoxon_signed_rank_p(&c.a, &c.b).unwrap();
        check(&c.name, "wilcoxon p", got, c.p, TOL_WILCOXON);
        // The test is symmetric in its arguments.
        let swapped = stats::wilcoxon_signed_rank_p(&c.b, &c.a).unwrap();
        check(&c.name, "wilcoxon p (swapped)", swapped, c.p, TOL_WILCOXON);
    }
}

#[test]
fn trapezoid_matches_numpy() {
    for c in cases().trapezoid {
        check(&c.name, "auc_trapezoid", metrics::auc_trapezoid(&c.values), c.auc, TOL);
    }
}

#[test]
fn normal_sf_matches_scipy() {
    for c in cases().norm_sf {
        let got = stats::normal_sf(c.z);
        // erfcc's fractional error is below 1.2e-7, so check relatively as well as absolutely.
        assert!(
            (got - c.sf).abs() <= 1e-7 && (got - c.sf).abs() <= 2e-7 * c.sf,
            "norm.sf({}) = {}, got {got}",
            c.z,
            c.sf
        );
    }
}
