//! Perturbation: the instruction's words, binary masks over them, and the perturbed
//! instructions those masks render to (gSMILE step 1).
//!
//! A feature is a word position, so a repeated word is two features. Masks keep a word
//! where they hold `true`. Sample 0 is always the full instruction.

use rand::Rng;
use rand::SeedableRng;
use rand::seq::index;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use unicode_segmentation::UnicodeSegmentation;

/// Perturbation settings that cannot work.
#[derive(Debug, thiserror::Error)]
pub enum PerturbError {
    /// The instruction has no words to attribute.
    #[error("instruction {0:?} has no words. Fix: pass an instruction such as \"make the car red\"")]
    NoWords(String),
    /// Exhaustive sampling asked for more masks than allowed.
    #[error(
        "exhaustive sampling of {words} words needs 2^{words} = {needed} samples but `samples` is {samples}. Fix: raise `samples` to {needed} or use a sampling method"
    )]
    TooManyForExhaustive {
        /// Number of words.
        words: usize,
        /// 2^words.
        needed: u64,
        /// The sample budget.
        samples: usize,
    },
    /// The masks are too few to fit one attribution per word.
    #[error(
        "{distinct} distinct samples cannot fit {words} words: a linear fit needs at least words + 1 = {need}. Fix: raise `samples` to {need} or more (with `auto`, its maximum), or use `method = exact` for short instructions",
        need = words + 1
    )]
    TooFewDistinct {
        /// Distinct masks drawn.
        distinct: usize,
        /// Number of words.
        words: usize,
    },
    /// Fewer than two samples cannot fit a surrogate.
    #[error("`samples` must be at least 2 (got {0})")]
    TooFewSamples(usize),
}

/// One word of the instruction with its byte span in the original text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Word {
    /// Position among the words, from 0.
    pub index: usize,
    /// The word as written.
    pub text: String,
    /// Byte offset of its first byte in the instruction.
    pub start: usize,
    /// Byte offset one past its last byte.
    pub end: usize,
}

/// Splits an instruction into words by Unicode word boundaries (UAX #29); punctuation and
/// spaces are not features but stay in perturbed renderings.
///
/// ```
/// let words = gsmile::perturb::split_words("please, make the car red!");
/// let texts: Vec<&str> = words.iter().map(|w| w.text.as_str()).collect();
/// assert_eq!(texts, ["please", "make", "the", "car", "red"]);
/// assert_eq!((words[3].start, words[3].end), (17, 20));
/// ```
pub fn split_words(instruction: &str) -> Vec<Word> {
    instruction
        .unicode_word_indices()
        .enumerate()
        .map(|(index, (start, text))| Word { index, text: text.to_string(), start, end: start + text.len() })
        .collect()
}

/// How masks over the words are drawn. Every strategy spends `samples` editor calls: it
/// draws until it holds that many distinct masks (or every mask there is), the full
/// instruction first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Strategy {
    /// Removal levels, closest first (gsmile's default): the full instruction, the empty one,
    /// every mask with one word removed, then two, …; the level the budget cannot finish is
    /// drawn uniformly without replacement. Deterministic whenever the budget ends on a level.
    #[default]
    Levels,
    /// LIME's text sampler: remove k words, k uniform in 1..=d, the words chosen uniformly.
    /// Rows repeat (each repeat is a regression row, as in LIME) until `samples` masks are distinct.
    Lime,
    /// `shap.KernelExplainer`'s sampler: the full and the empty instruction, every coalition
    /// of the sizes the budget covers (1 and d−1 first, paired), the rest drawn in
    /// complementary pairs with sizes by the Shapley kernel; a redrawn mask adds a row.
    KernelShap,
    /// SMILE's sampler: each word kept with probability ½, distinct masks with at least two
    /// words kept.
    Half,
    /// Every one of the 2^d masks once (needs samples ≥ 2^d).
    Exhaustive,
}

/// Number of masks over `words` words (2^words), saturating at `u64::MAX`.
pub fn mask_count(words: usize) -> u64 {
    1u64.checked_shl(words as u32).filter(|_| words < 63).unwrap_or(u64::MAX)
}

/// Draws masks over `words` words for a budget of `samples` distinct masks (editor calls);
/// row 0 is the full instruction. Rows may repeat where the strategy says so; callers edit
/// each distinct mask once ([`distinct`]) and keep every row in the regression.
///
/// Deterministic for a given `seed` (ChaCha8).
pub fn sample_masks(
    words: usize,
    samples: usize,
    strategy: Strategy,
    seed: u64,
) -> Result<Vec<Vec<bool>>, PerturbError> {
    if samples < 2 {
        return Err(PerturbError::TooFewSamples(samples));
    }
    let d = words;
    let total = mask_count(d);
    let budget = (samples as u64).min(total) as usize;
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut rows = Rows::new(d);
    match strategy {
        Strategy::Exhaustive => {
            if total > samples as u64 {
                return Err(PerturbError::TooManyForExhaustive { words: d, needed: total, samples });
            }
            // Full mask first, then the others in binary order.
            for bits in (0..total - 1).rev() {
                rows.add((0..d).map(|k| bits >> (d - 1 - k) & 1 == 1).collect());
            }
        }
        Strategy::Levels => {
            rows.add(vec![false; d]);
            for removed in 1..d {
                let left = budget.saturating_sub(rows.distinct());
                if left == 0 {
                    break;
                }
                let level = combinations(d, removed);
                // A prefix of one seeded order of the level: a larger budget keeps every mask
                // of a smaller one (adaptive rounds reuse their edits).
                let chosen: Vec<usize> = if level.len() <= left {
                    (0..level.len()).collect()
                } else {
                    let mut pick = index::sample(&mut rng, level.len(), level.len()).into_vec();
                    pick.truncate(left);
                    pick.sort_unstable();
                    pick
                };
                for i in chosen {
                    rows.add(mask_without(d, &level[i]));
                }
            }
        }
        Strategy::Lime => {
            // Budgets near 2^d would need very many draws (LIME rarely draws a given mask of a
            // middle size); the row cap bounds memory, and the run then spends fewer calls.
            let cap = 20 * budget + 1000;
            while rows.distinct() < budget && rows.len() < cap {
                let remove = rng.random_range(1..=d.max(1)).min(d);
                let mut mask = vec![true; d];
                for k in index::sample(&mut rng, d, remove) {
                    mask[k] = false;
                }
                rows.push(mask);
            }
        }
        Strategy::KernelShap => kernel_shap_rows(d, budget, &mut rng, &mut rows),
        Strategy::Half => {
            let available = if d >= 2 { total - 1 - d as u64 } else { 0 };
            // `available` counts the full mask too.
            let budget = budget.min(available as usize);
            let mut tries = 0;
            while rows.distinct() < budget && tries < 1000 * budget.max(16) {
                tries += 1;
                let mask: Vec<bool> = (0..d).map(|_| rng.random::<bool>()).collect();
                if mask.iter().filter(|&&k| k).count() >= 2 {
                    rows.add(mask);
                }
            }
        }
    }
    Ok(rows.rows)
}

/// Masks drawn so far: every row, and which are distinct.
struct Rows {
    rows: Vec<Vec<bool>>,
    seen: std::collections::HashSet<Vec<bool>>,
}

impl Rows {
    fn new(d: usize) -> Self {
        let full = vec![true; d];
        Rows { rows: vec![full.clone()], seen: std::collections::HashSet::from([full]) }
    }
    fn len(&self) -> usize {
        self.rows.len()
    }
    fn distinct(&self) -> usize {
        self.seen.len()
    }
    /// Adds a row, repeats included; returns whether the mask is new.
    fn push(&mut self, mask: Vec<bool>) -> bool {
        let new = self.seen.insert(mask.clone());
        self.rows.push(mask);
        new
    }
    /// Adds a row unless the mask is already there.
    fn add(&mut self, mask: Vec<bool>) -> bool {
        if self.seen.contains(&mask) {
            return false;
        }
        self.push(mask)
    }
}

/// Every `k`-subset of `0..n` in lexicographic order.
fn combinations(n: usize, k: usize) -> Vec<Vec<usize>> {
    let mut out = Vec::new();
    let mut c: Vec<usize> = (0..k).collect();
    if k > n {
        return out;
    }
    loop {
        out.push(c.clone());
        let Some(i) = (0..k).rev().find(|&i| c[i] != i + n - k) else { break };
        c[i] += 1;
        for j in i + 1..k {
            c[j] = c[j - 1] + 1;
        }
    }
    out
}

fn mask_without(d: usize, removed: &[usize]) -> Vec<bool> {
    let mut m = vec![true; d];
    removed.iter().for_each(|&k| m[k] = false);
    m
}

fn mask_with(d: usize, kept: &[usize]) -> Vec<bool> {
    let mut m = vec![false; d];
    kept.iter().for_each(|&k| m[k] = true);
    m
}

/// The binomial coefficient C(n, k) as a float (exact for the sizes masks have).
pub fn binomial(n: usize, k: usize) -> f64 {
    (0..k).fold(1.0, |acc, i| acc * (n - i) as f64 / (i + 1) as f64)
}

/// Coalition sizes `shap.KernelExplainer` enumerates completely for `d` words and a budget
/// of `calls` (full and empty included), and the Shapley-kernel weight of each size
/// `s = 1..=⌈(d−1)/2⌉` (paired sizes doubled, normalised to sum 1): what its sampler and its
/// weights are built from.
pub fn kernel_shap_plan(d: usize, calls: usize) -> (usize, Vec<f64>) {
    let sizes = d.saturating_sub(1).div_ceil(2);
    let paired = d.saturating_sub(1) / 2;
    let mut weights: Vec<f64> = (1..=sizes).map(|s| (d as f64 - 1.0) / (s * (d - s)) as f64).collect();
    weights.iter_mut().take(paired).for_each(|w| *w *= 2.0);
    let sum: f64 = weights.iter().sum();
    weights.iter_mut().for_each(|w| *w /= sum);
    let mut left = calls.saturating_sub(2) as f64;
    let mut remaining = weights.clone();
    let mut full = 0;
    for s in 1..=sizes {
        let count = binomial(d, s) * if s <= paired { 2.0 } else { 1.0 };
        if left * remaining[s - 1] / count >= 1.0 - 1e-8 {
            full += 1;
            left -= count;
            if remaining[s - 1] < 1.0 {
                let r = 1.0 - remaining[s - 1];
                remaining.iter_mut().for_each(|w| *w /= r);
            }
        } else {
            break;
        }
    }
    (full, weights)
}

/// `shap.KernelExplainer`'s coalitions (its `nsamples` is `budget − 2`), with its RNG
/// replaced by ChaCha8.
fn kernel_shap_rows(d: usize, budget: usize, rng: &mut ChaCha8Rng, rows: &mut Rows) {
    if d == 0 {
        return;
    }
    rows.add(vec![false; d]);
    let (full, weights) = kernel_shap_plan(d, budget);
    let paired = d.saturating_sub(1) / 2;
    for s in 1..=full {
        for kept in combinations(d, s) {
            rows.add(mask_with(d, &kept));
            if s <= paired {
                rows.add(mask_without(d, &kept));
            }
        }
    }
    if full == weights.len() {
        return;
    }
    let mut remaining: Vec<f64> = weights.clone();
    remaining.iter_mut().take(paired).for_each(|w| *w /= 2.0);
    let remaining = &remaining[full..];
    let sum: f64 = remaining.iter().sum();
    let left = budget.saturating_sub(rows.distinct());
    for _ in 0..4 * left {
        if rows.distinct() >= budget {
            break;
        }
        let mut u = rng.random::<f64>() * sum;
        let mut pick = remaining.len() - 1;
        for (i, w) in remaining.iter().enumerate() {
            if u < *w {
                pick = i;
                break;
            }
            u -= w;
        }
        let size = full + 1 + pick;
        let kept = index::sample(rng, d, size).into_vec();
        let mask = mask_with(d, &kept);
        let complement: Vec<bool> = mask.iter().map(|&k| !k).collect();
        let new = rows.push(mask);
        if size <= paired && (!new || rows.distinct() < budget) {
            rows.push(complement);
        }
    }
}

/// Groups identical masks: returns the distinct masks in first-seen order and, per sample, the index of its distinct mask.
pub fn distinct(masks: &[Vec<bool>]) -> (Vec<Vec<bool>>, Vec<usize>) {
    let mut seen: std::collections::HashMap<&[bool], usize> = std::collections::HashMap::new();
    let mut unique = Vec::new();
    let mut of_sample = Vec::with_capacity(masks.len());
    for m in masks {
        let id = *seen.entry(m.as_slice()).or_insert_with(|| {
            unique.push(m.clone());
            unique.len() - 1
        });
        of_sample.push(id);
    }
    (unique, of_sample)
}

/// Renders the instruction a mask describes: removed words are dropped (`replacement` None)
/// or replaced by `replacement`; spacing is tidied so the editor sees natural text.
///
/// Punctuation belongs to the word before it: a dropped word takes the punctuation that
/// follows it along, so removals never glue marks into a token the instruction did not have
/// ("please, make the car red!" without its last four words is "please,", not "please,!").
/// Text before the first word always stays.
///
/// ```
/// use gsmile::perturb::{render, split_words};
/// let text = "please, make the car red!";
/// let words = split_words(text);
/// assert_eq!(render(text, &words, &[false, true, true, true, false], None), "make the car");
/// assert_eq!(render(text, &words, &[true, false, false, false, false], None), "please,");
/// assert_eq!(render(text, &words, &[true, true, true, false, true], Some("[UNK]")), "please, make the [UNK] red!");
/// ```
pub fn render(instruction: &str, words: &[Word], mask: &[bool], replacement: Option<&str>) -> String {
    let mut out = String::with_capacity(instruction.len());
    out.push_str(&instruction[..words.first().map_or(instruction.len(), |w| w.start)]);
    for (i, (w, keep)) in words.iter().zip(mask).enumerate() {
        // What follows the word up to the next one: its punctuation and the spacing.
        let gap = &instruction[w.end..words.get(i + 1).map_or(instruction.len(), |next| next.start)];
        match (keep, replacement) {
            (true, _) => out.push_str(&w.text),
            (false, Some(r)) => out.push_str(r),
            (false, None) => {
                out.push(' ');
                continue;
            }
        }
        out.push_str(gap);
    }
    tidy(&out)
}

/// Groups masks that render the same instruction, which the editor need only run once:
/// returns the distinct texts in first-seen order and, per mask, the index of its text.
pub fn distinct_texts(texts: Vec<String>) -> (Vec<String>, Vec<usize>) {
    let mut seen: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    let mut unique = Vec::new();
    let of = texts
        .into_iter()
        .map(|t| {
            *seen.entry(t).or_insert_with_key(|t| {
                unique.push(t.clone());
                unique.len() - 1
            })
        })
        .collect();
    (unique, of)
}

/// The seed of an instruction's masks: the run's `seed` mixed with the instruction, so
/// instructions with the same number of words get different masks (an evaluation's errors
/// would otherwise be correlated across scenarios). Deterministic: the first 8 bytes of
/// SHA-256 over a tag, the seed (little-endian) and the instruction's UTF-8 bytes.
pub fn mask_seed(seed: u64, instruction: &str) -> u64 {
    use sha2::Digest;
    let mut h = sha2::Sha256::new();
    h.update(b"gsmile.masks/1");
    h.update(seed.to_le_bytes());
    h.update(instruction.as_bytes());
    let digest = h.finalize();
    u64::from_le_bytes(digest[..8].try_into().expect("SHA-256 has 32 bytes"))
}

/// Collapses runs of whitespace, removes spaces before closing punctuation, and trims.
fn tidy(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for part in s.split_whitespace() {
        let glue = part.starts_with([',', '.', '!', '?', ';', ':']);
        if !out.is_empty() && !glue {
            out.push(' ');
        }
        out.push_str(part);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_keep_byte_spans_and_skip_punctuation() {
        let text = "Please, make the café's car RED!";
        let words = split_words(text);
        let texts: Vec<&str> = words.iter().map(|w| w.text.as_str()).collect();
        assert_eq!(texts, ["Please", "make", "the", "café's", "car", "RED"]);
        for w in &words {
            assert_eq!(&text[w.start..w.end], w.text);
        }
    }

    #[test]
    fn repeated_words_are_separate_features() {
        assert_eq!(split_words("red red car").len(), 3);
    }

    #[test]
    fn render_drops_and_tidies() {
        let text = "please, make the car red!";
        let words = split_words(text);
        assert_eq!(render(text, &words, &[true; 5], None), text);
        assert_eq!(render(text, &words, &[false, true, true, true, false], None), "make the car");
        assert_eq!(
            render(text, &words, &[true, true, true, false, true], Some("[UNK]")),
            "please, make the [UNK] red!"
        );
        assert_eq!(render(text, &words, &[false; 5], None), "");
    }

    #[test]
    fn punctuation_goes_with_the_word_before_it() {
        let text = "please, make the car red!";
        let words = split_words(text);
        // The issue's case: "please,!" tokenised as "please [UNK]".
        assert_eq!(render(text, &words, &[true, false, false, false, false], None), "please,");
        assert_eq!(render(text, &words, &[true, true, true, true, false], None), "please, make the car");
        assert_eq!(render(text, &words, &[false, true, true, true, true], None), "make the car red!");
        let quoted = "¿make it red, then blue?";
        let w = split_words(quoted);
        assert_eq!(render(quoted, &w, &[true, true, false, true, true], None), "¿make it then blue?");
        assert_eq!(render(quoted, &w, &[false, false, false, false, false], None), "¿");
    }

    #[test]
    fn masks_that_render_alike_are_edited_once() {
        let text = "red red car";
        let words = split_words(text);
        let masks = [vec![true, true, true], vec![true, false, true], vec![false, true, true], vec![true, true, true]];
        let texts: Vec<String> = masks.iter().map(|m| render(text, &words, m, None)).collect();
        let (unique, of) = distinct_texts(texts);
        assert_eq!(unique, ["red red car", "red car"]);
        assert_eq!(of, [0, 1, 1, 0]);
    }

    #[test]
    fn mask_seeds_mix_in_the_instruction() {
        assert_eq!(mask_seed(0, "make the car red"), mask_seed(0, "make the car red"));
        assert_ne!(mask_seed(0, "make the car red"), mask_seed(0, "make the sky red"));
        assert_ne!(mask_seed(0, "make the car red"), mask_seed(1, "make the car red"));
        let a = sample_masks(4, 32, Strategy::Lime, mask_seed(0, "make the car red")).unwrap();
        let b = sample_masks(4, 32, Strategy::Lime, mask_seed(0, "make the sky red")).unwrap();
        assert_ne!(a, b, "same word count, different instructions, different masks");
    }

    #[test]
    fn lime_masks_start_full_remove_at_least_one_and_are_seeded() {
        let a = sample_masks(6, 60, Strategy::Lime, 7).unwrap();
        assert!(a.len() >= 60);
        assert_eq!(distinct(&a).0.len(), 60);
        assert!(a[0].iter().all(|&b| b));
        assert!(a[1..].iter().all(|m| m.iter().any(|&b| !b)));
        assert_eq!(a, sample_masks(6, 60, Strategy::Lime, 7).unwrap());
        assert_ne!(a, sample_masks(6, 60, Strategy::Lime, 8).unwrap());
        // Removal counts 1..=6 all occur.
        let counts: std::collections::BTreeSet<usize> =
            a[1..].iter().map(|m| m.iter().filter(|&&b| !b).count()).collect();
        assert_eq!(counts.into_iter().collect::<Vec<_>>(), vec![1, 2, 3, 4, 5, 6]);
    }

    #[test]
    fn kernel_shap_enumerates_the_sizes_its_budget_covers_then_pairs() {
        // d = 6, 32 calls (shap's nsamples = 30): sizes 1 and 5 (12 masks) fit completely,
        // the other 18 are drawn in complementary pairs of sizes 2..=4.
        let m = sample_masks(6, 32, Strategy::KernelShap, 1).unwrap();
        let (u, _) = distinct(&m);
        assert_eq!(u.len(), 32);
        assert!(u[1].iter().all(|&k| !k), "the empty instruction is row 1");
        let size = |r: &Vec<bool>| r.iter().filter(|&&b| b).count();
        assert_eq!(u.iter().filter(|r| size(r) == 1).count(), 6);
        assert_eq!(u.iter().filter(|r| size(r) == 5).count(), 6);
        let drawn: Vec<&Vec<bool>> = u[14..].iter().collect();
        assert!(drawn.iter().all(|r| (2..=4).contains(&size(r))));
        let complement = |r: &Vec<bool>| r.iter().map(|&k| !k).collect::<Vec<bool>>();
        // Sizes 2 and 4 come in pairs; size 3 is its own complement's size, drawn alone (as in shap).
        let pairable: Vec<&&Vec<bool>> = drawn.iter().filter(|r| size(r) != 3).collect();
        let paired = pairable.iter().filter(|r| u.contains(&complement(r))).count();
        assert!(paired + 1 >= pairable.len(), "drawn in complementary pairs: {paired} of {}", pairable.len());
        // shap's test: nsamples × the size's kernel share ≥ the number of such coalitions.
        assert_eq!(kernel_shap_plan(6, 16).0, 0);
        assert_eq!(kernel_shap_plan(6, 32).0, 1);
        assert_eq!(kernel_shap_plan(6, 64).0, 3, "every size fits in 2^6 calls");
    }

    #[test]
    fn levels_walk_out_from_the_full_instruction() {
        let m = sample_masks(5, 12, Strategy::Levels, 3).unwrap();
        assert_eq!(m.len(), 12);
        assert_eq!(distinct(&m).0.len(), 12);
        assert!(m[0].iter().all(|&k| k) && m[1].iter().all(|&k| !k));
        let removed = |r: &Vec<bool>| r.iter().filter(|&&b| !b).count();
        assert!(m[2..7].iter().all(|r| removed(r) == 1), "every single removal first");
        assert!(m[7..].iter().all(|r| removed(r) == 2));
        // The unfinished level is drawn by the seed; finished levels are not.
        assert_eq!(sample_masks(5, 7, Strategy::Levels, 1).unwrap(), sample_masks(5, 7, Strategy::Levels, 2).unwrap());
        assert_ne!(
            sample_masks(5, 12, Strategy::Levels, 1).unwrap(),
            sample_masks(5, 12, Strategy::Levels, 2).unwrap()
        );
    }

    #[test]
    fn every_strategy_spends_the_budget_in_distinct_masks() {
        for strategy in [Strategy::Levels, Strategy::Lime, Strategy::KernelShap] {
            for (d, budget, expect) in [(4, 10, 10), (3, 40, 8), (9, 32, 32)] {
                let m = sample_masks(d, budget, strategy, 5).unwrap();
                assert_eq!(distinct(&m).0.len(), expect, "{strategy:?} d={d} budget={budget}");
            }
        }
        // Half keeps at least two words: 2^4 − 1 − 4 = 11 such masks (the full one among them).
        let m = sample_masks(4, 64, Strategy::Half, 5).unwrap();
        assert_eq!(distinct(&m).0.len(), 11);
        assert!(m.iter().all(|r| r.iter().filter(|&&k| k).count() >= 2));
    }

    #[test]
    fn exhaustive_enumerates_every_mask_once() {
        let m = sample_masks(4, 16, Strategy::Exhaustive, 0).unwrap();
        assert_eq!(m.len(), 16);
        assert!(m[0].iter().all(|&b| b));
        assert_eq!(distinct(&m).0.len(), 16);
        assert!(matches!(sample_masks(5, 16, Strategy::Exhaustive, 0), Err(PerturbError::TooManyForExhaustive { .. })));
        assert!(sample_masks(70, 100, Strategy::Exhaustive, 0).is_err());
    }

    #[test]
    fn distinct_maps_every_sample() {
        let masks = vec![vec![true, true], vec![false, true], vec![true, true], vec![false, true]];
        let (u, of) = distinct(&masks);
        assert_eq!(u.len(), 2);
        assert_eq!(of, [0, 1, 0, 1]);
    }

    #[test]
    fn too_few_samples_is_an_error() {
        assert!(sample_masks(3, 1, Strategy::Lime, 0).is_err());
    }
}
