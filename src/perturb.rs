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
        "exhaustive sampling of {words} words needs 2^{words} = {needed} samples but `samples` is {samples}. Fix: raise `samples` to {needed} or set `strategy = lime`"
    )]
    TooManyForExhaustive {
        /// Number of words.
        words: usize,
        /// 2^words.
        needed: u64,
        /// The sample budget.
        samples: usize,
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

/// How masks over the words are drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Strategy {
    /// LIME's scheme: remove k words, k uniform in 1..=d, the words chosen uniformly.
    #[default]
    Lime,
    /// Kernel SHAP's scheme: coalition size s in 1..d-1 with probability ∝ (d-1)/(s(d-s)), members uniform.
    KernelShap,
    /// Every one of the 2^d masks once (needs samples ≥ 2^d).
    Exhaustive,
}

/// Draws `samples` masks over `words` words; row 0 is the full instruction.
///
/// Deterministic for a given `seed` (ChaCha8). Masks may repeat; callers run each distinct
/// mask once ([`distinct`]) but keep every row in the regression, as LIME does.
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
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut masks = vec![vec![true; d]];
    match strategy {
        Strategy::Exhaustive => {
            let needed = 1u64.checked_shl(d as u32).filter(|_| d < 63).unwrap_or(u64::MAX);
            if needed > samples as u64 {
                return Err(PerturbError::TooManyForExhaustive { words: d, needed, samples });
            }
            // Full mask first, then the others in binary order.
            for bits in (0..needed - 1).rev() {
                masks.push((0..d).map(|k| bits >> (d - 1 - k) & 1 == 1).collect());
            }
        }
        Strategy::Lime => {
            for _ in 1..samples {
                let remove = rng.random_range(1..=d.max(1)).min(d);
                let mut mask = vec![true; d];
                for k in index::sample(&mut rng, d, remove) {
                    mask[k] = false;
                }
                masks.push(mask);
            }
        }
        Strategy::KernelShap => {
            // Sizes 1..d-1 weighted by the Shapley kernel summed over coalitions of that size.
            let sizes: Vec<usize> = (1..d).collect();
            let weights: Vec<f64> = sizes.iter().map(|&s| (d as f64 - 1.0) / (s as f64 * (d - s) as f64)).collect();
            let total: f64 = weights.iter().sum();
            for _ in 1..samples {
                let keep = if sizes.is_empty() {
                    0
                } else {
                    let mut u = rng.random::<f64>() * total;
                    let mut pick = sizes[sizes.len() - 1];
                    for (s, w) in sizes.iter().zip(&weights) {
                        if u < *w {
                            pick = *s;
                            break;
                        }
                        u -= w;
                    }
                    pick
                };
                let mut mask = vec![false; d];
                for k in index::sample(&mut rng, d, keep) {
                    mask[k] = true;
                }
                masks.push(mask);
            }
        }
    }
    Ok(masks)
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
        let a = sample_masks(6, 200, Strategy::Lime, 7).unwrap();
        assert_eq!(a.len(), 200);
        assert!(a[0].iter().all(|&b| b));
        assert!(a[1..].iter().all(|m| m.iter().any(|&b| !b)));
        assert_eq!(a, sample_masks(6, 200, Strategy::Lime, 7).unwrap());
        assert_ne!(a, sample_masks(6, 200, Strategy::Lime, 8).unwrap());
        // Removal counts 1..=6 all occur.
        let counts: std::collections::BTreeSet<usize> =
            a[1..].iter().map(|m| m.iter().filter(|&&b| !b).count()).collect();
        assert_eq!(counts.into_iter().collect::<Vec<_>>(), vec![1, 2, 3, 4, 5, 6]);
    }

    #[test]
    fn kernel_shap_favours_small_and_large_coalitions() {
        let m = sample_masks(8, 4000, Strategy::KernelShap, 1).unwrap();
        let size = |k: usize| m[1..].iter().filter(|r| r.iter().filter(|&&b| b).count() == k).count();
        assert!(m[1..].iter().all(|r| (1..8).contains(&r.iter().filter(|&&b| b).count())));
        // p(1) / p(4) = (1/(1*7)) / (1/(4*4)) = 16/7.
        let ratio = size(1) as f64 / size(4) as f64;
        assert!((ratio - 16.0 / 7.0).abs() < 0.5, "ratio {ratio}");
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
