//! `exact` and `banzhaf`: the game's Shapley or Banzhaf values by their definitions, from all
//! 2^d masks; the references sampled methods are judged against.
//!
//! With `v(S)` the target of the mask keeping `S`, word `i` gets
//! `Σ_{S ⊆ N∖i} p(S) (v(S ∪ i) − v(S))` with `p(S) = |S|!(d−|S|−1)!/d!` (Shapley, which sums
//! to `v(N) − v(∅)`) or `p(S) = 2^{−(d−1)}` (Banzhaf). Exact values carry no sampling error,
//! so their intervals are the values themselves and they have no p-values.

use std::collections::HashMap;

use super::{Attribution, Evidence};
use crate::perturb::binomial;
use crate::surrogate::SurrogateError;
use crate::surrogate::weighted_r2_mse;

/// Which game value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Value {
    /// Shapley values.
    Shapley,
    /// Banzhaf values.
    Banzhaf,
}

/// Bitset of a mask row, word 0 in the most significant of `d` bits.
fn bits(row: ndarray::ArrayView1<f64>) -> u64 {
    row.iter().fold(0u64, |acc, &v| acc << 1 | (v > 0.5) as u64)
}

/// Game values of every word from the targets of all `2^d` masks (`v[b]`, word `k` is bit `d − 1 − k`).
pub fn values(v: &[f64], d: usize, value: Value) -> Vec<f64> {
    let n = 1usize << d;
    // Shapley weight of a coalition of size s not containing i: 1 / (d · C(d−1, s)).
    let weight: Vec<f64> = (0..d)
        .map(|s| match value {
            Value::Shapley => 1.0 / (d as f64 * binomial(d - 1, s)),
            Value::Banzhaf => 0.5f64.powi(d as i32 - 1),
        })
        .collect();
    (0..d)
        .map(|i| {
            let bit = 1usize << (d - 1 - i);
            (0..n).filter(|b| b & bit == 0).map(|b| weight[b.count_ones() as usize] * (v[b | bit] - v[b])).sum()
        })
        .collect()
}

/// Exact values from samples that cover every mask; an error names the budget needed otherwise.
pub fn attribute(ev: &Evidence<'_>, value: Value) -> Result<Attribution, SurrogateError> {
    let d = ev.masks.ncols();
    let y = ev.targets();
    let mut by_mask: HashMap<u64, f64> = HashMap::new();
    for (row, &t) in ev.masks.outer_iter().zip(&y) {
        by_mask.insert(bits(row), t);
    }
    let n = 1usize << d;
    let v: Option<Vec<f64>> = (0..n as u64).map(|b| by_mask.get(&b).copied()).collect();
    let v = v.ok_or_else(|| SurrogateError::Solver {
        solver: "exact",
        message: format!("exact values need all 2^{d} = {n} masks, got {}", by_mask.len()),
    })?;
    let phi = values(&v, d, value);
    let fnull = v[0];
    let predictions: Vec<f64> =
        ev.masks.outer_iter().map(|r| fnull + r.iter().zip(&phi).map(|(a, b)| a * b).sum::<f64>()).collect();
    let w = vec![1.0; y.len()];
    let (r2, mse) = weighted_r2_mse(y.as_slice().into(), &predictions, w.as_slice().into());
    Ok(Attribution {
        intervals: phi.iter().map(|&p| (p, p)).collect(),
        p_values: vec![f64::NAN; d],
        selected: vec![true; d],
        coefficients: phi,
        intercept: fnull,
        predictions,
        targets: y,
        weights: w,
        r2,
        mse,
        exact: true,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_additive_game_gives_every_word_its_own_effect() {
        // v(S) = 1·[0 ∈ S] + 2·[1 ∈ S] + 4·[2 ∈ S]: both values are the effects.
        let v: Vec<f64> =
            (0..8).map(|b: usize| ((b >> 2) & 1) as f64 + 2.0 * ((b >> 1) & 1) as f64 + 4.0 * (b & 1) as f64).collect();
        assert_eq!(values(&v, 3, Value::Shapley), [1.0, 2.0, 4.0]);
        assert_eq!(values(&v, 3, Value::Banzhaf), [1.0, 2.0, 4.0]);
    }

    #[test]
    fn a_pure_interaction_is_split_by_shapley_and_halved_by_banzhaf() {
        // v = 1 only when both words are kept.
        let v = [0.0, 0.0, 0.0, 1.0];
        assert_eq!(values(&v, 2, Value::Shapley), [0.5, 0.5]);
        assert_eq!(values(&v, 2, Value::Banzhaf), [0.5, 0.5]);
        let v3 = [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0];
        let s = values(&v3, 3, Value::Shapley);
        assert!(s.iter().all(|x| (x - 1.0 / 3.0).abs() < 1e-12));
        assert_eq!(values(&v3, 3, Value::Banzhaf), [0.25; 3]);
    }
}
