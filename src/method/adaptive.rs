//! The adaptive budget (`--samples auto`): masks are drawn in rounds of growing budget, and
//! drawing stops once the leading words are settled: when the bootstrap probability that the
//! set of the [`TOP`] largest attributions changes falls below [`THRESHOLD`] (`settled`), when
//! two rounds in a row name the same leading words (`agreed`: the rounds' masks are nested,
//! so the later one confirms the earlier on more evidence), or when the budget
//! (`--max-samples`) or the masks run out.
//!
//! Rounds grow by half each time from `d + 2` calls (the full and the empty instruction and
//! every single removal: the first level of [`Strategy::Levels`](crate::perturb::Strategy::Levels)).
//! Samplers whose masks for a larger budget include those of a smaller one (removal levels
//! do) make each round pay only for its new masks; the cache serves the rest.

use std::collections::BTreeSet;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

use super::{Evidence, Method, Settings};
use crate::surrogate::SurrogateConfig;

/// Leading words watched (fewer for shorter instructions).
pub const TOP: usize = 2;
/// Stop once the leading words change in fewer than this share of bootstrap replicates.
pub const THRESHOLD: f64 = 0.05;
/// Bootstrap replicates of the stopping rule.
pub const RESAMPLES: usize = 200;

/// The budgets of the rounds for `d` words and at most `max` calls.
pub fn rounds(d: usize, max: usize) -> Vec<usize> {
    let total = crate::perturb::mask_count(d);
    let cap = (max as u64).min(total) as usize;
    let mut out = Vec::new();
    let mut b = (d + 2).min(cap).max(2);
    loop {
        out.push(b);
        if b >= cap {
            break;
        }
        b = (b + b.div_ceil(2)).min(cap);
    }
    out
}

/// Indices of the `k` largest |values| (ties: lower index first).
pub fn top_set(values: &[f64], k: usize) -> BTreeSet<usize> {
    let mut order: Vec<usize> = (0..values.len()).collect();
    order.sort_by(|&a, &b| values[b].abs().total_cmp(&values[a].abs()).then(a.cmp(&b)));
    order.into_iter().take(k).collect()
}

/// Bootstrap probability that the set of the `k` largest attributions differs from the
/// estimate's: rows resampled with replacement ([`RESAMPLES`] replicates, seeded by the
/// settings' seed), the method refitted on each without its own bootstrap. 0 for exact methods.
pub fn change_probability(method: Method, ev: &Evidence<'_>, settings: &Settings, k: usize) -> f64 {
    let quiet =
        Settings { surrogate: SurrogateConfig { bootstrap: 0, ..settings.surrogate.clone() }, ..settings.clone() };
    let Ok(point) = method.attribute(ev, &quiet) else { return 1.0 };
    if point.exact {
        return 0.0;
    }
    let reference = top_set(&point.coefficients, k);
    let n = ev.masks.nrows();
    let changed: Vec<bool> = (0..RESAMPLES)
        .into_par_iter()
        .map(|b| {
            let mut rng = ChaCha8Rng::seed_from_u64(settings.surrogate.seed ^ 0x5eed_ad17 ^ b as u64);
            // Row 0 (the full instruction) and the empty one anchor every method; keep them.
            let mut rows: Vec<usize> = (0..n).filter(|&i| is_anchor(ev, i)).collect();
            rows.extend((0..n).map(|_| rng.random_range(0..n)));
            let masks = ev.masks.select(ndarray::Axis(0), &rows);
            let distances: Vec<f64> = rows.iter().map(|&i| ev.distances[i]).collect();
            let instruction: Vec<f64> = if ev.instruction_distances.is_empty() {
                Vec::new()
            } else {
                rows.iter().map(|&i| ev.instruction_distances[i]).collect()
            };
            let resampled = Evidence {
                masks: masks.view(),
                distances: &distances,
                sign: ev.sign,
                instruction_distances: &instruction,
            };
            match method.attribute(&resampled, &quiet) {
                Ok(a) => top_set(&a.coefficients, k) != reference,
                Err(_) => true,
            }
        })
        .collect();
    changed.iter().filter(|&&c| c).count() as f64 / RESAMPLES as f64
}

fn is_anchor(ev: &Evidence<'_>, i: usize) -> bool {
    let row = ev.masks.row(i);
    i == 0 || row.iter().all(|&v| v < 0.5)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounds_grow_from_the_first_level_to_the_budget() {
        assert_eq!(rounds(5, 64), [7, 11, 17, 26, 32]);
        assert_eq!(rounds(10, 30), [12, 18, 27, 30]);
        assert_eq!(rounds(1, 64), [2]);
    }
}
