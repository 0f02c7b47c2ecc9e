//! One scenario's evaluation: the explanation and its accuracy, fidelity, stability,
//! consistency and faithfulness measurements.
//!
//! Held-out fidelity and the deletion/insertion curves need editor outputs for masks that
//! `explain` did not sample. They are computed by [`explain::Measurer`], which edits, embeds and
//! measures exactly as `explain` does, with the same cache keys, so every edit and
//! embedding `explain` already made is reused bit for bit (the `targets_match_explain` test
//! checks that the two agree exactly).

use image::RgbImage;
use ndarray::{ArrayView3, Axis};
use sha2::{Digest, Sha256};

use super::{CurveResult, EvalConfig, EvalError, Result, SCENARIO_SCHEMA, ScenarioResult};
use crate::cache::{self, file_sha256};
use crate::explain::{
    self, ExplainConfig, ExplainRun, ImageInfo, Measurer, Method, Models, NoProgress, Reference, RunOptions,
};
use crate::metrics;
use crate::perturb::{self, Strategy, Word};
use crate::scenario::Scenario;
use crate::stats::nan_mean;
use crate::{Error, imaging};

/// Seed for one purpose derived from the explanation seed, so held-out masks and random
/// orders never coincide with the masks of seed, seed+1, … that stability uses.
pub fn derive_seed(seed: u64, purpose: &str) -> u64 {
    let mut h = Sha256::new();
    h.update(b"gsmile.evaluate.seed");
    h.update(seed.to_le_bytes());
    h.update(purpose.as_bytes());
    let d = h.finalize();
    u64::from_le_bytes([d[0], d[1], d[2], d[3], d[4], d[5], d[6], d[7]])
}

/// A word as compared with key words: lower case, letters and digits only.
pub fn key_form(word: &str) -> String {
    word.chars().filter(|c| c.is_alphanumeric()).flat_map(char::to_lowercase).collect()
}

/// Whether each word is one of `key_words` (case- and punctuation-insensitive).
pub fn key_labels(words: &[String], key_words: &[String]) -> Vec<bool> {
    let keys: Vec<String> = key_words.iter().map(|k| key_form(k)).collect();
    words.iter().map(|w| keys.contains(&key_form(w))).collect()
}

/// Hash of what a scenario's result depends on besides the configuration: its texts, ODD
/// cell and image bytes (not its paths, so a suite moved to another machine still resumes).
pub fn scenario_hash(s: &Scenario) -> Result<String> {
    let sha = |p: &std::path::Path| file_sha256(p).map_err(super::io_err("read", p));
    let mut parts: Vec<Vec<u8>> = vec![
        b"gsmile.eval-scenario".to_vec(),
        s.id.as_bytes().to_vec(),
        s.instruction.as_bytes().to_vec(),
        serde_json::to_vec(&(&s.paraphrases, &s.key_words, &s.odd)).unwrap_or_default(),
        sha(&s.image)?.into_bytes(),
    ];
    for r in &s.related_images {
        parts.push(sha(r)?.into_bytes());
    }
    let refs: Vec<&[u8]> = parts.iter().map(Vec::as_slice).collect();
    Ok(cache::key(&refs))
}

/// Number of progress steps [`evaluate_scenario`] reports for `s`.
pub fn steps(s: &Scenario, config: &EvalConfig) -> usize {
    3 + config.repeats + s.paraphrases.len() + s.related_images.len() + if config.neutral_insertions { 6 } else { 0 }
}

/// Distances of the edits of `texts` to `reference`, editing each distinct text once.
fn text_distances(m: &Measurer<'_>, texts: &[String], reference: ArrayView3<f32>) -> Result<Vec<f64>, Error> {
    let (distinct, of) = perturb::distinct_texts(texts.to_vec());
    let edits = m.edit(&distinct, &NoProgress)?;
    let d = m.distances(edits.view(), reference)?;
    Ok(of.into_iter().map(|i| d[i]).collect())
}

/// The regression target `explain` uses for each mask of `instruction` on `image`:
/// −distance to the full instruction's output (`Reference::Full`) or +distance to the input
/// (`Reference::Input`), in the configured space, through the same cache.
pub fn targets(
    image: &RgbImage,
    instruction: &str,
    masks: &[Vec<bool>],
    models: &Models,
    config: &ExplainConfig,
    run: &RunOptions,
) -> Result<Vec<f64>, Error> {
    let words = perturb::split_words(instruction);
    let tm = Measurer::new(image, models, config, run);
    let full = perturb::render(instruction, &words, &vec![true; words.len()], config.replacement.as_deref());
    let reference = match config.reference {
        Reference::Full => tm.edit(&[full], &NoProgress)?.index_axis(Axis(0), 0).to_owned(),
        Reference::Input => tm.input().to_owned(),
    };
    mask_targets(&tm, instruction, &words, masks, reference.view(), config)
}

/// Targets of `masks` given the reference image (see [`targets`]).
fn mask_targets(
    tm: &Measurer<'_>,
    instruction: &str,
    words: &[Word],
    masks: &[Vec<bool>],
    reference: ArrayView3<f32>,
    config: &ExplainConfig,
) -> Result<Vec<f64>, Error> {
    let sign = config.reference.target_sign();
    let texts: Vec<String> =
        masks.iter().map(|m| perturb::render(instruction, words, m, config.replacement.as_deref())).collect();
    Ok(text_distances(tm, &texts, reference)?.into_iter().map(|d| sign * d).collect())
}

/// Masks of a deletion curve: step t removes the first t words of `order` (t = 0..=d).
pub fn deletion_masks(order: &[usize]) -> Vec<Vec<bool>> {
    let d = order.len();
    (0..=d)
        .map(|t| {
            let mut m = vec![true; d];
            for &k in &order[..t] {
                m[k] = false;
            }
            m
        })
        .collect()
}

/// Masks of an insertion curve: step t keeps only the first t words of `order` (t = 0..=d).
pub fn insertion_masks(order: &[usize]) -> Vec<Vec<bool>> {
    deletion_masks(order).into_iter().map(|m| m.into_iter().map(|b| !b).collect()).collect()
}

/// Explains `instruction` on the image at `path`.
fn explain_file(
    path: &std::path::Path,
    instruction: &str,
    models: &Models,
    config: &ExplainConfig,
    run: &RunOptions,
) -> Result<(RgbImage, ExplainRun), Error> {
    let image = imaging::load_rgb_limited(path, run.max_pixels)?;
    let info = ImageInfo::from_file(path)?;
    // The metrics score words, not maps: skip the spatial fit.
    let config = ExplainConfig { spatial: false, ..config.clone() };
    let run = explain::explain(&image, info, instruction, models, &config, run, &NoProgress)?;
    Ok((image, run))
}

/// Edits the editor ran for an explanation (distinct edits not served by the cache).
fn ran(e: &ExplainRun) -> usize {
    e.explanation.counts.distinct_edits - e.explanation.counts.cached_edits
}

/// Attributions of an explanation in word order.
fn attributions(e: &ExplainRun) -> Vec<f64> {
    e.explanation.words.iter().map(|w| w.attribution).collect()
}

/// Evaluates one scenario (see the module docs); `step(what, done, steps)` reports progress.
/// `seconds` is left at 0 for the caller to fill.
pub fn evaluate_scenario(
    scenario: &Scenario,
    models: &Models,
    config: &EvalConfig,
    run: &RunOptions,
    config_hash: &str,
    step: &dyn Fn(&str, usize, usize),
) -> Result<ScenarioResult> {
    measure(scenario, models, config, run, config_hash, step).map_err(|e| match e {
        EvalError::Explain(source) => {
            EvalError::Scenario { id: scenario.id.clone(), file: scenario.file.clone(), source }
        }
        other => other,
    })
}

fn measure(
    s: &Scenario,
    models: &Models,
    config: &EvalConfig,
    run: &RunOptions,
    config_hash: &str,
    step: &dyn Fn(&str, usize, usize),
) -> Result<ScenarioResult> {
    let ec = &config.explain;
    let total = steps(s, config);
    let mut done = 0;
    let mut tick = |what: &str| {
        done += 1;
        step(what, done, total);
    };
    let mut edits_run = 0;

    // 1–2. Explanation and accuracy.
    let (image, exp) = explain_file(&s.image, &s.instruction, models, ec, run)?;
    edits_run += ran(&exp);
    let words: Vec<Word> = exp.explanation.words.iter().map(|w| w.word.clone()).collect();
    let texts: Vec<String> = words.iter().map(|w| w.text.clone()).collect();
    let attr = attributions(&exp);
    let labels = key_labels(&texts, &s.key_words);
    let roc_auc = metrics::roc_auc(&attr, &labels)?;
    let precision_at_k = metrics::precision_at_key_count(&attr, &labels)?;
    let att_auroc = metrics::att_auroc(&attr, &labels)?;
    let (att_f1, att_accuracy) = metrics::att_f1_accuracy(&attr, &labels)?;
    let calls = exp.explanation.counts.distinct_edits;
    let fit_y: Vec<f64> = exp.explanation.samples.iter().map(|r| r.target).collect();
    let fit_pred: Vec<f64> = exp.explanation.samples.iter().map(|r| r.prediction).collect();
    let fit_w: Vec<f64> = exp.explanation.samples.iter().map(|r| r.weight).collect();
    let forms = metrics::fidelity_forms(&fit_y, &fit_pred, &fit_w, exp.explanation.words.len())?;
    let d = words.len();
    tick("explanation");

    // 3. Held-out fidelity.
    let tm = Measurer::new(&image, models, ec, run);
    let full_edit = exp.edits.index_axis(Axis(0), 0).to_owned();
    let (held_out_r2, held_out_mse) = if config.held_out >= 2 {
        // The same fresh masks for every method (LIME's sampler covers every removal count),
        // so methods are compared on one test set.
        let masks = perturb::sample_masks(d, config.held_out + 1, Strategy::Lime, derive_seed(ec.seed, "held-out"))
            .map_err(Error::from)?;
        let masks = &masks[1..];
        let reference = match ec.reference {
            Reference::Full => full_edit.view(),
            Reference::Input => exp.input.view(),
        };
        let y = mask_targets(&tm, &s.instruction, &words, masks, reference, ec)?;
        // smile-paper fits a rescaled target: judge it on the same scale.
        let y = if ec.method == Method::SmilePaper {
            let w1: Vec<f64> = y.iter().map(|t| t * ec.reference.target_sign()).collect();
            let fitted: Vec<f64> = exp.explanation.samples.iter().map(|r| r.distance).collect();
            crate::method::smile_paper::targets_scaled_like(&w1, &fitted, ec.smile_target)
        } else {
            y
        };
        let intercept = exp.explanation.intercept;
        let pred: Vec<f64> = masks
            .iter()
            .map(|m| intercept + m.iter().zip(&attr).map(|(&k, c)| if k { *c } else { 0.0 }).sum::<f64>())
            .collect();
        metrics::held_out_fidelity(&y, &pred)?
    } else {
        (f64::NAN, f64::NAN)
    };
    tick("held-out fidelity");

    // 4. Stability: other mask seeds, same editor seed.
    let mut runs = vec![attr.clone()];
    for r in 1..=config.repeats {
        let mut c = ec.clone();
        c.seed = ec.seed.wrapping_add(r as u64);
        let (_, e) = explain_file(&s.image, &s.instruction, models, &c, run)?;
        edits_run += ran(&e);
        runs.push(attributions(&e));
        tick("stability");
    }
    let k = labels.iter().filter(|&&l| l).count();
    let stability_jaccard = metrics::mean_pairwise(&runs, |a, b| metrics::top_k_jaccard(a, b, k).unwrap_or(f64::NAN));
    let stability_kendall = metrics::mean_pairwise(&runs, |a, b| metrics::kendall_tau(a, b).unwrap_or(f64::NAN));
    let (consistency_variance, consistency_std) = metrics::attribution_spread(&runs);

    // 4b. The papers' stability: neutral insertions, the original words compared.
    let mut inserted = Vec::new();
    if config.neutral_insertions {
        for (text, new_word) in metrics::neutral_insertions(&s.instruction) {
            // One more word may need a larger budget than the scenario's (exact values, a
            // budget of exactly d + 1): that insertion then has no value rather than failing the run.
            let e = match explain_file(&s.image, &text, models, ec, run) {
                Ok((_, e)) => e,
                Err(Error::Perturb(_) | Error::Config(_)) => {
                    tick("neutral insertion");
                    continue;
                }
                Err(other) => return Err(other.into()),
            };
            edits_run += ran(&e);
            let mut a = attributions(&e);
            if let Some(i) = new_word
                && i < a.len()
            {
                a.remove(i);
            }
            if a.len() == attr.len() {
                inserted.push(metrics::top_k_jaccard(&attr, &a, k.max(1)).unwrap_or(f64::NAN));
            }
            tick("neutral insertion");
        }
    }

    // 5. Consistency: paraphrases and related images.
    let pairs = |e: &ExplainRun| -> Vec<(String, f64)> {
        e.explanation.words.iter().map(|w| (w.word.text.clone(), w.attribution)).collect()
    };
    let original = pairs(&exp);
    let (mut p_rho, mut p_jac) = (Vec::new(), Vec::new());
    for p in &s.paraphrases {
        let (_, e) = explain_file(&s.image, p, models, ec, run)?;
        edits_run += ran(&e);
        let agreement = metrics::shared_key_agreement(&original, &pairs(&e), &s.key_words);
        p_rho.push(agreement.spearman);
        p_jac.push(agreement.top_k_jaccard);
        tick("paraphrase");
    }
    let mut related = Vec::new();
    for path in &s.related_images {
        let (_, e) = explain_file(path, &s.instruction, models, ec, run)?;
        edits_run += ran(&e);
        related.push(metrics::spearman(&attr, &attributions(&e))?);
        tick("related image");
    }

    // 6. Faithfulness: deletion and insertion along the attribution order vs random orders.
    let order = metrics::deletion_order(&attr);
    let randoms = metrics::random_orders(d, config.random_curves, derive_seed(ec.seed, "random-orders"));
    let mut masks = Vec::new();
    for o in std::iter::once(&order).chain(&randoms) {
        masks.extend(deletion_masks(o));
        masks.extend(insertion_masks(o));
    }
    let curve_texts: Vec<String> =
        masks.iter().map(|m| perturb::render(&s.instruction, &words, m, ec.replacement.as_deref())).collect();
    let similarity: Vec<f64> = text_distances(&tm, &curve_texts, full_edit.view())?.into_iter().map(|x| -x).collect();
    let curves: Vec<&[f64]> = similarity.chunks(d + 1).collect();
    let (del, ins) = (curves[0].to_vec(), curves[1].to_vec());
    let random_del: Vec<Vec<f64>> = curves.iter().skip(2).step_by(2).map(|c| c.to_vec()).collect();
    let random_ins: Vec<Vec<f64>> = curves.iter().skip(3).step_by(2).map(|c| c.to_vec()).collect();
    let curve = |values: Vec<f64>, random: &[Vec<f64>], higher: bool| -> Result<CurveResult> {
        let c = metrics::compare_to_random(&values, random, higher)?;
        Ok(CurveResult {
            curve: values,
            attribution_auc: c.attribution_auc,
            random_auc_mean: c.random_auc_mean,
            random_auc_std: c.random_auc_std,
            gap: c.gap,
            beats_random: c.beats_random,
        })
    };
    let deletion = curve(del, &random_del, false)?;
    let insertion = curve(ins, &random_ins, true)?;
    edits_run += tm.edits_run();
    tick("faithfulness");

    Ok(ScenarioResult {
        schema: SCENARIO_SCHEMA.into(),
        config_hash: config_hash.into(),
        scenario_hash: scenario_hash(s)?,
        id: s.id.clone(),
        odd: s.odd.clone(),
        method: ec.method.name().into(),
        instruction: s.instruction.clone(),
        key_words: s.key_words.clone(),
        words: texts,
        attributions: attr,
        key_labels: labels,
        roc_auc,
        precision_at_k,
        att_auroc,
        att_f1,
        att_accuracy,
        calls,
        r2: exp.explanation.fidelity.r2,
        mse: exp.explanation.fidelity.mse,
        held_out_r2,
        held_out_mse,
        mae: forms.mae,
        adjusted_r2: forms.adjusted_r2,
        mean_gap: forms.mean_gap,
        residual_l1: forms.l1,
        residual_l2: forms.l2,
        stability_jaccard,
        stability_kendall,
        insertion_stability: nan_mean(inserted),
        consistency_variance,
        consistency_std,
        paraphrase_spearman: nan_mean(p_rho),
        paraphrase_jaccard: nan_mean(p_jac),
        related_spearman: nan_mean(related),
        deletion,
        insertion,
        edits_run,
        seconds: 0.0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_labels_ignore_case_and_punctuation() {
        let words: Vec<String> = ["Color", "the", "CAR", "red!"].iter().map(|s| s.to_string()).collect();
        assert_eq!(key_labels(&words, &["car".into(), "Red".into()]), [false, false, true, true]);
    }

    #[test]
    fn deletion_and_insertion_masks_walk_the_order() {
        let del = deletion_masks(&[2, 0, 1]);
        assert_eq!(
            del,
            vec![vec![true, true, true], vec![true, true, false], vec![false, true, false], vec![false, false, false]]
        );
        let ins = insertion_masks(&[2, 0, 1]);
        assert_eq!(ins[0], vec![false; 3]);
        assert_eq!(ins[1], vec![false, false, true]);
        assert_eq!(ins[3], vec![true; 3]);
    }

    #[test]
    fn derived_seeds_differ_by_purpose_and_seed() {
        assert_ne!(derive_seed(0, "held-out"), derive_seed(0, "random-orders"));
        assert_ne!(derive_seed(0, "held-out"), derive_seed(1, "held-out"));
        assert_eq!(derive_seed(5, "x"), derive_seed(5, "x"));
    }
}
