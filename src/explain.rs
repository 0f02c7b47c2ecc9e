//! The gSMILE explanation of one (image, instruction) pair: configuration, result types,
//! and [`explain`], the whole pipeline: perturb → editor → encoder → distance → surrogate
//! → spatial. Rendering the result is [`crate::output`]'s job.

use std::time::Instant;

use image::RgbImage;
use std::sync::atomic::{AtomicUsize, Ordering};

use ndarray::{Array1, Array2, Array3, Array4, ArrayView3, ArrayView4, Axis};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::cache::{self, ArrayCache};
pub use crate::distance::Reference;
use crate::distance::{self, Metric};
use crate::error::ConfigError;
use crate::method::{Attribution, Evidence, Settings};
pub use crate::method::{Method, SmileTarget, Weighting};
use crate::models::Needs;
pub use crate::models::{ImageInfo, ModelInfo, Models};
use crate::perturb::{self, PerturbError, Strategy, Word};
use crate::surrogate::SurrogateConfig;
use crate::{Error, Result, imaging, spatial};

/// Version tag written into every `explanation.json`; bump it when the schema changes.
pub const SCHEMA: &str = "gsmile.explanation/1";

/// Where output change is measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Space {
    /// On CLIP-style image embeddings (gSMILE's choice).
    #[default]
    Embedding,
    /// On the images' pixel-intensity distributions.
    Pixels,
    /// As LPIPS, a learned perceptual distance to the reference (its own metric: `distance` does not apply).
    Lpips,
}

/// How the spatial change maps measure a sample's change at each pixel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum SpatialSpace {
    /// Mean absolute RGB difference.
    #[default]
    Pixels,
    /// LPIPS's distance map before spatial averaging: perceptual change, not raw colour.
    Lpips,
}

impl SpatialSpace {
    /// The default, left out of `explanation.json` and of evaluation hashes so runs made
    /// before the option existed still resume.
    fn is_pixels(&self) -> bool {
        *self == SpatialSpace::Pixels
    }
}

/// Every option that changes an explanation's numbers; written into `explanation.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExplainConfig {
    /// How attributions are estimated; the other methods fix their own sampler, weights and fit.
    #[serde(default)]
    pub method: Method,
    /// Editor calls to spend: distinct perturbed instructions, the full one included (the
    /// most with [`ExplainConfig::auto`]).
    pub samples: usize,
    /// Adaptive budget: draw masks in rounds and stop once the leading words are settled
    /// (see [`crate::method::adaptive`]), spending at most `samples` calls.
    #[serde(default)]
    pub auto: bool,
    /// `smile-paper`'s regression target.
    #[serde(default)]
    pub smile_target: SmileTarget,
    /// Seed of the perturbation masks (mixed with the instruction, [`perturb::mask_seed`]) and the bootstrap.
    pub seed: u64,
    /// How masks are drawn.
    pub strategy: Strategy,
    /// Token that replaces removed words; `None` drops them.
    pub replacement: Option<String>,
    /// What outputs are compared with.
    pub reference: Reference,
    /// Where change is measured.
    pub space: Space,
    /// The distance between outputs.
    pub distance: Metric,
    /// How samples are weighted.
    pub weighting: Weighting,
    /// Kernel width σ of exp(−d²/σ²); `None` picks the default of the weighting (see [`ExplainConfig::effective_kernel_width`]).
    pub kernel_width: Option<f64>,
    /// Surrogate fitting options.
    pub surrogate: SurrogateConfig,
    /// Whether [`explain`] computes per-word spatial heatmaps ([`crate::spatial`]).
    pub spatial: bool,
    /// What the spatial change maps compare each sample's output with: `Input` (default)
    /// shows where a word makes the editor change the image; `Full` also lights up the places
    /// a word keeps unchanged (e.g. "car" stops the editor painting the roof).
    pub spatial_reference: Reference,
    /// How the spatial change maps measure change: per-pixel RGB difference (default) or LPIPS's
    /// per-pixel perceptual distance (needs an LPIPS bundle).
    #[serde(default, skip_serializing_if = "SpatialSpace::is_pixels")]
    pub spatial_space: SpatialSpace,
    /// Side of the square patches change maps are pooled over before the spatial fit (1 = per pixel).
    pub patch: usize,
    /// Seed given to stochastic editors, the same for every sample (common random numbers).
    pub editor_seed: u64,
}

impl Default for ExplainConfig {
    fn default() -> Self {
        ExplainConfig {
            method: Method::Gsmile,
            samples: 64,
            auto: false,
            smile_target: SmileTarget::MinMax,
            seed: 0,
            strategy: Strategy::Levels,
            replacement: None,
            reference: Reference::Full,
            space: Space::Embedding,
            distance: Metric::Wasserstein,
            weighting: Weighting::RemovedWords,
            kernel_width: None,
            surrogate: SurrogateConfig::default(),
            spatial: true,
            spatial_reference: Reference::Input,
            spatial_space: SpatialSpace::Pixels,
            patch: 1,
            editor_seed: 0,
        }
    }
}

/// One word's attribution with its uncertainty.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WordAttribution {
    /// The word and its place in the instruction.
    #[serde(flatten)]
    pub word: Word,
    /// Surrogate coefficient: positive moves the output toward the full edit.
    pub attribution: f64,
    /// Lower end of the bootstrap interval.
    pub ci_low: f64,
    /// Upper end of the bootstrap interval.
    pub ci_high: f64,
    /// Two-sided bootstrap p-value of attribution ≠ 0.
    pub p_value: f64,
    /// The attribution as a share of the full edit's change, `attribution / edit_change`
    /// (see [`Explanation::edit_change`]); for Shapley methods the shares sum to 1.
    #[serde(default, with = "crate::io::nan")]
    pub share: f64,
    /// 1 for the largest |attribution|.
    pub rank: usize,
    /// False when the word was left out of the fit (constant column or not in the top-k).
    pub selected: bool,
}

/// How well the surrogate reproduces the editor on its own samples.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Fidelity {
    /// Weighted R² of the surrogate's predictions.
    pub r2: f64,
    /// Weighted mean squared error.
    pub mse: f64,
}

/// One perturbation sample.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SampleRecord {
    /// Kept words as a string of 0 and 1, word order.
    pub mask: String,
    /// The perturbed instruction.
    pub instruction: String,
    /// Distance between this sample's output and the reference.
    pub distance: f64,
    /// Regression target derived from the distance (see [`Reference`]).
    pub target: f64,
    /// Kernel weight π.
    pub weight: f64,
    /// The instruction distance the weight came from.
    pub instruction_distance: f64,
    /// The surrogate's prediction.
    pub prediction: f64,
    /// `smile-paper`: SMILE's bootstrap p-value of this sample's W1 to the original output.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub distance_p_value: Option<f64>,
}

/// Something that limits what an explanation can mean, found while making it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Warning {
    /// Stable identifier: `unknown-words`, `no-edit`, `one-word`.
    pub code: String,
    /// What was found and what it means, for people.
    pub message: String,
}

/// How an adaptive budget ([`ExplainConfig::auto`]) went.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BudgetReport {
    /// Editor calls (distinct masks) after each round.
    pub rounds: Vec<usize>,
    /// Bootstrap probability that the leading words change, after each round.
    pub change_probability: Vec<f64>,
    /// Number of leading words watched.
    pub top: usize,
    /// Why it stopped: `settled`, `budget` (the maximum was reached) or `exhausted` (every mask measured).
    pub stopped: String,
}

/// How much work a run did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Counts {
    /// Number of words (features).
    pub words: usize,
    /// Number of samples in the regression.
    pub samples: usize,
    /// Distinct perturbed instructions, each edited once.
    pub distinct_edits: usize,
    /// Edits served from the cache.
    pub cached_edits: usize,
}

/// Wall time per stage in seconds; the only part of the JSON that varies between identical runs.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, Default)]
pub struct Timings {
    /// Editor inference (or cache reads).
    pub editor: f64,
    /// Image and text encoder inference.
    pub encoder: f64,
    /// Output and instruction distances.
    pub distance: f64,
    /// Surrogate fit with bootstrap.
    pub surrogate: f64,
    /// Per-pixel spatial fit.
    pub spatial: f64,
    /// Everything, start to finish.
    pub total: f64,
}

/// The result of one explanation, as written to `explanation.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Explanation {
    /// Schema tag, [`SCHEMA`].
    pub schema: String,
    /// The gsmile version that made it.
    pub gsmile_version: String,
    /// The explained instruction.
    pub instruction: String,
    /// The explained image.
    pub image: ImageInfo,
    /// The editor.
    pub editor: ModelInfo,
    /// The encoder, when one was used.
    pub encoder: Option<ModelInfo>,
    /// The LPIPS network, when change was measured with it (`space = lpips`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lpips: Option<ModelInfo>,
    /// Every option that shaped the numbers.
    pub config: ExplainConfig,
    /// The kernel width actually used (LIME's 25 on 100 × cosine for `lime`, σ = 0.25 for
    /// `smile-paper`; null for methods weighted by the Shapley kernel or none).
    #[serde(with = "crate::io::nan")]
    pub kernel_width: f64,
    /// One entry per word, in instruction order.
    pub words: Vec<WordAttribution>,
    /// Surrogate intercept: the predicted target with every word removed.
    pub intercept: f64,
    /// The full edit's change, the unit of each word's `share`: `f(full) − f(empty)`, the
    /// targets of the full and the empty instruction, when the empty one was measured; the
    /// surrogate's `Σ attributions` otherwise.
    #[serde(default, with = "crate::io::nan")]
    pub edit_change: f64,
    /// Whether `edit_change` was measured (else predicted).
    #[serde(default)]
    pub edit_change_measured: bool,
    /// Whether the attributions are exact (every mask measured: no sampling error).
    #[serde(default)]
    pub exact: bool,
    /// What limits this explanation's meaning; empty when nothing was found.
    #[serde(default)]
    pub warnings: Vec<Warning>,
    /// How the adaptive budget went, when one was used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget: Option<BudgetReport>,
    /// Surrogate fit quality.
    pub fidelity: Fidelity,
    /// Every sample, sample 0 being the full instruction.
    pub samples: Vec<SampleRecord>,
    /// Work done.
    pub counts: Counts,
    /// Wall times.
    pub timings: Timings,
}

/// Receives progress of long stages; the library never prints, the CLI draws bars.
pub trait Progress: Sync {
    /// A stage with `total` steps begins.
    fn stage(&self, name: &str, total: u64);
    /// `n` more steps of the current stage are done.
    fn advance(&self, n: u64);
    /// The current stage is over.
    fn finish(&self);
}

/// Progress that goes nowhere, for tests and quiet runs.
pub struct NoProgress;

impl Progress for NoProgress {
    fn stage(&self, _: &str, _: u64) {}
    fn advance(&self, _: u64) {}
    fn finish(&self) {}
}

/// The most editor calls one explanation may ask for: far beyond where attributions settle
/// (a few hundred calls), and low enough that its masks and bookkeeping stay small.
pub const MAX_SAMPLES: usize = 100_000;

/// Settings that change speed and memory but never the numbers.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Most images per editor call.
    pub max_batch: usize,
    /// Cache of edits and embeddings; `None` disables caching.
    pub cache: Option<ArrayCache>,
    /// Most pixels of an image the run reads from a file (scenario images); see
    /// [`imaging::DEFAULT_MAX_PIXELS`].
    pub max_pixels: u64,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions { max_batch: 32, cache: None, max_pixels: imaging::DEFAULT_MAX_PIXELS }
    }
}

/// An explanation with the arrays renderings need.
#[derive(Debug, Clone)]
pub struct ExplainRun {
    /// The JSON-serialisable result.
    pub explanation: Explanation,
    /// The input at the editor's resolution, `[3,H,W]`.
    pub input: Array3<f32>,
    /// Edits of the distinct perturbed instructions, `[U,3,H,W]`; row 0 is the full instruction.
    pub edits: Array4<f32>,
    /// The perturbed instruction of each row of `edits`.
    pub edit_instructions: Vec<String>,
    /// Each row of `edits`' distance to the reference.
    pub edit_distances: Vec<f64>,
    /// The regression design: one 0/1 row per sample, one column per word.
    pub masks: Array2<f64>,
    /// Kernel weight of each sample.
    pub weights: Array1<f64>,
    /// Row of `edits` each sample uses.
    pub edit_of_sample: Vec<usize>,
    /// Per-word heatmaps `[d, h, w]` at the pooled editor resolution (positive: the word
    /// causes change there); `None` when the config turns them off.
    pub heatmaps: Option<Array3<f32>>,
}

/// Default kernel width on the mask cosine distance (LIME's own kernel,
/// `√exp(−(100d)²/25²)`, is width `√0.125 ≈ 0.354` in this form).
pub const MASK_COSINE_WIDTH: f64 = 0.25;

/// gsmile's default kernel width on the number of removed words, chosen by the method sweep
/// on `scenarios/odd-world` (README, "Choosing the default method").
pub const REMOVED_WORDS_WIDTH: f64 = 1.5;

impl ExplainConfig {
    /// The kernel width used: the configured one, else [`REMOVED_WORDS_WIDTH`] for removed
    /// words, [`MASK_COSINE_WIDTH`] for mask cosine, else the median of the non-zero instruction distances (scale-free for any text
    /// encoder).
    pub fn effective_kernel_width(&self, instruction_distances: &[f64]) -> f64 {
        if let Some(w) = self.kernel_width {
            return w;
        }
        match self.weighting {
            Weighting::RemovedWords => REMOVED_WORDS_WIDTH,
            Weighting::MaskCosine => MASK_COSINE_WIDTH,
            Weighting::TextWasserstein | Weighting::WordMovers => {
                let mut d: Vec<f64> =
                    instruction_distances.iter().copied().filter(|v| *v > 0.0 && v.is_finite()).collect();
                d.sort_by(f64::total_cmp);
                if d.is_empty() { 1.0 } else { d[d.len() / 2] }
            }
        }
    }

    /// The instruction distance samples are weighted by, if the method uses one.
    pub fn instruction_distance(&self) -> Option<Weighting> {
        self.method.weighting(self.weighting)
    }

    /// Whether the method needs the text tower (text-embedding or word-vector weights).
    fn needs_text(&self) -> bool {
        matches!(self.instruction_distance(), Some(Weighting::TextWasserstein | Weighting::WordMovers))
    }

    /// Whether the spatial maps are measured with LPIPS.
    fn spatial_lpips(&self) -> bool {
        self.spatial && self.spatial_space == SpatialSpace::Lpips
    }

    /// What these options need of the models besides the editor.
    pub fn needs(&self) -> Needs {
        Needs {
            image_encoder: self.space == Space::Embedding,
            text_encoder: self.needs_text(),
            lpips: self.space == Space::Lpips || self.spatial_lpips(),
            editor_seed: self.editor_seed,
        }
    }

    /// Checks options against each other and against the models at hand; errors name
    /// config fields ([`ConfigError`]).
    pub fn validate(&self, models: &Models) -> Result<()> {
        let bad = |field: &'static str, m: String| Err(Error::Config(ConfigError::new(field, m)));
        if self.space == Space::Embedding && models.image_encoder.is_none() {
            return bad(
                "space",
                "`space = embedding` needs an image encoder. Fix: give an `encoder` such as onnx/tiny-clip or set `space = pixels`"
                    .into(),
            );
        }
        if (self.space == Space::Lpips || self.spatial_lpips()) && models.lpips.is_none() {
            let field = if self.space == Space::Lpips { "space" } else { "spatial_space" };
            return bad(
                field,
                format!("`{field} = lpips` needs an LPIPS bundle. Fix: give `lpips` such as onnx/lpips-alex"),
            );
        }
        if self.needs_text() && models.text_encoder.is_none() {
            let (field, what) = match self.method {
                Method::SmilePaper => ("method", "`method = smile-paper` weights samples by word vectors, so it"),
                _ => ("weighting", "`weighting = text-wasserstein` (or `word-movers`)"),
            };
            return bad(
                field,
                format!(
                    "{what} needs a text encoder. Fix: give an `encoder` such as onnx/tiny-clip or use {}",
                    if self.method == Method::SmilePaper { "another `method`" } else { "`weighting = removed-words`" }
                ),
            );
        }
        if self.method == Method::SmilePaper && self.reference != Reference::Full {
            return bad(
                "method",
                "`method = smile-paper` fits 1 − MinMax(W1) to the original output. Fix: set `reference = full`".into(),
            );
        }
        if self.method != Method::Gsmile {
            let own = [
                ("kernel_width", self.kernel_width.is_some()),
                ("surrogate.ridge_alpha", self.surrogate.ridge_alpha.is_some()),
                ("surrogate.top_k", self.surrogate.top_k.is_some()),
            ];
            if let Some((field, _)) = own.iter().find(|(_, set)| *set) {
                return bad(
                    field,
                    format!(
                        "`{field}` tunes `method = gsmile`; `method = {}` fixes its own. Fix: drop `{field}` or use `method = gsmile`",
                        self.method.name()
                    ),
                );
            }
        }
        if self.auto && self.method == Method::KernelShap {
            return bad(
                "auto",
                "`method = kernel-shap` draws other coalitions for every budget, so adaptive rounds cannot reuse their edits. Fix: pick a fixed `samples` or use `method = gsmile`".into(),
            );
        }
        if self.auto && self.method == Method::Gsmile && self.strategy == Strategy::Exhaustive {
            return bad(
                "auto",
                "`strategy = exhaustive` measures every mask; an adaptive budget has nothing to adapt. Fix: drop `auto` or pick another `strategy`".into(),
            );
        }
        if self.auto && matches!(self.method, Method::Exact | Method::Banzhaf) {
            return bad(
                "auto",
                format!(
                    "`method = {}` measures every mask; an adaptive budget has nothing to adapt. Fix: drop `auto`",
                    self.method.name()
                ),
            );
        }
        if self.distance == Metric::PatchOt
            && (self.space != Space::Embedding || !models.image_encoder.as_ref().is_some_and(|e| e.has_tokens()))
        {
            return bad(
                "distance",
                "`distance = patch-ot` compares patch tokens, which only a features encoder gives. Fix: set `space = embedding` with an `encoder` such as onnx/tiny-dinov2, or use `distance = cosine`".into(),
            );
        }
        if self.space == Space::Embedding && self.distance == Metric::SlicedWasserstein {
            return bad(
                "distance",
                "`distance = sliced-wasserstein` works on pixels only. Fix: set `space = pixels` or `distance = wasserstein`"
                    .into(),
            );
        }
        if let Some(w) = self.kernel_width
            && !(w.is_finite() && w > 0.0)
        {
            return bad("kernel_width", format!("`kernel_width` must be a positive number (got {w})"));
        }
        if self.patch == 0 {
            return bad("patch", "`patch` must be at least 1".into());
        }
        if self.samples > MAX_SAMPLES {
            return bad(
                "samples",
                format!(
                    "`samples` is {}, more than the {MAX_SAMPLES} editor calls gsmile allows for one explanation (its masks, edits and bootstrap grow with it). Fix: ask for at most {MAX_SAMPLES}; `samples = auto` stops earlier on its own",
                    self.samples
                ),
            );
        }
        if let Some(a) = self.surrogate.ridge_alpha
            && !(a.is_finite() && a >= 0.0)
        {
            return bad(
                "surrogate.ridge_alpha",
                format!("`surrogate.ridge_alpha` must be a non-negative number (got {a})"),
            );
        }
        if !(self.surrogate.confidence > 0.0 && self.surrogate.confidence < 1.0) {
            return bad(
                "surrogate.confidence",
                format!("`surrogate.confidence` must be between 0 and 1 (got {})", self.surrogate.confidence),
            );
        }
        Ok(())
    }
}

fn secs(t: Instant) -> f64 {
    t.elapsed().as_secs_f64()
}

/// Edits one image with many instructions and measures the outputs, through the cache:
/// the model work shared by [`explain`] and the evaluator, so both compute identical targets.
pub struct Measurer<'m> {
    models: &'m Models,
    config: &'m ExplainConfig,
    run: &'m RunOptions,
    input: Array3<f32>,
    image_hash: String,
    edits_run: AtomicUsize,
}

impl<'m> Measurer<'m> {
    /// Prepares `image` at the editor's resolution.
    pub fn new(image: &RgbImage, models: &'m Models, config: &'m ExplainConfig, run: &'m RunOptions) -> Self {
        let (h, w) = models.editor.size();
        let input = imaging::resize_tensor(imaging::to_tensor(image).view(), h, w);
        let image_hash = cache::key_with_f32(&[], input.iter());
        Measurer { models, config, run, input, image_hash, edits_run: AtomicUsize::new(0) }
    }

    /// The input at the editor's resolution, `[3,H,W]`.
    pub fn input(&self) -> ArrayView3<'_, f32> {
        self.input.view()
    }

    /// Edits the editor actually ran so far (cache misses).
    pub fn edits_run(&self) -> usize {
        self.edits_run.load(Ordering::Relaxed)
    }

    /// The cache key of each text's edit: the editor's content hash and parameters (a
    /// worker's name and version among them), the image, the text and the seed.
    fn edit_keys(&self, texts: &[String]) -> Vec<String> {
        let params = self.models.editor.params();
        let seed = self.config.editor_seed.to_le_bytes();
        let sha = self.models.editor_info.sha256.as_bytes();
        texts
            .iter()
            .map(|t| cache::key(&[b"edit", sha, self.image_hash.as_bytes(), t.as_bytes(), &seed, params.as_bytes()]))
            .collect()
    }

    /// Edits of `texts`, served from the cache where possible, the rest in batches.
    pub fn edit(&self, texts: &[String], progress: &dyn Progress) -> Result<Array4<f32>> {
        let (c, h, w) = self.input.dim();
        let keys = self.edit_keys(texts);
        let mut out = Array4::zeros((texts.len(), c, h, w));
        let mut missing = Vec::new();
        for (i, hit) in cache_hits::<ndarray::Ix3>(&keys, self.run).into_iter().enumerate() {
            match hit {
                Some(a) if a.dim() == (c, h, w) => out.index_axis_mut(Axis(0), i).assign(&a),
                _ => missing.push(i),
            }
        }
        if !missing.is_empty() {
            // Models load on first use. New edits mean new images to embed too: load (and
            // check) every model the run will need now, so a broken encoder is reported
            // before the editor's work rather than after it.
            self.models.editor.prepare()?;
            if self.config.space == Space::Embedding
                && let Some(encoder) = &self.models.image_encoder
            {
                encoder.prepare_images()?;
            }
            if self.config.needs_text()
                && let Some(encoder) = &self.models.text_encoder
            {
                encoder.prepare_texts()?;
            }
        }
        // The bar counts editor calls only, so its rate and ETA are the editor's.
        progress.stage("editing", missing.len() as u64);
        let batch: Vec<&str> = missing.iter().map(|&i| texts[i].as_str()).collect();
        // An editor that says how much it takes at once (a worker: max_batch × concurrency) gets
        // that; --max-batch sizes in-process batches.
        let step = self.models.editor.batch_hint().unwrap_or(self.run.max_batch);
        crate::editor::edit_in_batches(&*self.models.editor, self.input.view(), &batch, step, |start, edited| {
            for (k, e) in edited.axis_iter(Axis(0)).enumerate() {
                let i = missing[start + k];
                out.index_axis_mut(Axis(0), i).assign(&e);
                if let Some(cache) = &self.run.cache {
                    cache.put(&keys[i], &e.to_owned().into_dyn());
                }
            }
            self.edits_run.fetch_add(edited.dim().0, Ordering::Relaxed);
            progress.advance(edited.dim().0 as u64);
            Ok(())
        })?;
        progress.finish();
        Ok(out)
    }

    fn encoder_info(&self) -> &ModelInfo {
        self.models.encoder_info.as_ref().unwrap_or(&self.models.editor_info)
    }

    /// Image embeddings, one cache entry per image.
    pub fn embed_images(&self, images: ArrayView4<f32>) -> Result<Array2<f32>> {
        let enc = self
            .models
            .image_encoder
            .as_deref()
            .ok_or_else(|| ConfigError::new("space", "`space = embedding` needs an image encoder"))?;
        if self.run.cache.is_none() {
            // Keys only address the cache; hashing every pixel without one is wasted work.
            return enc.embed_images(images);
        }
        let sha = self.encoder_info().sha256.as_bytes();
        // Hashing every pixel is most of a cached re-run's embedding time: spread it over cores.
        let keys: Vec<String> = (0..images.dim().0)
            .into_par_iter()
            .map(|i| cache::key_with_f32(&[b"image-embed", sha], images.index_axis(Axis(0), i).iter()))
            .collect();
        cached_rows(&keys, enc.dim(), self.run, |missing| enc.embed_images(images.select(Axis(0), missing).view()))
    }

    /// Text embeddings, one cache entry per text.
    pub fn embed_texts(&self, texts: &[String]) -> Result<Array2<f32>> {
        let enc = self
            .models
            .text_encoder
            .as_deref()
            .ok_or_else(|| ConfigError::new("weighting", "`weighting = text-wasserstein` needs a text encoder"))?;
        if self.run.cache.is_none() {
            let all: Vec<&str> = texts.iter().map(String::as_str).collect();
            return enc.embed_texts(&all);
        }
        let sha = self.encoder_info().sha256.as_bytes();
        let keys: Vec<String> = texts.iter().map(|t| cache::key(&[b"text-embed", sha, t.as_bytes()])).collect();
        cached_rows(&keys, enc.dim(), self.run, |missing| {
            let batch: Vec<&str> = missing.iter().map(|&i| texts[i].as_str()).collect();
            enc.embed_texts(&batch)
        })
    }

    /// Distance of each of `outputs` to `reference` in the configured space and metric.
    pub fn distances(&self, outputs: ArrayView4<f32>, reference: ArrayView3<f32>) -> Result<Vec<f64>> {
        let metric = self.config.distance;
        match self.config.space {
            Space::Embedding if metric == Metric::PatchOt => {
                let enc = self
                    .models
                    .image_encoder
                    .as_deref()
                    .ok_or_else(|| ConfigError::new("space", "`space = embedding` needs an image encoder"))?;
                // Token sets are T×D per image: computed here, not cached (the edits are).
                let tokens = enc.embed_tokens(outputs)?;
                let r = enc.embed_tokens(reference.insert_axis(Axis(0)))?;
                let r = r.index_axis(Axis(0), 0);
                (0..tokens.dim().0)
                    .map(|i| {
                        let d = distance::patch_ot(tokens.index_axis(Axis(0), i), r);
                        if d.is_finite() {
                            Ok(d)
                        } else {
                            Err(Error::InvalidInput(format!(
                                "patch-ot of output {i} is {d}: its tokens hold NaN or the sets differ in width"
                            )))
                        }
                    })
                    .collect()
            }
            Space::Embedding => {
                let emb = self.embed_images(outputs)?;
                let r = self.embed_images(reference.insert_axis(Axis(0)))?.row(0).to_vec();
                (0..emb.nrows())
                    .into_par_iter()
                    .map(|i| distance::between_vectors(metric, &emb.row(i).to_vec(), &r).map_err(Error::from))
                    .collect()
            }
            Space::Lpips => {
                let lpips = self.models.lpips.as_deref().ok_or_else(|| {
                    ConfigError::new("space", "`space = lpips` needs an LPIPS bundle (--lpips, e.g. onnx/lpips-alex)")
                })?;
                Ok(lpips.measure(outputs, reference)?.0)
            }
            Space::Pixels => (0..outputs.dim().0)
                .into_par_iter()
                .map(|i| {
                    distance::between_images(metric, outputs.index_axis(Axis(0), i), reference, self.config.seed)
                        .map_err(Error::from)
                })
                .collect(),
        }
    }
}

/// The cached array of each key, read in parallel (one small file each); `None` where
/// there is no cache, no entry, or an entry of another rank.
fn cache_hits<D: ndarray::Dimension>(keys: &[String], run: &RunOptions) -> Vec<Option<ndarray::Array<f32, D>>> {
    keys.par_iter()
        .map(|k| run.cache.as_ref().and_then(|c| c.get(k)).and_then(|a| a.into_dimensionality().ok()))
        .collect()
}

/// Rows of an embedding matrix, served from the cache where possible; `compute` embeds the
/// rows (by index) that were not cached.
fn cached_rows(
    keys: &[String],
    dim: usize,
    run: &RunOptions,
    compute: impl FnOnce(&[usize]) -> Result<Array2<f32>>,
) -> Result<Array2<f32>> {
    let mut out = Array2::zeros((keys.len(), dim));
    let mut missing = Vec::new();
    for (i, hit) in cache_hits::<ndarray::Ix1>(keys, run).into_iter().enumerate() {
        match hit {
            Some(a) if a.len() == dim => out.row_mut(i).assign(&a),
            _ => missing.push(i),
        }
    }
    if !missing.is_empty() {
        let emb = compute(&missing)?;
        for (k, &i) in missing.iter().enumerate() {
            out.row_mut(i).assign(&emb.row(k));
            if let Some(c) = &run.cache {
                c.put(&keys[i], &emb.row(k).to_owned().into_dyn());
            }
        }
    }
    Ok(out)
}

/// A full edit whose mean absolute pixel change to the input (values in `[0, 1]`) is below
/// this barely changes the image: its attributions explain noise, and the explanation says so.
pub const NO_EDIT_CHANGE: f64 = 0.002;

/// Mean absolute difference of two `[3,H,W]` images.
fn mean_abs_change(a: ArrayView3<f32>, b: ArrayView3<f32>) -> f64 {
    let n = a.len().max(1) as f64;
    a.iter().zip(b.iter()).map(|(x, y)| (x - y).abs() as f64).sum::<f64>() / n
}

/// Explains which words of `instruction` drove the edit of `image`.
///
/// The method ([`ExplainConfig::method`]) draws the masks, the editor runs once per distinct
/// perturbed instruction (through the cache), the outputs' distances and the instructions'
/// closeness are measured, and the method turns them into attributions; then the spatial
/// maps are fitted. With [`ExplainConfig::auto`] masks are drawn in rounds
/// ([`crate::method::adaptive`]).
pub fn explain(
    image: &RgbImage,
    image_info: ImageInfo,
    instruction: &str,
    models: &Models,
    config: &ExplainConfig,
    run: &RunOptions,
    progress: &dyn Progress,
) -> Result<ExplainRun> {
    let start = Instant::now();
    config.validate(models)?;
    models.editor.check_instruction(instruction)?;
    let words = perturb::split_words(instruction);
    if words.is_empty() {
        return Err(PerturbError::NoWords(instruction.to_string()).into());
    }
    let mut out = if config.auto {
        // Rounds re-read the edits of earlier rounds; without a cache they go through a
        // temporary one that lives as long as this call.
        let scratch = if run.cache.is_none() {
            Some(
                tempfile::tempdir()
                    .map_err(|e| Error::InvalidInput(format!("cannot create a scratch cache for `auto`: {e}")))?,
            )
        } else {
            None
        };
        let scratch_run;
        let run = match &scratch {
            Some(dir) => {
                scratch_run = RunOptions { cache: Some(ArrayCache::new(dir.path())), ..run.clone() };
                &scratch_run
            }
            None => run,
        };
        let rounds = crate::method::adaptive::rounds(words.len(), config.samples);
        let mut report =
            BudgetReport { rounds: Vec::new(), change_probability: Vec::new(), top: 0, stopped: String::new() };
        let mut last = None;
        let mut previous = None;
        let mut ran = 0;
        for (r, &budget) in rounds.iter().enumerate() {
            let final_round = r + 1 == rounds.len();
            let round = ExplainConfig { samples: budget, auto: false, spatial: false, ..config.clone() };
            let (run_out, evidence) =
                explain_budget(image, &image_info, instruction, &words, models, &round, run, progress)?;
            let top = crate::method::adaptive::TOP.min(words.len().saturating_sub(1)).max(1);
            let p =
                crate::method::adaptive::change_probability(config.method, &evidence.view(), &evidence.settings, top);
            let counts = run_out.explanation.counts;
            ran += counts.distinct_edits - counts.cached_edits;
            report.rounds.push(counts.distinct_edits);
            report.change_probability.push(p);
            report.top = top;
            let exhausted = (run_out.explanation.counts.distinct_edits as u64) >= perturb::mask_count(words.len());
            let settled = p < crate::method::adaptive::THRESHOLD;
            let attributions: Vec<f64> = run_out.explanation.words.iter().map(|w| w.attribution).collect();
            let leading = crate::method::adaptive::top_set(&attributions, top);
            let agreed = previous.as_ref() == Some(&leading);
            previous = Some(leading);
            last = Some((run_out, evidence));
            if settled || agreed || exhausted || final_round {
                report.stopped = if settled {
                    "settled"
                } else if agreed {
                    "agreed"
                } else if exhausted {
                    "exhausted"
                } else {
                    "budget"
                }
                .into();
                break;
            }
        }
        let (mut out, measured): (ExplainRun, Measured) = last.expect("at least one round");
        out.explanation.budget = Some(report);
        // Edits this call ran over all rounds; the rest came from the caller's cache.
        let counts = &mut out.explanation.counts;
        counts.cached_edits = counts.distinct_edits.saturating_sub(ran);
        if config.spatial {
            // The maps of the round that stopped, from the edits and weights it already has.
            let t = Instant::now();
            let grouping = Grouping { mask_of_sample: &measured.mask_of_sample, edit_of_mask: &measured.edit_of_mask };
            out.heatmaps = spatial_maps(config, models, &out, grouping)?;
            out.explanation.timings.spatial = secs(t);
        }
        out.explanation.config = config.clone();
        out
    } else {
        explain_budget(image, &image_info, instruction, &words, models, config, run, progress)?.0
    };
    out.explanation.timings.total = secs(start);
    Ok(out)
}

/// The samples an estimate was made from, kept for the adaptive budget's bootstrap and for
/// the spatial maps of the round it stops at.
struct Measured {
    /// Distinct mask of each sample, and the edit of each distinct mask.
    mask_of_sample: Vec<usize>,
    edit_of_mask: Vec<usize>,
    masks: Array2<f64>,
    distances: Vec<f64>,
    sign: f64,
    instruction_distances: Vec<f64>,
    settings: Settings,
}

impl Measured {
    fn view(&self) -> Evidence<'_> {
        Evidence {
            masks: self.masks.view(),
            distances: &self.distances,
            sign: self.sign,
            instruction_distances: &self.instruction_distances,
        }
    }
}

/// The samples of one budget and the perturbed instructions they need edited.
struct Perturbed {
    /// One mask per sample.
    masks: Vec<Vec<bool>>,
    /// The distinct masks, and the distinct mask of each sample.
    distinct: Vec<Vec<bool>>,
    of_distinct: Vec<usize>,
    /// The distinct perturbed instructions (row 0 the full one), and the text of each distinct mask.
    texts: Vec<String>,
    text_of_distinct: Vec<usize>,
}

/// Draws `config.samples` masks and renders them: the editor runs once per distinct
/// perturbed instruction, so masks are grouped first, then the masks that render the same
/// text (a repeated word, say) share one edit.
fn perturbed(instruction: &str, words: &[Word], config: &ExplainConfig) -> Result<Perturbed> {
    let strategy = config.method.strategy(config.strategy);
    let masks =
        perturb::sample_masks(words.len(), config.samples, strategy, perturb::mask_seed(config.seed, instruction))?;
    let (distinct, of_distinct) = perturb::distinct(&masks);
    let rendered: Vec<String> =
        distinct.iter().map(|m| perturb::render(instruction, words, m, config.replacement.as_deref())).collect();
    let (texts, text_of_distinct) = perturb::distinct_texts(rendered);
    Ok(Perturbed { masks, distinct, of_distinct, texts, text_of_distinct })
}

/// The editor calls an explanation will make, known before the first: its distinct
/// perturbed instructions and which of them the cache already holds ([`plan`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallPlan {
    /// The distinct perturbed instructions the run may edit, the full instruction first.
    pub instructions: Vec<String>,
    /// Whether the cache holds each one's edit.
    pub cached: Vec<bool>,
    /// Whether the run may stop before it needs them all (`auto` budgets: the plan counts
    /// every round, and the run often stops earlier).
    pub upper_bound: bool,
}

impl CallPlan {
    /// Editor calls the run needs (at most, for an upper bound): the instructions not cached.
    pub fn calls(&self) -> usize {
        self.cached.iter().filter(|&&c| !c).count()
    }
}

/// The editor calls [`explain`] would make for these arguments, without making any: the
/// masks are drawn and rendered as the run draws them and the cache is looked up.
pub fn plan(
    image: &RgbImage,
    instruction: &str,
    models: &Models,
    config: &ExplainConfig,
    run: &RunOptions,
) -> Result<CallPlan> {
    config.validate(models)?;
    models.editor.check_instruction(instruction)?;
    let words = perturb::split_words(instruction);
    if words.is_empty() {
        return Err(PerturbError::NoWords(instruction.to_string()).into());
    }
    let budgets =
        if config.auto { crate::method::adaptive::rounds(words.len(), config.samples) } else { vec![config.samples] };
    let mut instructions: Vec<String> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for budget in budgets {
        let round = ExplainConfig { samples: budget, auto: false, ..config.clone() };
        let perturbed = perturbed(instruction, &words, &round)?;
        refuse_before_editing(&round, words.len(), perturbed.distinct.len())?;
        for text in perturbed.texts {
            if seen.insert(text.clone()) {
                instructions.push(text);
            }
        }
    }
    let measurer = Measurer::new(image, models, config, run);
    let keys = measurer.edit_keys(&instructions);
    let (c, h, w) = measurer.input.dim();
    let cached =
        cache_hits::<ndarray::Ix3>(&keys, run).into_iter().map(|a| a.is_some_and(|a| a.dim() == (c, h, w))).collect();
    Ok(CallPlan { instructions, cached, upper_bound: config.auto })
}

/// The refusals a budget earns before any editor call: too few words for the method, too
/// many for the word mover's distance, too few distinct samples to fit; shared by [`plan`],
/// so a dry run fails where the run would.
fn refuse_before_editing(config: &ExplainConfig, d: usize, distinct: usize) -> Result<()> {
    if config.method == Method::SmilePaper && d < 3 {
        return Err(Error::Config(ConfigError::new(
            "method",
            format!(
                "`method = smile-paper` keeps at least two words in every sample, so {d} words leave too few samples to fit. Fix: use `method = exact`"
            ),
        )));
    }
    if config.instruction_distance() == Some(Weighting::WordMovers) && d > distance::WORD_MOVERS_MAX_WORDS {
        return Err(Error::Config(ConfigError::new(
            "weighting",
            format!(
                "the word mover's distance is solved exactly for up to {} words; this instruction has {d}. Fix: use `weighting = removed-words` or another `method`",
                distance::WORD_MOVERS_MAX_WORDS
            ),
        )));
    }
    // A linear fit of d words and an intercept needs d + 1 distinct samples; exact methods
    // measure every mask and need no fit. Refused before any editor call is spent.
    if !matches!(config.method, Method::Exact | Method::Banzhaf) && distinct < d + 1 {
        return Err(PerturbError::TooFewDistinct { distinct, words: d }.into());
    }
    Ok(())
}

/// One explanation at a fixed budget of `config.samples` editor calls.
#[allow(clippy::too_many_arguments)]
fn explain_budget(
    image: &RgbImage,
    image_info: &ImageInfo,
    instruction: &str,
    words: &[Word],
    models: &Models,
    config: &ExplainConfig,
    run: &RunOptions,
    progress: &dyn Progress,
) -> Result<(ExplainRun, Measured)> {
    let start = Instant::now();
    let d = words.len();
    let Perturbed { masks, distinct, of_distinct, texts, text_of_distinct } = perturbed(instruction, words, config)?;
    let of_sample: Vec<usize> = of_distinct.iter().map(|&m| text_of_distinct[m]).collect();
    refuse_before_editing(config, d, distinct.len())?;
    // A representative mask per edit (the first that rendered it), for mask-based weights.
    let mut edit_masks: Vec<&[bool]> = vec![&[]; texts.len()];
    for (m, &t) in text_of_distinct.iter().enumerate().rev() {
        edit_masks[t] = &distinct[m];
    }

    // Edits.
    let t = Instant::now();
    let measurer = Measurer::new(image, models, config, run);
    let edits = measurer.edit(&texts, progress)?;
    let cached = texts.len() - measurer.edits_run();
    let editor_time = secs(t);

    // Output distances (embedding time is counted as encoder time).
    let t = Instant::now();
    let input = measurer.input().to_owned();
    let reference = match config.reference {
        Reference::Full => edits.index_axis(Axis(0), 0).to_owned(),
        Reference::Input => input.clone(),
    };
    let distances = measurer.distances(edits.view(), reference.view())?;
    let mut encoder_time = if config.space == Space::Embedding { secs(t) } else { 0.0 };
    let sign = config.reference.target_sign();

    // Instruction distances, per edit.
    let te = Instant::now();
    let instruction_distances: Vec<f64> = match config.instruction_distance() {
        Some(Weighting::TextWasserstein) => {
            let emb = measurer.embed_texts(&texts)?;
            let full = emb.row(0).to_vec();
            emb.axis_iter(Axis(0)).map(|e| distance::wasserstein_1d(&e.to_vec(), &full)).collect()
        }
        Some(Weighting::WordMovers) => {
            let word_texts: Vec<String> = words.iter().map(|w| w.text.clone()).collect();
            let vectors: Vec<Vec<f32>> = measurer.embed_texts(&word_texts)?.outer_iter().map(|r| r.to_vec()).collect();
            edit_masks.par_iter().map(|m| distance::word_movers(&vectors, m)).collect()
        }
        Some(Weighting::MaskCosine) => edit_masks.iter().map(|m| distance::mask_cosine(m)).collect(),
        Some(Weighting::RemovedWords) => edit_masks.iter().map(|m| m.iter().filter(|&&k| !k).count() as f64).collect(),
        None => vec![0.0; texts.len()],
    };
    if config.needs_text() {
        encoder_time += secs(te);
    }
    let width = config.effective_kernel_width(&instruction_distances);
    let distance_time = secs(t) - encoder_time;
    if config.method == Method::Gsmile {
        // A kernel so narrow that fewer than d + 1 distinct samples keep any weight cannot fit.
        let weighted =
            instruction_distances.iter().filter(|&&x| crate::surrogate::exponential_kernel(x, width) > 1e-12).count();
        if weighted < d + 1 {
            return Err(Error::Config(ConfigError::new(
                "kernel_width",
                format!(
                    "the kernel (`kernel_width` {width}) leaves {weighted} of {} distinct samples any weight, and a fit of {d} words needs {}. Fix: raise `samples` (samples that remove many words weigh almost nothing) or `kernel_width`",
                    texts.len(),
                    d + 1
                ),
            )));
        }
    }

    // Attribution.
    let t = Instant::now();
    let n = masks.len();
    let x = Array2::from_shape_fn((n, d), |(i, k)| if masks[i][k] { 1.0 } else { 0.0 });
    let mut surrogate_config = config.surrogate.clone();
    surrogate_config.seed = config.seed;
    let measured = Measured {
        mask_of_sample: of_distinct.clone(),
        edit_of_mask: text_of_distinct.clone(),
        masks: x.clone(),
        distances: of_sample.iter().map(|&e| distances[e]).collect(),
        sign,
        instruction_distances: of_sample.iter().map(|&e| instruction_distances[e]).collect(),
        settings: Settings { surrogate: surrogate_config, kernel_width: width, smile_target: config.smile_target },
    };
    let fit: Attribution = config.method.attribute(&measured.view(), &measured.settings)?;
    let surrogate_time = secs(t);

    // SMILE reports a bootstrap p-value for each sample's W1 to the original output.
    let distance_p: Option<Vec<f64>> = if config.method == Method::SmilePaper && config.space == Space::Embedding {
        let emb = measurer.embed_images(edits.view())?;
        let full = emb.row(0).to_vec();
        Some(
            (0..emb.nrows())
                .into_par_iter()
                .map(|i| {
                    let seed = config.seed.wrapping_add(i as u64);
                    distance::wasserstein_p_value(
                        &emb.row(i).to_vec(),
                        &full,
                        crate::method::smile_paper::P_VALUE_RESAMPLES,
                        seed,
                    )
                })
                .collect(),
        )
    } else {
        None
    };

    let mut order: Vec<usize> = (0..d).collect();
    order.sort_by(|&a, &b| fit.coefficients[b].abs().total_cmp(&fit.coefficients[a].abs()).then(a.cmp(&b)));
    let mut rank = vec![0; d];
    for (r, &k) in order.iter().enumerate() {
        rank[k] = r + 1;
    }
    // The unit of the shares: the measured change between the empty and the full instruction.
    let empty_row = masks.iter().position(|m| m.iter().all(|&k| !k));
    let (edit_change, edit_change_measured) = match empty_row {
        Some(e) => (fit.targets[0] - fit.targets[e], true),
        None => (fit.coefficients.iter().sum(), false),
    };
    let share = |a: f64| if edit_change.abs() > f64::EPSILON { a / edit_change } else { f64::NAN };
    let one_word = d == 1;
    let word_attributions: Vec<WordAttribution> = words
        .iter()
        .enumerate()
        .map(|(k, word)| WordAttribution {
            word: word.clone(),
            attribution: fit.coefficients[k],
            ci_low: if one_word { f64::NAN } else { fit.intervals[k].0 },
            ci_high: if one_word { f64::NAN } else { fit.intervals[k].1 },
            p_value: if one_word { f64::NAN } else { fit.p_values[k] },
            share: share(fit.coefficients[k]),
            rank: rank[k],
            selected: fit.selected[k],
        })
        .collect();
    let samples = (0..n)
        .map(|i| SampleRecord {
            mask: masks[i].iter().map(|&b| if b { '1' } else { '0' }).collect(),
            instruction: texts[of_sample[i]].clone(),
            distance: distances[of_sample[i]],
            target: fit.targets[i],
            weight: fit.weights[i],
            instruction_distance: instruction_distances[of_sample[i]],
            prediction: fit.predictions[i],
            distance_p_value: distance_p.as_ref().map(|p| p[of_sample[i]]),
        })
        .collect();

    // Warnings: what limits the explanation's meaning.
    let mut warnings = Vec::new();
    let word_texts: Vec<&str> = words.iter().map(|w| w.text.as_str()).collect();
    let unknown: Vec<&str> = models
        .editor
        .unknown_words(&word_texts)
        .iter()
        .zip(&word_texts)
        .filter(|(u, _)| **u)
        .map(|(_, w)| *w)
        .collect();
    if !unknown.is_empty() {
        warnings.push(Warning {
            code: "unknown-words".into(),
            message: format!(
                "the editor's tokenizer does not know {}: it sees them as its unknown token, so their attributions (and the edit) say little. Fix: rephrase with words the editor knows",
                unknown.iter().map(|w| format!("\"{w}\"")).collect::<Vec<_>>().join(", ")
            ),
        });
    }
    let change = mean_abs_change(edits.index_axis(Axis(0), 0), input.view());
    if change < NO_EDIT_CHANGE {
        warnings.push(Warning {
            code: "no-edit".into(),
            message: format!(
                "the full instruction barely changes the image (mean pixel change {:.2} %, below {:.2} %): the editor may not carry it out on this image, and the attributions then explain noise",
                100.0 * change,
                100.0 * NO_EDIT_CHANGE
            ),
        });
    }
    if one_word {
        warnings.push(Warning {
            code: "one-word".into(),
            message: "the instruction has one word: its attribution is the whole edit's change, with nothing to compare it with, so it has no interval or p-value".into(),
        });
    }

    let weights = Array1::from(fit.weights.clone());
    let explanation = Explanation {
        schema: SCHEMA.to_string(),
        gsmile_version: env!("CARGO_PKG_VERSION").to_string(),
        instruction: instruction.to_string(),
        image: image_info.clone(),
        editor: models.editor_info.clone(),
        encoder: models.encoder_info.clone(),
        lpips: models.lpips_info.clone(),
        config: config.clone(),
        kernel_width: match config.method {
            Method::Gsmile => width,
            Method::Lime => crate::method::lime::KERNEL_WIDTH,
            Method::SmilePaper => crate::method::smile_paper::SIGMA,
            Method::KernelShap | Method::Exact | Method::Banzhaf => f64::NAN,
        },
        words: word_attributions,
        intercept: fit.intercept,
        edit_change,
        edit_change_measured,
        exact: fit.exact,
        warnings,
        budget: None,
        fidelity: Fidelity { r2: fit.r2, mse: fit.mse },
        samples,
        counts: Counts { words: d, samples: n, distinct_edits: texts.len(), cached_edits: cached },
        timings: Timings {
            editor: editor_time,
            encoder: encoder_time,
            distance: distance_time,
            surrogate: surrogate_time,
            spatial: 0.0,
            total: secs(start),
        },
    };
    let mut run = ExplainRun {
        explanation,
        input,
        edits,
        edit_instructions: texts,
        edit_distances: distances,
        masks: x,
        weights,
        edit_of_sample: of_sample,
        heatmaps: None,
    };
    if config.spatial {
        let t = Instant::now();
        let grouping = Grouping { mask_of_sample: &of_distinct, edit_of_mask: &text_of_distinct };
        run.heatmaps = spatial_maps(config, models, &run, grouping)?;
        run.explanation.timings.spatial = secs(t);
        run.explanation.timings.total = secs(start);
    }
    Ok((run, measured))
}

/// Which distinct mask each sample is and which edit each distinct mask has: the spatial fit
/// merges repeated masks into weighted rows.
#[derive(Clone, Copy)]
struct Grouping<'a> {
    mask_of_sample: &'a [usize],
    edit_of_mask: &'a [usize],
}

/// Spatial maps: the run's weighted fit for every pixel of the change maps.
fn spatial_maps(
    config: &ExplainConfig,
    models: &Models,
    run: &ExplainRun,
    grouping: Grouping<'_>,
) -> Result<Option<Array3<f32>>> {
    let spatial_reference = match config.spatial_reference {
        Reference::Input => run.input.view(),
        Reference::Full => run.edits.index_axis(Axis(0), 0),
    };
    let samples = spatial::Samples {
        edits: run.edits.view(),
        mask_of_sample: grouping.mask_of_sample,
        edit_of_mask: grouping.edit_of_mask,
        masks: run.masks.view(),
        weights: run.weights.view(),
    };
    let sign = config.spatial_reference.target_sign();
    let alpha = config.surrogate.ridge_alpha;
    match config.spatial_space {
        SpatialSpace::Pixels => {
            let change = spatial::ChangeMaps::Pixels(spatial_reference);
            Ok(spatial::heatmaps(samples, change, sign, config.patch, alpha)?)
        }
        SpatialSpace::Lpips => {
            let lpips = models.lpips.as_deref().ok_or_else(|| {
                ConfigError::new("spatial_space", "`spatial_space = lpips` needs an LPIPS bundle (--lpips)")
            })?;
            if run.edits.dim().0 == 0 {
                return Ok(None);
            }
            let maps = lpips.change_maps(run.edits.view(), spatial_reference)?;
            Ok(spatial::heatmaps(samples, spatial::ChangeMaps::Given(maps.view()), sign, config.patch, alpha)?)
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use ndarray::ArrayView4;

    use super::*;
    use crate::editor::Editor;

    /// Brightens the image by 0.1 per word it is given: every word matters equally.
    struct Brighten;

    impl Editor for Brighten {
        fn name(&self) -> &str {
            "brighten"
        }
        fn size(&self) -> (u32, u32) {
            (8, 8)
        }
        fn check_instruction(&self, _: &str) -> Result<()> {
            Ok(())
        }
        fn edit(&self, images: ArrayView4<f32>, instructions: &[&str]) -> Result<Array4<f32>> {
            let mut out = images.to_owned();
            for (mut img, text) in out.axis_iter_mut(Axis(0)).zip(instructions) {
                let words = text.split_whitespace().count() as f32;
                img.mapv_inplace(|v| (v + 0.1 * words).min(1.0));
            }
            Ok(out)
        }
    }

    fn models() -> Models {
        let info = ModelInfo {
            name: "brighten".into(),
            kind: String::new(),
            path: "-".into(),
            sha256: "-".into(),
            params: Default::default(),
        };
        Models {
            editor: Arc::new(Brighten),
            editor_info: info,
            image_encoder: None,
            text_encoder: None,
            encoder_info: None,
            lpips: None,
            lpips_info: None,
        }
    }

    fn pixels() -> ExplainConfig {
        ExplainConfig {
            samples: 16,
            space: Space::Pixels,
            weighting: Weighting::MaskCosine,
            ..ExplainConfig::default()
        }
    }

    fn run(config: &ExplainConfig) -> Result<ExplainRun> {
        let image = RgbImage::from_pixel(8, 8, image::Rgb([20, 20, 20]));
        let info = ImageInfo { path: "-".into(), sha256: String::new(), width: 8, height: 8 };
        explain(&image, info, "make it bright", &models(), config, &RunOptions::default(), &NoProgress)
    }

    #[test]
    fn explain_computes_the_spatial_maps_unless_the_config_turns_them_off() {
        let with = run(&pixels()).unwrap();
        let maps = with.heatmaps.as_ref().unwrap();
        assert_eq!(maps.dim(), (3, 8, 8));
        assert!(with.explanation.timings.spatial > 0.0);
        let without = run(&ExplainConfig { spatial: false, ..pixels() }).unwrap();
        assert!(without.heatmaps.is_none());
        assert_eq!(without.explanation.timings.spatial, 0.0);
        assert_eq!(with.explanation.words, without.explanation.words, "maps do not change attributions");
    }

    #[test]
    fn auto_maps_are_those_of_the_round_it_stops_at() {
        let auto = run(&ExplainConfig { auto: true, samples: 8, ..pixels() }).unwrap();
        let report = auto.explanation.budget.clone().unwrap();
        let calls = *report.rounds.last().unwrap();
        let fixed = run(&ExplainConfig { samples: calls, ..pixels() }).unwrap();
        assert!(auto.heatmaps.is_some());
        assert_eq!(auto.heatmaps, fixed.heatmaps, "stopped after {:?} ({})", report.rounds, report.stopped);
        assert_eq!(auto.explanation.words, fixed.explanation.words);
    }

    #[test]
    fn validation_errors_name_the_config_field() {
        let field = |config: ExplainConfig| match run(&config) {
            Err(Error::Config(e)) => {
                assert!(e.message.contains(&format!("`{}", e.field)), "{e}");
                e.field
            }
            other => panic!("expected a config error, got {:?}", other.map(|r| r.explanation.words)),
        };
        assert_eq!(field(ExplainConfig { space: Space::Embedding, ..pixels() }), "space");
        assert_eq!(field(ExplainConfig { weighting: Weighting::TextWasserstein, ..pixels() }), "weighting");
        assert_eq!(field(ExplainConfig { kernel_width: Some(-1.0), ..pixels() }), "kernel_width");
        assert_eq!(field(ExplainConfig { patch: 0, ..pixels() }), "patch");
        let mut ridge = pixels();
        ridge.surrogate.ridge_alpha = Some(f64::NAN);
        assert_eq!(field(ridge), "surrogate.ridge_alpha");
    }

    #[test]
    fn masks_that_render_the_same_text_share_one_edit() {
        let image = RgbImage::from_pixel(8, 8, image::Rgb([20, 20, 20]));
        let info = ImageInfo { path: "-".into(), sha256: String::new(), width: 8, height: 8 };
        let config = ExplainConfig { strategy: perturb::Strategy::Exhaustive, samples: 8, ..pixels() };
        let run =
            explain(&image, info, "red red car", &models(), &config, &RunOptions::default(), &NoProgress).unwrap();
        // 8 masks, but 110/101 → "red red"/"red car" and 011 → "red car", 100/010 → "red".
        assert_eq!(run.explanation.counts.samples, 8);
        assert_eq!(run.explanation.counts.distinct_edits, 6);
        assert_eq!(run.edit_instructions.len(), 6);
        let texts: std::collections::HashSet<&str> = run.edit_instructions.iter().map(String::as_str).collect();
        assert_eq!(texts.len(), 6, "{:?}", run.edit_instructions);
        for (i, s) in run.explanation.samples.iter().enumerate() {
            assert_eq!(s.instruction, run.edit_instructions[run.edit_of_sample[i]]);
        }
        assert!(run.heatmaps.is_some(), "the spatial fit keeps distinct masks as distinct rows");
    }

    #[test]
    fn needs_follow_the_space_and_the_weighting() {
        let n = ExplainConfig::default().needs();
        assert!(n.image_encoder && !n.text_encoder, "the default weights by removed words");
        let n = ExplainConfig { weighting: Weighting::TextWasserstein, ..ExplainConfig::default() }.needs();
        assert!(n.text_encoder);
        let n = ExplainConfig { method: Method::SmilePaper, ..ExplainConfig::default() }.needs();
        assert!(n.text_encoder, "smile-paper weights by word vectors");
        let n =
            ExplainConfig { method: Method::Lime, weighting: Weighting::TextWasserstein, ..ExplainConfig::default() }
                .needs();
        assert!(!n.text_encoder, "lime ignores gsmile's weighting");
        let n = ExplainConfig { editor_seed: 7, ..pixels() }.needs();
        assert!(!n.image_encoder && !n.text_encoder);
        assert_eq!(n.editor_seed, 7);
    }
}
