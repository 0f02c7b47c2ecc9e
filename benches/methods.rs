//! The method sweep: every explanation method at every budget on `scenarios/odd-world`,
//! five mask seeds each, with the shipped tiny-editor and tiny-clip; prints the table the
//! README's "Choosing the default method" quotes.
//!
//! Run with `cargo bench --bench methods` (release build). The first run measures every
//! mask of every scenario once (all 2^d perturbed instructions, up to 14 words: about 84,000
//! edits, tens of minutes on two cores) into `outputs/values/`, one JSON file per scenario
//! keyed by the models' and the scenario's hashes (a stale file is measured again); every
//! later run reads them and takes seconds. The targets are exactly `explain`'s (−W1 between
//! CLIP image embeddings of each output and of the full instruction's), so each method sees
//! what it would see through the editor; only the editor calls are served from the table.
//!
//! Per (method, budget): mean editor calls (distinct perturbed instructions), ROC AUC and
//! precision@k against the key words, top-k Jaccard across the five seeds, deletion and
//! insertion gaps against 10 random word orders (as `gsmile evaluate` computes them); each
//! scenario contributes its mean over the seeds, and the 95 % bootstrap interval resamples
//! scenarios. Every method explains every scenario (none is refused at these budgets:
//! instructions have at most 14 words); and the same for `--samples auto`.

use std::path::{Path, PathBuf};

use gsmile::distance;
use gsmile::evaluate::measure::{derive_seed, key_labels, scenario_hash};
use gsmile::explain::{ExplainConfig, Measurer, NoProgress, REMOVED_WORDS_WIDTH, RunOptions};
use gsmile::method::{Evidence, Method, Settings, SmileTarget, Weighting, adaptive};
use gsmile::models::{Models, OpenOptions};
use gsmile::perturb::{self, Strategy};
use gsmile::surrogate::SurrogateConfig;
use gsmile::{metrics, stats};
use ndarray::{Array2, Axis};
use serde::{Deserialize, Serialize};

const SEEDS: u64 = 5;
const BUDGETS: [usize; 3] = [16, 32, 64];
const MAX_WORDS: usize = 14;

/// Every mask's measurements for one scenario.
#[derive(Serialize, Deserialize)]
struct Table {
    /// Hash of the models and the scenario the table was measured for (absent in tables
    /// written by earlier versions, which the spot check then vouches for).
    #[serde(default)]
    hash: Option<String>,
    id: String,
    instruction: String,
    words: Vec<String>,
    #[serde(alias = "key")]
    labels: Vec<bool>,
    /// Text index of every mask b (word k is bit d − 1 − k).
    of: Vec<usize>,
    /// W1 of each text's output embedding to the full instruction's.
    d_full: Vec<f64>,
    /// Text-tower vector of each word alone (smile-paper's word mover's distance).
    word_vectors: Vec<Vec<f32>>,
    /// W1 of each text's text-tower embedding to the full instruction's (the old default's
    /// weights); filled in by [`text_distances`] for tables written without it.
    #[serde(default)]
    text_w1: Vec<f64>,
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn measure(s: &gsmile::scenario::Scenario, models: &Models, key: &str) -> anyhow::Result<Table> {
    let config = ExplainConfig { weighting: Weighting::TextWasserstein, ..ExplainConfig::default() };
    let run = RunOptions { max_batch: 64, ..RunOptions::default() };
    let words = perturb::split_words(&s.instruction);
    let d = words.len();
    let image = gsmile::imaging::load_rgb(&s.image)?;
    let m = Measurer::new(&image, models, &config, &run);
    let masks: Vec<Vec<bool>> = (0..1usize << d).map(|b| (0..d).map(|k| b >> (d - 1 - k) & 1 == 1).collect()).collect();
    let rendered: Vec<String> = masks.iter().map(|mk| perturb::render(&s.instruction, &words, mk, None)).collect();
    let (texts, of) = perturb::distinct_texts(rendered);
    let full = m.edit(&[texts[of[(1 << d) - 1]].clone()], &NoProgress)?;
    let reference = full.index_axis(Axis(0), 0).to_owned();
    let mut d_full = Vec::with_capacity(texts.len());
    for chunk in texts.chunks(512) {
        let edits = m.edit(chunk, &NoProgress)?;
        d_full.extend(m.distances(edits.view(), reference.view())?);
    }
    let word_texts: Vec<String> = words.iter().map(|w| w.text.clone()).collect();
    let word_vectors = m.embed_texts(&word_texts)?.outer_iter().map(|r| r.to_vec()).collect();
    let text_w1 = text_distances(&m, &texts, of[(1 << d) - 1])?;
    Ok(Table {
        hash: Some(key.into()),
        id: s.id.clone(),
        instruction: s.instruction.clone(),
        labels: key_labels(&word_texts, &s.key_words),
        words: word_texts,
        of,
        d_full,
        word_vectors,
        text_w1,
    })
}

fn tables(dir: &Path) -> anyhow::Result<Vec<Table>> {
    let suite = gsmile::scenario::load_suite(&root().join("scenarios/odd-world"))?;
    let models = Models::open(
        &root().join("onnx/tiny-editor"),
        &root().join("onnx/tiny-clip"),
        ExplainConfig { weighting: Weighting::TextWasserstein, ..ExplainConfig::default() }.needs(),
        &OpenOptions::default(),
    )?;
    std::fs::create_dir_all(dir)?;
    let mut out = Vec::new();
    for s in &suite.scenarios {
        if perturb::split_words(&s.instruction).len() > MAX_WORDS {
            continue;
        }
        let key = gsmile::cache::key(&[
            b"gsmile.bench.values/1",
            models.editor_info.sha256.as_bytes(),
            models.encoder_info.as_ref().map_or(&b""[..], |e| e.sha256.as_bytes()),
            scenario_hash(s)?.as_bytes(),
        ]);
        let path = dir.join(format!("{}.json", s.id));
        let cached: Option<Table> = std::fs::read(&path).ok().and_then(|b| serde_json::from_slice(&b).ok());
        let table = match cached {
            Some(t) if t.hash.as_deref().is_none_or(|h| h == key) && spot_check(&t, s, &models)? => {
                if t.hash.is_none() || t.text_w1.is_empty() {
                    let text_w1 = if t.text_w1.is_empty() { texts_w1(&t, s, &models)? } else { t.text_w1.clone() };
                    let t = Table { hash: Some(key.clone()), text_w1, ..t };
                    gsmile::io::write_bytes_atomic(&path, &serde_json::to_vec(&t)?)?;
                    t
                } else {
                    t
                }
            }
            _ => {
                eprintln!("measuring every mask of {} ({})", s.id, s.instruction);
                let t = measure(s, &models, &key)?;
                gsmile::io::write_bytes_atomic(&path, &serde_json::to_vec(&t)?)?;
                t
            }
        };
        out.push(table);
    }
    Ok(out)
}

/// W1 of each text's text-tower embedding to text `full`'s (no editor call).
fn text_distances(m: &Measurer<'_>, texts: &[String], full: usize) -> anyhow::Result<Vec<f64>> {
    let emb = m.embed_texts(texts)?;
    let reference = emb.row(full).to_vec();
    Ok(emb.outer_iter().map(|r| distance::wasserstein_1d(&r.to_vec(), &reference)).collect())
}

/// Measures the empty instruction and one single-word removal again and compares them with
/// the table: a table that disagrees is measured anew.
fn spot_check(t: &Table, s: &gsmile::scenario::Scenario, models: &Models) -> anyhow::Result<bool> {
    let d = t.words.len();
    if t.of.len() != 1 << d || t.words.len() != perturb::split_words(&s.instruction).len() {
        return Ok(false);
    }
    let config = ExplainConfig::default();
    let run = RunOptions { max_batch: 8, ..RunOptions::default() };
    let words = perturb::split_words(&s.instruction);
    let image = gsmile::imaging::load_rgb(&s.image)?;
    let m = Measurer::new(&image, models, &config, &run);
    let probe: Vec<Vec<bool>> = vec![vec![true; d], vec![false; d], (0..d).map(|k| k != d / 2).collect()];
    let texts: Vec<String> = probe.iter().map(|p| perturb::render(&s.instruction, &words, p, None)).collect();
    let edits = m.edit(&texts, &NoProgress)?;
    let got = m.distances(edits.view(), edits.index_axis(Axis(0), 0))?;
    Ok(probe
        .iter()
        .zip(&got)
        .all(|(p, g)| t.d_full.get(t.of[bits(p)]).is_some_and(|v| (v - g).abs() <= 1e-9 * g.abs().max(1e-3))))
}

/// The text distances of a table written without them.
fn texts_w1(t: &Table, s: &gsmile::scenario::Scenario, models: &Models) -> anyhow::Result<Vec<f64>> {
    let words = perturb::split_words(&s.instruction);
    let d = words.len();
    let mut texts = vec![String::new(); t.d_full.len()];
    for b in 0..1usize << d {
        let mask: Vec<bool> = (0..d).map(|k| b >> (d - 1 - k) & 1 == 1).collect();
        texts[t.of[b]] = perturb::render(&s.instruction, &words, &mask, None);
    }
    let config = ExplainConfig { weighting: Weighting::TextWasserstein, ..ExplainConfig::default() };
    let run = RunOptions { max_batch: 64, ..RunOptions::default() };
    let image = gsmile::imaging::load_rgb(&s.image)?;
    let m = Measurer::new(&image, models, &config, &run);
    text_distances(&m, &texts, t.of[(1 << d) - 1])
}

fn bits(mask: &[bool]) -> usize {
    mask.iter().fold(0, |b, &k| b << 1 | k as usize)
}

/// gsmile 0.1's default, for reference: LIME's sampler with `samples` rows, weights by the
/// text-embedding W1 with the median width, OLS.
fn old_default(t: &Table, rows: usize, seed: u64) -> Option<(Vec<f64>, usize)> {
    let d = t.words.len();
    let mut rng =
        <rand_chacha::ChaCha8Rng as rand::SeedableRng>::seed_from_u64(perturb::mask_seed(seed, &t.instruction));
    let mut masks = vec![vec![true; d]];
    for _ in 1..rows {
        let remove = rand::Rng::random_range(&mut rng, 1..=d);
        let mut m = vec![true; d];
        for k in rand::seq::index::sample(&mut rng, d, remove) {
            m[k] = false;
        }
        masks.push(m);
    }
    let calls = masks.iter().map(|m| t.of[bits(m)]).collect::<std::collections::HashSet<_>>().len();
    let x = Array2::from_shape_fn((masks.len(), d), |(i, k)| masks[i][k] as u8 as f64);
    let dist: Vec<f64> = masks.iter().map(|m| t.d_full[t.of[bits(m)]]).collect();
    let tw: Vec<f64> = masks.iter().map(|m| t.text_w1[t.of[bits(m)]]).collect();
    let config = ExplainConfig { weighting: Weighting::TextWasserstein, ..ExplainConfig::default() };
    let settings = Settings {
        surrogate: SurrogateConfig { bootstrap: 0, seed, ..SurrogateConfig::default() },
        kernel_width: config.effective_kernel_width(&tw),
        smile_target: SmileTarget::MinMax,
    };
    let ev = Evidence { masks: x.view(), distances: &dist, sign: -1.0, instruction_distances: &tw };
    Method::Gsmile.attribute(&ev, &settings).ok().map(|a| (a.coefficients, calls))
}

/// One explanation: attributions and the editor calls it needed.
fn explain(
    t: &Table,
    method: Method,
    budget: usize,
    seed: u64,
    auto: Option<(f64, usize, bool)>,
) -> Option<(Vec<f64>, usize)> {
    let d = t.words.len();
    let settings = Settings {
        surrogate: SurrogateConfig { bootstrap: 0, seed, ..SurrogateConfig::default() },
        kernel_width: REMOVED_WORDS_WIDTH,
        smile_target: SmileTarget::MinMax,
    };
    let budgets = if auto.is_some() { adaptive::rounds(d, budget) } else { vec![budget] };
    let mut last = None;
    let mut previous = None;
    for (r, &b) in budgets.iter().enumerate() {
        let strategy = method.strategy(Strategy::Levels);
        let masks = perturb::sample_masks(d, b, strategy, perturb::mask_seed(seed, &t.instruction)).ok()?;
        let calls = masks.iter().map(|m| t.of[bits(m)]).collect::<std::collections::HashSet<_>>().len();
        if !matches!(method, Method::Exact | Method::Banzhaf) && calls < d + 1 {
            return None;
        }
        let x = Array2::from_shape_fn((masks.len(), d), |(i, k)| masks[i][k] as u8 as f64);
        let dist: Vec<f64> = masks.iter().map(|m| t.d_full[t.of[bits(m)]]).collect();
        let instr: Vec<f64> = match method.weighting(Weighting::RemovedWords) {
            Some(Weighting::RemovedWords) => masks.iter().map(|m| m.iter().filter(|&&k| !k).count() as f64).collect(),
            Some(Weighting::MaskCosine) => masks.iter().map(|m| distance::mask_cosine(m)).collect(),
            Some(Weighting::WordMovers) => masks.iter().map(|m| distance::word_movers(&t.word_vectors, m)).collect(),
            _ => Vec::new(),
        };
        let ev = Evidence { masks: x.view(), distances: &dist, sign: -1.0, instruction_distances: &instr };
        let a = method.attribute(&ev, &settings).ok()?;
        if let Some((threshold, top, agree)) = auto
            && r + 1 < budgets.len()
        {
            let top = top.min(d.saturating_sub(1)).max(1);
            let leading = adaptive::top_set(&a.coefficients, top);
            let agreed = agree && previous.as_ref() == Some(&leading);
            previous = Some(leading);
            if agreed || adaptive::change_probability(method, &ev, &settings, top) < threshold {
                last = Some((a.coefficients, calls));
                break;
            }
        }
        last = Some((a.coefficients, calls));
    }
    last
}

/// Deletion and insertion gaps against random orders, as `gsmile evaluate` computes them.
fn faithfulness(t: &Table, attr: &[f64]) -> (f64, f64) {
    let d = t.words.len();
    let sim = |m: &[bool]| -t.d_full[t.of[bits(m)]];
    let curve = |order: &[usize], insert: bool| -> Vec<f64> {
        let mut m = vec![!insert; d];
        let mut c = vec![sim(&m)];
        for &k in order {
            m[k] = insert;
            c.push(sim(&m));
        }
        c
    };
    let order = metrics::deletion_order(attr);
    let randoms = metrics::random_orders(d, 10, derive_seed(0, "random-orders"));
    let del = metrics::compare_to_random(
        &curve(&order, false),
        &randoms.iter().map(|o| curve(o, false)).collect::<Vec<_>>(),
        false,
    );
    let ins = metrics::compare_to_random(
        &curve(&order, true),
        &randoms.iter().map(|o| curve(o, true)).collect::<Vec<_>>(),
        true,
    );
    (del.map_or(f64::NAN, |c| c.gap), ins.map_or(f64::NAN, |c| c.gap))
}

fn ci(values: &[f64]) -> String {
    match stats::mean_ci(values, 0.95, 2000, 7) {
        Ok((m, lo, hi)) if m.is_finite() => format!("{m:.3} [{lo:.3}, {hi:.3}]"),
        _ => "n/a".into(),
    }
}

fn main() -> anyhow::Result<()> {
    let tables = tables(&root().join("outputs/values"))?;
    let methods = [Method::Gsmile, Method::Lime, Method::KernelShap, Method::SmilePaper];
    println!(
        "{} scenarios of scenarios/odd-world, {SEEDS} seeds; mean [95 % bootstrap CI] over scenarios\n",
        tables.len()
    );
    println!(
        "| method | budget | editor calls | ROC AUC | precision@k | top-k Jaccard across seeds | deletion gap (×10³) | insertion gap (×10³) |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    let mut rows: Vec<(String, Vec<usize>)> = BUDGETS.iter().map(|b| (b.to_string(), vec![*b])).collect();
    rows.push(("auto (≤ 64)".into(), vec![64]));
    // The stopping rule's bootstrap part on its own, at the shipped and a looser threshold.
    rows.push(("auto (≤ 64, bootstrap only)".into(), vec![64]));
    rows.push(("auto (≤ 64, bootstrap only, p < 0.2)".into(), vec![64]));
    let mut exact_auc = Vec::new();
    for t in &tables {
        if let Some((a, _)) = explain(t, Method::Exact, 1 << t.words.len(), 0, None) {
            exact_auc.push(metrics::roc_auc(&a, &t.labels).unwrap_or(f64::NAN));
        }
    }
    // Per-scenario values of each (budget, method) for the paired differences below.
    let mut paired: Vec<(String, String, [Vec<f64>; 5])> = Vec::new();
    for (label, budget) in &rows {
        let auto = label.starts_with("auto").then(|| {
            let threshold = if label.contains("0.2") { 0.2 } else { adaptive::THRESHOLD };
            (threshold, adaptive::TOP, !label.contains("bootstrap only"))
        });
        for variant in 0..=methods.len() {
            // The last variant is gsmile 0.1's default, at the same number of samples (rows).
            let old = variant == methods.len();
            let method = if old { Method::Gsmile } else { methods[variant] };
            if auto.is_some() && (old || method != Method::Gsmile) {
                continue;
            }
            let (mut calls, mut auc, mut prec, mut jac, mut del, mut ins) =
                (vec![], vec![], vec![], vec![], vec![], vec![]);
            for t in &tables {
                let runs: Vec<(Vec<f64>, usize)> = (0..SEEDS)
                    .filter_map(|seed| {
                        if old { old_default(t, budget[0], seed) } else { explain(t, method, budget[0], seed, auto) }
                    })
                    .collect();
                if runs.is_empty() {
                    continue;
                }
                let k = t.labels.iter().filter(|&&l| l).count().max(1);
                // One value per scenario (the mean over its seeds), so the intervals resample
                // scenarios, not seed×scenario runs.
                let per_seed = |f: &dyn Fn(&[f64]) -> f64| stats::nan_mean(runs.iter().map(|(a, _)| f(a)));
                calls.push(stats::mean(&runs.iter().map(|(_, c)| *c as f64).collect::<Vec<_>>()));
                auc.push(per_seed(&|a| metrics::roc_auc(a, &t.labels).unwrap_or(f64::NAN)));
                prec.push(per_seed(&|a| metrics::precision_at_key_count(a, &t.labels).unwrap_or(f64::NAN)));
                del.push(per_seed(&|a| faithfulness(t, a).0 * 1e3));
                ins.push(per_seed(&|a| faithfulness(t, a).1 * 1e3));
                let attrs: Vec<Vec<f64>> = runs.iter().map(|(a, _)| a.clone()).collect();
                jac.push(metrics::mean_pairwise(&attrs, |a, b| metrics::top_k_jaccard(a, b, k).unwrap_or(f64::NAN)));
            }
            if auto.is_none() && !old {
                paired.push((
                    label.clone(),
                    method.name().into(),
                    [auc.clone(), prec.clone(), jac.clone(), del.clone(), ins.clone()],
                ));
            }
            println!(
                "| {} | {label} | {:.1} | {} | {} | {} | {} | {} |",
                if old { "gsmile 0.1 default (rows)" } else { method.name() },
                stats::mean(&calls),
                ci(&auc),
                ci(&prec),
                ci(&jac),
                ci(&del),
                ci(&ins)
            );
        }
    }
    println!("\nexact Shapley values (all 2^d masks): ROC AUC {}", ci(&exact_auc));
    // gsmile minus each baseline on the same scenarios: the paired mean difference with its
    // 95 % bootstrap interval (an interval above 0 means gsmile is better, below 0 worse).
    println!(
        "\n| budget | gsmile − | ROC AUC | precision@k | top-k Jaccard | deletion gap (×10³) | insertion gap (×10³) |"
    );
    println!("|---|---|---|---|---|---|---|");
    for (label, method, values) in &paired {
        if method == "gsmile" {
            continue;
        }
        let Some((_, _, ours)) = paired.iter().find(|(l, m, _)| l == label && m == "gsmile") else { continue };
        let diff = |k: usize| -> Vec<f64> { ours[k].iter().zip(&values[k]).map(|(a, b)| a - b).collect() };
        println!(
            "| {label} | {method} | {} | {} | {} | {} | {} |",
            ci(&diff(0)),
            ci(&diff(1)),
            ci(&diff(2)),
            ci(&diff(3)),
            ci(&diff(4))
        );
    }
    Ok(())
}
