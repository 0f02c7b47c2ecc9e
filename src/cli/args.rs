//! The command line's clap structs: the commands, their arguments, and the flag groups
//! several commands share. Turning them into library settings is [`super::settings`]' job.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use gsmile::distance::{Metric, Reference};
use gsmile::editor::DiffusionSettings;
use gsmile::explain::{Method, SmileTarget, Space, SpatialSpace, Weighting};
use gsmile::perturb::Strategy;

/// Explain instruction-based image editors: which words of an instruction caused which change.
#[derive(Parser)]
#[command(name = "gsmile", version, about, long_about = None, propagate_version = true)]
pub struct Cli {
    /// Options every command takes.
    #[command(flatten)]
    pub global: Global,
    /// The command to run.
    #[command(subcommand)]
    pub command: Command,
}

/// Options every command takes.
#[derive(Args)]
pub struct Global {
    /// ONNX Runtime intra-op threads per model (0 = all cores; at most 1024).
    #[arg(long, global = true, default_value_t = 0, value_name = "N", value_parser = bounded::<0, MAX_THREADS>)]
    pub threads: usize,
    /// Most pixels an input image may have; larger ones are refused before they are decoded.
    #[arg(long, global = true, default_value_t = gsmile::imaging::DEFAULT_MAX_PIXELS, value_name = "N")]
    pub max_pixels: u64,
    /// Print nothing but errors.
    #[arg(short, long, global = true)]
    pub quiet: bool,
}

impl Global {
    /// The ONNX Runtime options these flags ask for.
    pub fn runtime(&self) -> gsmile::runtime::RuntimeOptions {
        gsmile::runtime::RuntimeOptions { threads: self.threads }
    }
}

/// Most `--threads`: beyond the cores of any machine gsmile runs on; more only costs memory.
const MAX_THREADS: usize = 1024;

/// Most `--max-batch`: a batch's images are held in memory together.
const MAX_BATCH: usize = 4096;

/// Parses a whole number in `LOW..=HIGH`, saying the range when it is outside.
fn bounded<const LOW: usize, const HIGH: usize>(s: &str) -> Result<usize, String> {
    let n: usize = s.trim().parse().map_err(|_| format!("{s:?} is not a whole number"))?;
    if (LOW..=HIGH).contains(&n) { Ok(n) } else { Err(format!("{n} is outside {LOW}..={HIGH}")) }
}

/// The commands; each runs from its own file in `commands/`.
#[derive(Subcommand)]
pub enum Command {
    /// Explain which words of an instruction drove an edit, and where (gSMILE).
    ///
    /// Writes explanation.json, words.png, overlays/, overlays.png, samples.png and report.html
    /// into --out, and prints a ranked table of words.
    ///
    /// Example: gsmile explain --image assets/scene-01.png --instruction "please make the car red" --out outputs/car-red
    Explain(Box<ExplainArgs>),
    /// Evaluate explanation quality over a scenario suite: accuracy, fidelity, stability,
    /// consistency and faithfulness, per scenario and per ODD slice.
    ///
    /// Resumable: every finished scenario is saved; run the same command again to continue.
    ///
    /// Example: gsmile evaluate --suite scenarios/odd-world --out outputs/eval
    Evaluate(Box<EvaluateArgs>),
    /// Combine the outputs of `gsmile evaluate --shard i/n` runs into one set of tables.
    Merge(MergeArgs),
    /// Evaluate several editors on the same suite and compare them slice by slice.
    ///
    /// Writes one evaluation per editor into <out>/<editor name>/ and the comparison at the top of --out.
    ///
    /// Example: gsmile compare --suite scenarios/odd-world --editor onnx/tiny-editor --editor onnx/tiny-editor-bow --out outputs/compare
    Compare(Box<CompareArgs>),
    /// Edit an image with an instruction using an editor bundle.
    ///
    /// Example: gsmile edit --image assets/scene-01.png --instruction "make the car red" --editor onnx/tiny-editor --out outputs/red-car.png
    Edit(EditArgs),
    /// Embed images and/or texts with a CLIP-style encoder bundle; prints JSON.
    ///
    /// With both --image and --text, also prints the cosine similarity of every image to every text.
    Embed(EmbedArgs),
    /// List model bundles with their contracts, checking each against its ONNX graphs.
    Models(ModelsArgs),
    /// Look after a cache folder kept across runs: its size, damaged entries, old entries.
    ///
    /// Only files named as cache entries are ever read or removed.
    ///
    /// Example: gsmile cache prune --older-than 30d
    Cache(CacheArgs),
}

/// `--editor`: the editor bundle.
#[derive(Args)]
pub struct EditorArg {
    /// Editor bundle folder (a one-step editor or an InstructPix2Pix export).
    #[arg(long, value_name = "DIR", default_value = "onnx/tiny-editor")]
    pub editor: PathBuf,
}

/// `--encoder`: the CLIP-style encoder bundle.
#[derive(Args)]
pub struct EncoderArg {
    /// Encoder bundle folder: kind = "clip" embeds images and texts, kind = "features" (e.g. onnx/tiny-dinov2) images only.
    #[arg(long, value_name = "DIR", default_value = "onnx/tiny-clip")]
    pub encoder: PathBuf,
    /// LPIPS bundle folder (kind = "lpips") for `--space lpips` and `--spatial-space lpips`.
    #[arg(long, value_name = "DIR", default_value = "onnx/lpips-alex")]
    pub lpips: PathBuf,
}

/// `--editor` and `--encoder`: the models an explanation runs.
#[derive(Args)]
pub struct ModelArgs {
    /// The editor bundle.
    #[command(flatten)]
    pub editor: EditorArg,
    /// The encoder bundle.
    #[command(flatten)]
    pub encoder: EncoderArg,
}

/// `--out DIR` and `--force`: the output folder gsmile writes.
#[derive(Args)]
pub struct OutDirArgs {
    /// Output folder; written atomically (evaluate: a killed run resumes here).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Replace --out if it exists (evaluate, compare: discard results made with other options).
    #[arg(long)]
    pub force: bool,
}

/// `--image` and `--instruction`: the pair to edit or explain.
#[derive(Args)]
pub struct InputArgs {
    /// Input image (PNG or JPEG).
    #[arg(long, value_name = "FILE")]
    pub image: PathBuf,
    /// Editing instruction, e.g. "make the car red".
    #[arg(long, value_name = "TEXT")]
    pub instruction: String,
}

/// Options that change speed and memory, never the numbers.
#[derive(Args)]
pub struct RunArgs {
    /// Most images per editor call; for diffusion editors, most UNet rows per call (samples × 3 guidance branches).
    #[arg(long, default_value_t = 32, value_name = "N", value_parser = bounded::<1, MAX_BATCH>)]
    pub max_batch: usize,
    /// Cache folder for edits and embeddings.
    #[arg(long, default_value = "outputs/.cache", value_name = "DIR")]
    pub cache: PathBuf,
    /// Do not read or write the cache.
    #[arg(long)]
    pub no_cache: bool,
    /// Requests in flight at once to an editor behind an HTTP endpoint (default: the bundle's `http.concurrency`).
    #[arg(long, value_name = "N", value_parser = bounded::<1, 256>)]
    pub concurrency: Option<usize>,
}

/// Parses a kebab-case option value into a library enum through its serde names.
/// A budget: a number of editor calls, or `auto`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Samples {
    /// This many calls.
    Fixed(usize),
    /// The adaptive budget.
    Auto,
}

fn samples_spec(s: &str) -> Result<Samples, String> {
    match s.trim() {
        "auto" => Ok(Samples::Auto),
        n => n.parse().ok().filter(|&n| n <= gsmile::explain::MAX_SAMPLES).map(Samples::Fixed).ok_or_else(|| {
            format!(
                "{n:?} is not a number of samples up to {} or `auto`; e.g. 64, auto or 16,32,64",
                gsmile::explain::MAX_SAMPLES
            )
        }),
    }
}

fn kebab<T: serde::de::DeserializeOwned>(s: &str) -> Result<T, String> {
    serde_json::from_value(serde_json::Value::String(s.to_string())).map_err(|e| e.to_string())
}

/// `gsmile explain`.
#[derive(Args)]
pub struct ExplainArgs {
    /// The image and the instruction.
    #[command(flatten)]
    pub input: InputArgs,
    /// The editor and encoder bundles.
    #[command(flatten)]
    pub models: ModelArgs,
    /// Where the output goes.
    #[command(flatten)]
    pub out: OutDirArgs,
    /// The explanation method's options.
    #[command(flatten)]
    pub method: MethodArgs,
    /// Speed and memory options.
    #[command(flatten)]
    pub run: RunArgs,
    /// Print explanation.json to standard output instead of the table.
    #[arg(long)]
    pub json: bool,
    /// Print the perturbed instructions and the editor calls they need, and stop: no edit is made, nothing is written.
    #[arg(long)]
    pub dry_run: bool,
    /// Refuse, before the first call, a run that needs more than N editor calls after the cache.
    #[arg(long, value_name = "N")]
    pub max_calls: Option<usize>,
}

/// Options of the explanation method: everything that changes an explanation's numbers.
#[derive(Args)]
pub struct MethodArgs {
    /// Explanation method: gsmile (default), lime, kernel-shap, exact, banzhaf or smile-paper.
    /// `evaluate` takes it more than once to compare methods on the same edits.
    #[arg(long = "method", default_value = "gsmile", value_parser = kebab::<Method>, value_name = "NAME")]
    pub methods: Vec<Method>,
    /// Editor calls to spend (distinct perturbed instructions, the full one included), or
    /// `auto` to draw in rounds until the leading words are settled (at most --max-samples).
    /// `evaluate` takes a list, e.g. 16,32,64, to sweep budgets.
    #[arg(long = "samples", default_value = "64", value_parser = samples_spec, value_delimiter = ',', value_name = "N|auto")]
    pub samples: Vec<Samples>,
    /// The most editor calls `--samples auto` may spend.
    #[arg(long, default_value_t = 128, value_name = "N", value_parser = bounded::<1, { gsmile::explain::MAX_SAMPLES }>)]
    pub max_samples: usize,
    /// Seed of the masks and the bootstrap; equal seeds give equal results.
    #[arg(long, default_value_t = 0, value_name = "S")]
    pub seed: u64,
    /// gsmile's mask sampler: levels (default), lime, kernel-shap, half or exhaustive (needs --samples ≥ 2^words).
    #[arg(long, default_value = "levels", value_parser = kebab::<Strategy>, value_name = "NAME")]
    pub strategy: Strategy,
    /// smile-paper's target: min-max (1 − MinMax(W1)) or inverse (1 / (W1 + ε)).
    #[arg(long, default_value = "min-max", value_parser = kebab::<SmileTarget>, value_name = "FORM")]
    pub smile_target: SmileTarget,
    /// Replace removed words with this token instead of dropping them.
    #[arg(long, value_name = "TOKEN")]
    pub replace: Option<String>,
    /// Compare outputs with the full instruction's edit (full) or the unedited input (input).
    #[arg(long, default_value = "full", value_parser = kebab::<Reference>, value_name = "REF")]
    pub reference: Reference,
    /// Measure change on image embeddings (embedding), pixel distributions (pixels) or perceptually with LPIPS (lpips, see --lpips).
    #[arg(long, default_value = "embedding", value_parser = kebab::<Space>, value_name = "SPACE")]
    pub space: Space,
    /// Distance: wasserstein, sliced-wasserstein (pixels), ks, cosine, or patch-ot (optimal
    /// transport between patch tokens; a features encoder such as onnx/tiny-dinov2).
    #[arg(long, default_value = "wasserstein", value_parser = kebab::<Metric>, value_name = "NAME")]
    pub distance: Metric,
    /// gsmile's sample weights by: removed-words (default; how many words a sample removes),
    /// mask-cosine (LIME's mask distance), text-wasserstein (text-embedding W1) or
    /// word-movers (word vectors' optimal transport).
    #[arg(long, default_value = "removed-words", value_parser = kebab::<Weighting>, value_name = "NAME")]
    pub weighting: Weighting,
    /// gsmile's kernel width σ of exp(-d²/σ²); default: 1.5 (removed words), 0.25 (mask cosine) or the median instruction distance.
    #[arg(long, value_name = "SIGMA")]
    pub kernel_width: Option<f64>,
    /// gsmile: fit a ridge surrogate with this alpha instead of ordinary weighted least squares.
    #[arg(long, value_name = "ALPHA")]
    pub ridge: Option<f64>,
    /// Bootstrap replicates for intervals and p-values (0 disables).
    #[arg(long, default_value_t = 200, value_name = "B")]
    pub bootstrap: usize,
    /// Confidence level of the bootstrap intervals.
    #[arg(long, default_value_t = 0.95, value_name = "LEVEL")]
    pub confidence: f64,
    /// gsmile: keep only the K words with the largest attributions and refit.
    #[arg(long, value_name = "K")]
    pub top_k: Option<usize>,
    /// Skip the per-word spatial heatmaps.
    #[arg(long)]
    pub no_spatial: bool,
    /// Spatial maps compare outputs with the input (input: where a word makes the editor change
    /// the image) or with the full edit (full: also where a word keeps the image unchanged).
    #[arg(long, default_value = "input", value_parser = kebab::<Reference>, value_name = "REF")]
    pub spatial_reference: Reference,
    /// Spatial maps measure change as per-pixel RGB difference (pixels) or LPIPS's perceptual
    /// distance map (lpips, see --lpips).
    #[arg(long, default_value = "pixels", value_parser = kebab::<SpatialSpace>, value_name = "SPACE")]
    pub spatial_space: SpatialSpace,
    /// Pool change maps over PxP patches before the spatial fit.
    #[arg(long, default_value_t = 1, value_name = "P")]
    pub patch: usize,
    /// Seed passed to stochastic editors, the same for every sample.
    #[arg(long, default_value_t = 0, value_name = "S")]
    pub editor_seed: u64,
    /// Sampling settings of diffusion editors.
    #[command(flatten)]
    pub diffusion: DiffusionSettings,
}

/// `gsmile evaluate`.
#[derive(Args)]
pub struct EvaluateArgs {
    /// Scenario suite folder (suite.toml + scenario files), e.g. scenarios/odd-world.
    #[arg(long, value_name = "DIR")]
    pub suite: PathBuf,
    /// The editor and encoder bundles.
    #[command(flatten)]
    pub models: ModelArgs,
    /// Where the output goes.
    #[command(flatten)]
    pub out: OutDirArgs,
    /// Run only shard I of N (0-based, e.g. 0/4): a deterministic slice of the suite; combine with `gsmile merge`.
    #[arg(long, value_name = "I/N")]
    pub shard: Option<String>,
    /// What is measured on each scenario.
    #[command(flatten)]
    pub quality: QualityArgs,
    /// Speed and memory options.
    #[command(flatten)]
    pub run: RunArgs,
}

/// What an evaluation measures on top of each explanation.
#[derive(Args)]
pub struct QualityArgs {
    /// Extra explanations per scenario with new perturbation seeds, for stability.
    #[arg(long, default_value_t = 2, value_name = "R")]
    pub repeats: usize,
    /// Fresh perturbations per scenario for held-out fidelity (0 skips).
    #[arg(long, default_value_t = 16, value_name = "N")]
    pub held_out: usize,
    /// Random word orders the deletion and insertion curves are compared with.
    #[arg(long, default_value_t = 10, value_name = "N")]
    pub random_curves: usize,
    /// Also explain six neutral insertions ("###", "please" at start, middle, end) per
    /// scenario for the papers' insertion-stability Jaccard.
    #[arg(long)]
    pub neutral_insertions: bool,
    /// The explanation method's options.
    #[command(flatten)]
    pub method: MethodArgs,
}

/// `gsmile merge`.
#[derive(Args)]
pub struct MergeArgs {
    /// Output folders of `gsmile evaluate --shard` runs (same options and models).
    #[arg(value_name = "DIR", required = true)]
    pub inputs: Vec<PathBuf>,
    /// Where the output goes.
    #[command(flatten)]
    pub out: OutDirArgs,
}

/// `gsmile compare`.
#[derive(Args)]
pub struct CompareArgs {
    /// Scenario suite folder.
    #[arg(long, value_name = "DIR")]
    pub suite: PathBuf,
    /// Editor bundle to compare; repeat for each (at least two).
    #[arg(long = "editor", value_name = "DIR", required = true, num_args = 1)]
    pub editors: Vec<PathBuf>,
    /// The encoder bundle.
    #[command(flatten)]
    pub encoder: EncoderArg,
    /// Where the output goes.
    #[command(flatten)]
    pub out: OutDirArgs,
    /// What is measured on each scenario.
    #[command(flatten)]
    pub quality: QualityArgs,
    /// Speed and memory options.
    #[command(flatten)]
    pub run: RunArgs,
}

/// `gsmile edit`.
#[derive(Args)]
pub struct EditArgs {
    /// The image and the instruction.
    #[command(flatten)]
    pub input: InputArgs,
    /// The editor bundle.
    #[command(flatten)]
    pub editor: EditorArg,
    /// Output image (.png or .jpg); written atomically, its folder created if needed.
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
    /// Replace --out if it exists.
    #[arg(long)]
    pub force: bool,
    /// Keep the editor's own resolution instead of resizing back to the input's size.
    #[arg(long)]
    pub model_size: bool,
    /// Noise seed of diffusion editors (the same as `explain --editor-seed`).
    #[arg(long, alias = "editor-seed", default_value_t = 0, value_name = "S")]
    pub seed: u64,
    /// Sampling settings of diffusion editors.
    #[command(flatten)]
    pub diffusion: DiffusionSettings,
}

/// `gsmile embed`.
#[derive(Args)]
pub struct EmbedArgs {
    /// The encoder bundle.
    #[command(flatten)]
    pub encoder: EncoderArg,
    /// Image to embed; repeat for several.
    #[arg(long, value_name = "FILE")]
    pub image: Vec<PathBuf>,
    /// Text to embed; repeat for several.
    #[arg(long, value_name = "TEXT")]
    pub text: Vec<String>,
    /// Write the JSON here (atomically) instead of standard output.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
}

/// `gsmile models`.
#[derive(Args)]
pub struct ModelsArgs {
    /// Bundle folders, or folders holding bundles.
    #[arg(value_name = "DIR", default_value = "onnx")]
    pub paths: Vec<PathBuf>,
}

/// `gsmile cache`.
#[derive(Args)]
pub struct CacheArgs {
    /// What to do.
    #[command(subcommand)]
    pub action: CacheAction,
    /// The cache folder (the --cache of explain, evaluate and compare).
    #[arg(long, global = true, default_value = "outputs/.cache", value_name = "DIR")]
    pub cache: PathBuf,
}

/// The `gsmile cache` actions.
#[derive(Subcommand)]
pub enum CacheAction {
    /// Count the entries, their size and ages.
    Stats,
    /// Read every entry and check its checksum; list (or --remove) the damaged ones.
    Verify {
        /// Delete damaged entries (they would be recomputed on their next use anyway).
        #[arg(long)]
        remove: bool,
    },
    /// Remove entries not used (read or written) for a while.
    Prune {
        /// Age to remove beyond, e.g. 30d, 12h, 2w, 90m.
        #[arg(long, value_name = "AGE", value_parser = age)]
        older_than: std::time::Duration,
    },
}

/// Parses an age such as `30d`, `12h`, `2w`, `90m` or `45s`.
fn age(s: &str) -> Result<std::time::Duration, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (n, unit) = s.split_at(split);
    let n: u64 = n.parse().map_err(|_| format!("{s:?} is not an age; e.g. 30d, 12h, 2w"))?;
    let secs = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        "w" => 7 * 86_400,
        _ => return Err(format!("{s:?} needs a unit: s, m, h, d or w; e.g. 30d")),
    };
    n.checked_mul(secs).map(std::time::Duration::from_secs).ok_or_else(|| format!("{s:?} is too long an age"))
}
