//! Parity of `gsmile::distance` and `gsmile::surrogate` with scipy and scikit-learn.
//!
//! The reference values come from `tests/fixtures/stats/make_stats.py` (numpy, scipy and
//! scikit-learn versions pinned there and recorded in the JSON files).

use std::path::PathBuf;

use gsmile::distance::{self, Metric};
use gsmile::surrogate::{self, SurrogateConfig};
use ndarray::{Array1, Array2, Array3};
use serde::Deserialize;

const TOL: f64 = 1e-6;

fn fixture(name: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/stats").join(name);
    std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e}; regenerate with tests/fixtures/stats/make_stats.py", path.display()))
}

/// Absolute tolerance for values up to 1, relative beyond.
fn close(got: f64, want: f64) -> bool {
    (got - want).abs() <= TOL * want.abs().max(1.0)
}

#[derive(Deserialize)]
struct DistanceCase {
    name: String,
    u: Vec<f32>,
    v: Vec<f32>,
    wasserstein: f64,
    ks: f64,
    cosine: Option<f64>,
}

#[derive(Deserialize)]
struct ImagePair {
    shape: [usize; 3],
    a: Vec<f32>,
    b: Vec<f32>,
    per_channel_wasserstein: Vec<f64>,
    pixel_wasserstein: f64,
}

#[derive(Deserialize)]
struct Distances {
    cases: Vec<DistanceCase>,
    image: ImagePair,
}

#[derive(Deserialize)]
struct RegressionCase {
    name: String,
    x: Vec<Vec<f64>>,
    y: Vec<f64>,
    w: Vec<f64>,
    alpha: f64,
    ols_coef: Vec<f64>,
    ols_intercept: f64,
    ridge_coef: Vec<f64>,
    ridge_intercept: f64,
    r2: f64,
    mse: f64,
}

#[derive(Deserialize)]
struct Regression {
    cases: Vec<RegressionCase>,
}

fn distances() -> Distances {
    serde_json::from_str(&fixture("distances.json")).expect("distances.json parses")
}

fn regression() -> Regression {
    serde_json::from_str(&fixture("regression.json")).expect("regression.json parses")
}

#[test]
fn wasserstein_matches_scipy() {
    let d = distances();
    assert!(d.cases.len() >= 12);
    for c in &d.cases {
        let got = distance::wasserstein_1d(&c.u, &c.v);
        assert!(close(got, c.wasserstein), "{}: {got} vs scipy {}", c.name, c.wasserstein);
        let swapped = distance::wasserstein_1d(&c.v, &c.u);
        assert!(close(swapped, c.wasserstein), "{}: not symmetric", c.name);
        let via_metric = distance::between_vectors(Metric::Wasserstein, &c.u, &c.v).unwrap();
        assert_eq!(via_metric, got, "{}", c.name);
    }
}

#[test]
fn ks_matches_scipy() {
    for c in &distances().cases {
        let got = distance::ks_statistic(&c.u, &c.v);
        assert!(close(got, c.ks), "{}: {got} vs scipy {}", c.name, c.ks);
        assert_eq!(distance::between_vectors(Metric::Ks, &c.u, &c.v).unwrap(), got);
    }
}

#[test]
fn cosine_matches_scipy() {
    let mut checked = 0;
    for c in &distances().cases {
        let got = distance::cosine_distance(&c.u, &c.v);
        match c.cosine {
            Some(want) => {
                assert!(close(got, want), "{}: {got} vs scipy {want}", c.name);
                checked += 1;
            }
            None => assert!(
                distance::between_vectors(Metric::Cosine, &c.u, &c.v).is_err(),
                "{}: cosine should be rejected",
                c.name
            ),
        }
    }
    assert!(checked >= 8);
}

#[test]
fn pixel_wasserstein_is_the_sum_of_scipy_channel_distances() {
    let img = distances().image;
    let a = Array3::from_shape_vec(img.shape, img.a).unwrap();
    let b = Array3::from_shape_vec(img.shape, img.b).unwrap();
    let sum: f64 = img.per_channel_wasserstein.iter().sum();
    assert!(close(sum, img.pixel_wasserstein));
    let got = distance::pixel_wasserstein(a.view(), b.view());
    assert!(close(got, img.pixel_wasserstein), "{got} vs scipy {}", img.pixel_wasserstein);
    let via_metric = distance::between_images(Metric::Wasserstein, a.view(), b.view(), 0).unwrap();
    assert_eq!(via_metric, got);
    // Same answer on a non-contiguous (transposed H/W) view of the same pixels.
    let at = a.view().permuted_axes([0, 2, 1]);
    let bt = b.view().permuted_axes([0, 2, 1]);
    assert!(close(distance::pixel_wasserstein(at, bt), img.pixel_wasserstein));
}

fn regression_inputs(c: &RegressionCase) -> (Array2<f64>, Array1<f64>, Array1<f64>) {
    let d = c.x[0].len();
    let flat: Vec<f64> = c.x.iter().flatten().copied().collect();
    let x = Array2::from_shape_vec((c.x.len(), d), flat).unwrap();
    (x, Array1::from(c.y.clone()), Array1::from(c.w.clone()))
}

fn assert_coefs(name: &str, what: &str, got: &[f64], want: &[f64]) {
    assert_eq!(got.len(), want.len());
    for (k, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(close(*g, *w), "{name} {what}[{k}]: {g} vs sklearn {w}");
    }
}

#[test]
fn ols_matches_sklearn_linear_regression() {
    let r = regression();
    assert!(r.cases.len() >= 6);
    for c in &r.cases {
        let (x, y, w) = regression_inputs(c);
        let cfg = SurrogateConfig { bootstrap: 0, ..Default::default() };
        let s = surrogate::fit(x.view(), y.view(), w.view(), &cfg).unwrap();
        assert_coefs(&c.name, "ols coef", &s.coefficients, &c.ols_coef);
        assert!(close(s.intercept, c.ols_intercept), "{} intercept", c.name);
        assert!(close(s.r2, c.r2), "{} r2 {} vs {}", c.name, s.r2, c.r2);
        assert!(close(s.mse, c.mse), "{} mse {} vs {}", c.name, s.mse, c.mse);
    }
}

#[test]
fn ridge_matches_sklearn_ridge() {
    for c in &regression().cases {
        let (x, y, w) = regression_inputs(c);
        let cfg = SurrogateConfig { ridge_alpha: Some(c.alpha), bootstrap: 0, ..Default::default() };
        let s = surrogate::fit(x.view(), y.view(), w.view(), &cfg).unwrap();
        assert_coefs(&c.name, "ridge coef", &s.coefficients, &c.ridge_coef);
        assert!(close(s.intercept, c.ridge_intercept), "{} ridge intercept", c.name);
    }
}

#[test]
fn fit_many_matches_sklearn_on_every_case() {
    for c in &regression().cases {
        let (x, y, w) = regression_inputs(c);
        // Two targets: y and 2y − 1, so the second column's answer is known too.
        let ys = ndarray::stack![ndarray::Axis(1), y, y.mapv(|v| 2.0 * v - 1.0)];
        for (alpha, coef, icpt) in
            [(None, &c.ols_coef, c.ols_intercept), (Some(c.alpha), &c.ridge_coef, c.ridge_intercept)]
        {
            let (b, b0) = surrogate::fit_many(x.view(), ys.view(), w.view(), alpha).unwrap();
            assert_coefs(&c.name, "fit_many coef", &b.column(0).to_vec(), coef);
            assert!(close(b0[0], icpt), "{} fit_many intercept", c.name);
            let doubled: Vec<f64> = coef.iter().map(|v| 2.0 * v).collect();
            assert_coefs(&c.name, "fit_many coef (2y-1)", &b.column(1).to_vec(), &doubled);
            assert!(close(b0[1], 2.0 * icpt - 1.0), "{} fit_many intercept (2y-1)", c.name);
        }
    }
}

#[derive(Deserialize)]
struct OtCase {
    a: Vec<Vec<f32>>,
    b: Vec<Vec<f32>>,
    exact: f64,
    sinkhorn: f64,
}

#[derive(Deserialize)]
struct OtCases {
    epsilon: f64,
    cases: Vec<OtCase>,
}

fn matrix(rows: &[Vec<f32>]) -> Array2<f32> {
    Array2::from_shape_fn((rows.len(), rows[0].len()), |(i, j)| rows[i][j])
}

#[test]
fn patch_ot_matches_pot_exactly_for_small_sets_and_sinkhorn_beyond() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/patch_ot/cases.json");
    let cases: OtCases = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    assert_eq!(cases.epsilon, distance::SINKHORN_EPSILON, "the fixture's ε is gsmile's");
    let mut report = String::new();
    for c in &cases.cases {
        let (a, b) = (matrix(&c.a), matrix(&c.b));
        let got = distance::patch_ot(a.view(), b.view());
        let sink = distance::sinkhorn_ot(a.view(), b.view());
        report += &format!(
            "{}x{}: exact {} pot {} | sinkhorn {} pot {}\n",
            a.nrows(),
            b.nrows(),
            got,
            c.exact,
            sink,
            c.sinkhorn
        );
        if a.nrows() == b.nrows() && a.nrows() <= distance::PATCH_OT_EXACT_MAX {
            assert!((got - c.exact).abs() <= 1e-9 * c.exact.max(1.0), "{report}");
        } else {
            assert!((sink - c.sinkhorn).abs() <= 1e-4 * c.sinkhorn, "{report}");
            assert_eq!(got, sink, "large or unequal sets take Sinkhorn");
            assert!(got >= c.exact && got <= 1.03 * c.exact, "Sinkhorn within 3 % above the exact cost\n{report}");
        }
    }
    println!("{report}");
}
