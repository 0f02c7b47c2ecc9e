//! The `gsmile` command line: parses arguments, calls the library, prints results.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Result, bail};
use clap::{Args, Parser, Subcommand};
use gsmile::bundle::{self, Bundle};
use gsmile::distance::Metric;
use gsmile::editor::{self, DiffusionSettings};
use gsmile::encoder::{ClipEncoder, ImageEncoder, TextEncoder};
use gsmile::explain::{
    self, ExplainConfig, ImageInfo, ModelInfo, Models, Progress, Reference, RunOptions, Space, Weighting,
};
use gsmile::imaging;
use gsmile::perturb::Strategy;
use gsmile::runtime::RuntimeOptions;
use gsmile::surrogate::SurrogateConfig;
use indicatif::{ProgressBar, ProgressStyle};

/// Explain instruction-based image editors: which words of an instruction caused which change.
#[derive(Parser)]
#[command(name = "gsmile", version, about, long_about = None, propagate_version = true)]
struct Cli {
    #[command(flatten)]
    global: Global,
    #[command(subcommand)]
    command: Command,
}

#[derive(Args)]
struct Global {
    /// ONNX Runtime intra-op threads per model (0 = all cores).
    #[arg(long, global = true, default_value_t = 0, value_name = "N")]
    threads: usize,
    /// Print nothing but errors.
    #[arg(short, long, global = true)]
    quiet: bool,
}

#[derive(Subcommand)]
enum Command {
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
}

#[derive(Args)]
struct EditArgs {
    /// Input image (PNG or JPEG).
    #[arg(long, value_name = "FILE")]
    image: PathBuf,
    /// Editing instruction, e.g. "make the car red".
    #[arg(long, value_name = "TEXT")]
    instruction: String,
    /// Editor bundle folder (kind = "editor").
    #[arg(long, value_name = "DIR", default_value = "onnx/tiny-editor")]
    editor: PathBuf,
    /// Output image (.png or .jpg); written atomically.
    #[arg(long, value_name = "FILE")]
    out: PathBuf,
    /// Keep the editor's own resolution instead of resizing back to the input's size.
    #[arg(long)]
    model_size: bool,
    /// Noise seed of diffusion editors (the same as `explain --editor-seed`).
    #[arg(long, alias = "editor-seed", default_value_t = 0, value_name = "S")]
    seed: u64,
    #[command(flatten)]
    diffusion: DiffusionSettings,
}

/// Prints why sessions fell back from an accelerator to the CPU, once, as soon as models have loaded.
fn warn_fallbacks(quiet: bool) {
    for warning in gsmile::runtime::take_fallback_warnings() {
        if !quiet {
            eprintln!("warning: {warning}");
        }
    }
}

#[derive(Args)]
struct ExplainArgs {
    /// Input image (PNG or JPEG).
    #[arg(long, value_name = "FILE")]
    image: PathBuf,
    /// Editing instruction to explain.
    #[arg(long, value_name = "TEXT")]
    instruction: String,
    /// Editor bundle folder.
    #[arg(long, value_name = "DIR", default_value = "onnx/tiny-editor")]
    editor: PathBuf,
    /// CLIP-style encoder bundle, for embedding distances and text weights.
    #[arg(long, value_name = "DIR", default_value = "onnx/tiny-clip")]
    encoder: PathBuf,
    /// Output folder; written atomically.
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    /// Replace --out if it exists.
    #[arg(long)]
    force: bool,
    #[command(flatten)]
    method: MethodArgs,
    #[command(flatten)]
    run: RunArgs,
    /// Print explanation.json to standard output instead of the table.
    #[arg(long)]
    json: bool,
}

/// Options of the gSMILE method: everything that changes an explanation's numbers.
#[derive(Args)]
struct MethodArgs {
    /// Number of perturbation samples (the full instruction included).
    #[arg(long, default_value_t = 64, value_name = "N")]
    samples: usize,
    /// Seed of the masks and the bootstrap; equal seeds give equal results.
    #[arg(long, default_value_t = 0, value_name = "S")]
    seed: u64,
    /// Mask sampling: lime, kernel-shap or exhaustive (needs --samples ≥ 2^words).
    #[arg(long, default_value = "lime", value_parser = kebab::<Strategy>, value_name = "NAME")]
    strategy: Strategy,
    /// Replace removed words with this token instead of dropping them.
    #[arg(long, value_name = "TOKEN")]
    replace: Option<String>,
    /// Compare outputs with the full instruction's edit (full) or the unedited input (input).
    #[arg(long, default_value = "full", value_parser = kebab::<Reference>, value_name = "REF")]
    reference: Reference,
    /// Measure change on image embeddings (embedding) or pixel distributions (pixels).
    #[arg(long, default_value = "embedding", value_parser = kebab::<Space>, value_name = "SPACE")]
    space: Space,
    /// Distance: wasserstein, sliced-wasserstein (pixels), ks or cosine.
    #[arg(long, default_value = "wasserstein", value_parser = kebab::<Metric>, value_name = "NAME")]
    distance: Metric,
    /// Sample weights from text-embedding Wasserstein distance (text-wasserstein) or LIME's mask cosine (mask-cosine).
    #[arg(long, default_value = "text-wasserstein", value_parser = kebab::<Weighting>, value_name = "NAME")]
    weighting: Weighting,
    /// Kernel width σ of exp(-d²/σ²); default: median instruction distance (text) or 0.25 (mask cosine).
    #[arg(long, value_name = "SIGMA")]
    kernel_width: Option<f64>,
    /// Fit a ridge surrogate with this alpha instead of ordinary weighted least squares.
    #[arg(long, value_name = "ALPHA")]
    ridge: Option<f64>,
    /// Bootstrap replicates for intervals and p-values (0 disables).
    #[arg(long, default_value_t = 200, value_name = "B")]
    bootstrap: usize,
    /// Confidence level of the bootstrap intervals.
    #[arg(long, default_value_t = 0.95, value_name = "LEVEL")]
    confidence: f64,
    /// Keep only the K words with the largest attributions and refit.
    #[arg(long, value_name = "K")]
    top_k: Option<usize>,
    /// Skip the per-word spatial heatmaps.
    #[arg(long)]
    no_spatial: bool,
    /// Spatial maps compare outputs with the input (input: where a word makes the editor change
    /// the image) or with the full edit (full: also where a word keeps the image unchanged).
    #[arg(long, default_value = "input", value_parser = kebab::<Reference>, value_name = "REF")]
    spatial_reference: Reference,
    /// Pool change maps over PxP patches before the spatial fit.
    #[arg(long, default_value_t = 1, value_name = "P")]
    patch: usize,
    /// Seed passed to stochastic editors, the same for every sample.
    #[arg(long, default_value_t = 0, value_name = "S")]
    editor_seed: u64,
    #[command(flatten)]
    diffusion: DiffusionSettings,
}

impl MethodArgs {
    /// The library configuration these options describe.
    fn config(&self) -> ExplainConfig {
        ExplainConfig {
            samples: self.samples,
            seed: self.seed,
            strategy: self.strategy,
            replacement: self.replace.clone(),
            reference: self.reference,
            space: self.space,
            distance: self.distance,
            weighting: self.weighting,
            kernel_width: self.kernel_width,
            surrogate: SurrogateConfig {
                ridge_alpha: self.ridge,
                bootstrap: self.bootstrap,
                confidence: self.confidence,
                seed: self.seed,
                top_k: self.top_k,
            },
            spatial: !self.no_spatial,
            spatial_reference: self.spatial_reference,
            patch: self.patch,
            editor_seed: self.editor_seed,
        }
    }
}

/// Options that change speed and memory, never the numbers.
#[derive(Args)]
struct RunArgs {
    /// Most images per editor call; for diffusion editors, most UNet rows per call (samples × 3 guidance branches).
    #[arg(long, default_value_t = 32, value_name = "N")]
    max_batch: usize,
    /// Cache folder for edits and embeddings.
    #[arg(long, default_value = "outputs/.cache", value_name = "DIR")]
    cache: PathBuf,
    /// Do not read or write the cache.
    #[arg(long)]
    no_cache: bool,
}

impl RunArgs {
    /// The library's run options.
    fn options(&self) -> RunOptions {
        RunOptions {
            max_batch: self.max_batch,
            cache: if self.no_cache { None } else { Some(gsmile::cache::ArrayCache::new(&self.cache)) },
        }
    }
}

#[derive(Args)]
struct EvaluateArgs {
    /// Scenario suite folder (suite.toml + scenario files), e.g. scenarios/odd-world.
    #[arg(long, value_name = "DIR")]
    suite: PathBuf,
    /// Editor bundle folder.
    #[arg(long, value_name = "DIR", default_value = "onnx/tiny-editor")]
    editor: PathBuf,
    /// CLIP-style encoder bundle, for embedding distances and text weights.
    #[arg(long, value_name = "DIR", default_value = "onnx/tiny-clip")]
    encoder: PathBuf,
    /// Output folder; a killed run started again with the same options resumes here.
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    /// Discard results in --out made with other options or models.
    #[arg(long)]
    force: bool,
    /// Run only shard I of N (0-based, e.g. 0/4): a deterministic slice of the suite; combine with `gsmile merge`.
    #[arg(long, value_name = "I/N")]
    shard: Option<String>,
    #[command(flatten)]
    quality: QualityArgs,
    #[command(flatten)]
    run: RunArgs,
}

/// What an evaluation measures on top of each explanation.
#[derive(Args)]
struct QualityArgs {
    /// Extra explanations per scenario with new perturbation seeds, for stability.
    #[arg(long, default_value_t = 2, value_name = "R")]
    repeats: usize,
    /// Fresh perturbations per scenario for held-out fidelity (0 skips).
    #[arg(long, default_value_t = 16, value_name = "N")]
    held_out: usize,
    /// Random word orders the deletion and insertion curves are compared with.
    #[arg(long, default_value_t = 10, value_name = "N")]
    random_curves: usize,
    #[command(flatten)]
    method: MethodArgs,
}

impl QualityArgs {
    /// The library's evaluation configuration.
    fn config(&self) -> gsmile::evaluate::EvalConfig {
        gsmile::evaluate::EvalConfig {
            explain: self.method.config(),
            repeats: self.repeats,
            held_out: self.held_out,
            random_curves: self.random_curves,
        }
    }
}

#[derive(Args)]
struct MergeArgs {
    /// Output folders of `gsmile evaluate --shard` runs (same options and models).
    #[arg(value_name = "DIR", required = true)]
    inputs: Vec<PathBuf>,
    /// Folder for the combined tables.
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    /// Replace --out if it exists.
    #[arg(long)]
    force: bool,
}

#[derive(Args)]
struct CompareArgs {
    /// Scenario suite folder.
    #[arg(long, value_name = "DIR")]
    suite: PathBuf,
    /// Editor bundle to compare; repeat for each (at least two).
    #[arg(long = "editor", value_name = "DIR", required = true, num_args = 1)]
    editors: Vec<PathBuf>,
    /// CLIP-style encoder bundle shared by every editor's evaluation.
    #[arg(long, value_name = "DIR", default_value = "onnx/tiny-clip")]
    encoder: PathBuf,
    /// Output folder: one evaluation per editor in <DIR>/<editor name>/, the comparison at the top.
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    /// Discard earlier results made with other options.
    #[arg(long)]
    force: bool,
    #[command(flatten)]
    quality: QualityArgs,
    #[command(flatten)]
    run: RunArgs,
}

#[derive(Args)]
struct EmbedArgs {
    /// Encoder bundle folder (kind = "clip").
    #[arg(long, value_name = "DIR", default_value = "onnx/tiny-clip")]
    encoder: PathBuf,
    /// Image to embed; repeat for several.
    #[arg(long, value_name = "FILE")]
    image: Vec<PathBuf>,
    /// Text to embed; repeat for several.
    #[arg(long, value_name = "TEXT")]
    text: Vec<String>,
    /// Write the JSON here (atomically) instead of standard output.
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
}

#[derive(Args)]
struct ModelsArgs {
    /// Bundle folders, or folders holding bundles.
    #[arg(value_name = "DIR", default_value = "onnx")]
    paths: Vec<PathBuf>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let options = RuntimeOptions { threads: cli.global.threads };
    let result = match &cli.command {
        Command::Explain(a) => run_explain(a, &options, cli.global.quiet),
        Command::Evaluate(a) => run_evaluate(a, &options, cli.global.quiet),
        Command::Merge(a) => run_merge(a, cli.global.quiet),
        Command::Compare(a) => run_compare(a, &options, cli.global.quiet),
        Command::Edit(a) => run_edit(a, &options, cli.global.quiet),
        Command::Embed(a) => run_embed(a, &options),
        Command::Models(a) => run_models(a, &options),
    };
    warn_fallbacks(cli.global.quiet);
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run_edit(a: &EditArgs, options: &RuntimeOptions, quiet: bool) -> Result<()> {
    if a.instruction.trim().is_empty() {
        bail!("--instruction is empty. Fix: pass the edit to make, e.g. --instruction \"make the car red\"");
    }
    imaging::output_format(&a.out)?;
    let image = imaging::load_rgb(&a.image)?;
    let bundle = Bundle::open(&a.editor)?;
    let editor = editor::load(&bundle, options, a.diffusion.with_seed(a.seed), 32)?;
    editor.prepare()?;
    warn_fallbacks(quiet);
    let mut edited = editor::edit_image(editor.as_ref(), &image, &a.instruction)?;
    if a.model_size {
        let (h, w) = editor.size();
        let t = imaging::resize_tensor(imaging::to_tensor(&edited).view(), h, w);
        edited = imaging::from_tensor(t.view());
    }
    imaging::save_rgb(&edited, &a.out)?;
    if !quiet {
        eprintln!("wrote {} ({}x{})", a.out.display(), edited.width(), edited.height());
    }
    Ok(())
}

fn run_embed(a: &EmbedArgs, options: &RuntimeOptions) -> Result<()> {
    if a.image.is_empty() && a.text.is_empty() {
        bail!("nothing to embed. Fix: pass --image FILE and/or --text TEXT");
    }
    let images: Vec<_> = a.image.iter().map(|p| imaging::load_rgb(p)).collect::<Result<_, _>>()?;
    let bundle = Bundle::open(&a.encoder)?;
    let encoder = ClipEncoder::load(&bundle, options)?;
    let image_embeds: Vec<Vec<f32>> = if images.is_empty() {
        Vec::new()
    } else {
        encoder.embed_pictures(&images)?.rows().into_iter().map(|r| r.to_vec()).collect()
    };
    let texts: Vec<&str> = a.text.iter().map(String::as_str).collect();
    let text_embeds = if texts.is_empty() { ndarray::Array2::zeros((0, 0)) } else { encoder.embed_texts(&texts)? };
    let cosine = |u: &[f32], v: &[f32]| {
        let dot: f32 = u.iter().zip(v).map(|(a, b)| a * b).sum();
        let nu = u.iter().map(|a| a * a).sum::<f32>().sqrt();
        let nv = v.iter().map(|a| a * a).sum::<f32>().sqrt();
        dot / (nu * nv).max(f32::MIN_POSITIVE)
    };
    let similarity: Vec<Vec<f32>> = image_embeds
        .iter()
        .map(|ie| text_embeds.rows().into_iter().map(|te| cosine(ie, te.as_slice().unwrap_or(&[]))).collect())
        .collect();
    let json = serde_json::json!({
        "encoder": encoder.name(),
        "images": a.image.iter().zip(&image_embeds).map(|(p, e)| serde_json::json!({"path": p, "embedding": e})).collect::<Vec<_>>(),
        "texts": texts.iter().zip(text_embeds.rows()).map(|(t, e)| serde_json::json!({"text": t, "embedding": e.to_vec()})).collect::<Vec<_>>(),
        "cosine_image_text": similarity,
    });
    let text = serde_json::to_string_pretty(&json)? + "\n";
    match &a.out {
        Some(path) => gsmile::io::write_bytes_atomic(path, text.as_bytes())?,
        None => print!("{text}"),
    }
    Ok(())
}

fn run_models(a: &ModelsArgs, options: &RuntimeOptions) -> Result<()> {
    let mut dirs = Vec::new();
    for p in &a.paths {
        let found = bundle::discover(p);
        if found.is_empty() {
            bail!(
                "{}: no bundle here (no {} in it or its subfolders). Fix: pass a bundle folder such as onnx/tiny-editor",
                p.display(),
                bundle::MANIFEST
            );
        }
        dirs.extend(found);
    }
    let mut broken = 0;
    for dir in &dirs {
        match gsmile::describe::describe_bundle(dir, options).map_err(anyhow::Error::from) {
            Ok(text) => println!("{text}"),
            Err(e) => {
                broken += 1;
                println!("{}\n  BROKEN: {e:#}\n", dir.display());
            }
        }
    }
    if broken > 0 {
        bail!("{broken} of {} bundles failed their checks (see above)", dirs.len());
    }
    Ok(())
}

/// Parses a kebab-case option value into a library enum through its serde names.
fn kebab<T: serde::de::DeserializeOwned>(s: &str) -> Result<T, String> {
    serde_json::from_value(serde_json::Value::String(s.to_string())).map_err(|e| e.to_string())
}

/// indicatif bars for the library's progress stages; hidden when stderr is not a terminal.
struct Bars {
    bar: std::sync::Mutex<Option<ProgressBar>>,
    quiet: bool,
}

impl Progress for Bars {
    fn stage(&self, name: &str, total: u64) {
        // Models load just before the first stage that needs them: say now if one fell back to the CPU.
        warn_fallbacks(self.quiet);
        if self.quiet {
            return;
        }
        let bar = ProgressBar::new(total).with_message(name.to_string());
        bar.set_style(
            ProgressStyle::with_template("{msg:>10} [{bar:40}] {pos}/{len} {elapsed_precise} eta {eta}")
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
        );
        if let Ok(mut slot) = self.bar.lock() {
            *slot = Some(bar);
        }
    }

    fn advance(&self, n: u64) {
        if let Ok(slot) = self.bar.lock()
            && let Some(bar) = slot.as_ref()
        {
            bar.inc(n);
        }
    }

    fn finish(&self) {
        if let Ok(mut slot) = self.bar.lock()
            && let Some(bar) = slot.take()
        {
            bar.finish_and_clear();
        }
    }
}

fn model_info(bundle: &Bundle, params: serde_json::Value, memo: Option<&Path>) -> Result<ModelInfo> {
    Ok(ModelInfo {
        name: bundle.manifest().name.clone(),
        path: bundle.dir().display().to_string(),
        sha256: bundle.content_hash_memo(memo)?,
        params,
    })
}

/// An editor and, when the method needs one, an encoder, loaded from their bundles.
struct Loaded {
    editor_bundle: Bundle,
    editor: Box<dyn gsmile::editor::Editor>,
    encoder_bundle: Option<Bundle>,
    encoder: Option<ClipEncoder>,
    /// Where large model files' hashes are remembered (the cache folder), if anywhere.
    memo: Option<PathBuf>,
}

impl Loaded {
    fn load(
        editor: &Path,
        encoder: &Path,
        config: &ExplainConfig,
        diffusion: &DiffusionSettings,
        run: &RunArgs,
        options: &RuntimeOptions,
    ) -> Result<Self> {
        let max_batch = run.max_batch;
        // Opening checks the bundles; their graphs load on first use, so a run served from
        // the cache loads none of them.
        let editor_bundle = Bundle::open(editor)?;
        let editor = editor::load(&editor_bundle, options, diffusion.with_seed(config.editor_seed), max_batch)?;
        let needs_encoder = config.space == Space::Embedding || config.weighting == Weighting::TextWasserstein;
        let encoder_bundle = if needs_encoder { Some(Bundle::open(encoder)?) } else { None };
        let encoder = encoder_bundle.as_ref().map(|b| ClipEncoder::load(b, options)).transpose()?;
        let memo = if run.no_cache { None } else { Some(run.cache.clone()) };
        Ok(Loaded { editor_bundle, editor, encoder_bundle, encoder, memo })
    }

    fn models(&self) -> Result<Models<'_>> {
        Ok(Models {
            editor: self.editor.as_ref(),
            editor_info: model_info(
                &self.editor_bundle,
                serde_json::from_str(&self.editor.params()).unwrap_or(serde_json::Value::Null),
                self.memo.as_deref(),
            )?,
            image_encoder: self.encoder.as_ref().map(|e| e as &dyn ImageEncoder),
            text_encoder: self.encoder.as_ref().map(|e| e as &dyn TextEncoder),
            encoder_info: self
                .encoder_bundle
                .as_ref()
                .map(|b| model_info(b, serde_json::Value::Null, self.memo.as_deref()))
                .transpose()?,
        })
    }
}

fn run_explain(a: &ExplainArgs, options: &RuntimeOptions, quiet: bool) -> Result<()> {
    if a.instruction.trim().is_empty() {
        bail!("--instruction is empty. Fix: pass the edit to explain, e.g. --instruction \"make the car red\"");
    }
    gsmile::output::check_target(&a.out, a.force)?;
    let config = a.method.config();
    let image = imaging::load_rgb(&a.image)?;
    let image_info = ImageInfo {
        path: a.image.display().to_string(),
        sha256: gsmile::cache::file_sha256(&a.image).map_err(|e| anyhow::anyhow!("{}: {e}", a.image.display()))?,
        width: image.width(),
        height: image.height(),
    };
    let loaded = Loaded::load(&a.editor, &a.encoder, &config, &a.method.diffusion, &a.run, options)?;
    let models = loaded.models()?;
    let run_options = a.run.options();
    let bars = Bars { bar: std::sync::Mutex::new(None), quiet };
    let mut run = explain::explain(&image, image_info, &a.instruction, &models, &config, &run_options, &bars)?;
    gsmile::spatial::attach(&mut run)?;
    gsmile::output::write_explanation(&run, &image, &a.out, a.force)?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&run.explanation)?);
    } else if !quiet {
        print!("{}", gsmile::render::terminal_table(&run.explanation, 40));
        eprintln!("wrote {}", a.out.display());
    }
    Ok(())
}

/// indicatif bars for a suite evaluation: one for the suite (with ETA), one for the scenario's steps.
struct EvalBars {
    overall: ProgressBar,
    current: ProgressBar,
}

impl EvalBars {
    fn new(quiet: bool) -> Self {
        let multi = indicatif::MultiProgress::new();
        if quiet {
            multi.set_draw_target(indicatif::ProgressDrawTarget::hidden());
        }
        let style = |t: &str| {
            ProgressStyle::with_template(t).unwrap_or_else(|_| ProgressStyle::default_bar()).progress_chars("=> ")
        };
        let overall = multi.add(ProgressBar::new(0));
        overall.set_style(style("suite      [{bar:40}] {pos}/{len} scenarios {elapsed_precise} eta {eta}"));
        let current = multi.add(ProgressBar::new(0));
        current.set_style(style("{msg:>10} [{bar:40}] {pos}/{len} steps"));
        EvalBars { overall, current }
    }
}

impl gsmile::evaluate::EvalProgress for EvalBars {
    fn run_started(&self, total: usize, already_done: usize) {
        self.overall.set_length(total as u64);
        self.overall.set_position(0);
        self.overall.reset_eta();
        let _ = already_done;
    }
    fn skipped(&self, _id: &str, _index: usize, _total: usize) {
        self.overall.inc(1);
        self.overall.reset_eta();
    }
    fn scenario_started(&self, id: &str, _index: usize, _total: usize, steps: usize) {
        self.current.set_message(id.to_string());
        self.current.set_length(steps as u64);
        self.current.set_position(0);
    }
    fn scenario_step(&self, _id: &str, _what: &str, done: usize, _steps: usize) {
        self.current.set_position(done as u64);
    }
    fn scenario_finished(&self, _result: &gsmile::evaluate::ScenarioResult, _index: usize, _total: usize) {
        self.overall.inc(1);
    }
    fn writing_tables(&self) {
        self.current.finish_and_clear();
        self.overall.finish_and_clear();
    }
}

fn run_evaluate(a: &EvaluateArgs, options: &RuntimeOptions, quiet: bool) -> Result<()> {
    let shard = a.shard.as_deref().map(gsmile::scenario::parse_shard).transpose()?;
    let suite = gsmile::scenario::load_suite(&a.suite)?;
    let config = a.quality.config();
    let loaded = Loaded::load(&a.editor, &a.encoder, &config.explain, &a.quality.method.diffusion, &a.run, options)?;
    let models = loaded.models()?;
    let bars = EvalBars::new(quiet);
    let summary =
        gsmile::evaluate::evaluate_suite(&suite, shard, &models, &config, &a.run.options(), &a.out, a.force, &bars)?;
    if !quiet {
        print!("{}", summary.table());
    }
    Ok(())
}

fn run_merge(a: &MergeArgs, quiet: bool) -> Result<()> {
    let summary = gsmile::evaluate::merge(&a.inputs, &a.out, a.force)?;
    if !quiet {
        print!("{}", summary.table());
    }
    Ok(())
}

fn run_compare(a: &CompareArgs, options: &RuntimeOptions, quiet: bool) -> Result<()> {
    if a.editors.len() < 2 {
        bail!(
            "compare needs at least two --editor bundles. Fix: repeat --editor, e.g. --editor onnx/tiny-editor --editor onnx/tiny-editor-bow"
        );
    }
    let suite = gsmile::scenario::load_suite(&a.suite)?;
    let config = a.quality.config();
    let mut runs = Vec::new();
    for editor in &a.editors {
        let loaded = Loaded::load(editor, &a.encoder, &config.explain, &a.quality.method.diffusion, &a.run, options)?;
        let models = loaded.models()?;
        let name = models.editor_info.name.clone();
        if runs.iter().any(|(n, _): &(String, PathBuf)| *n == name) {
            bail!("two editors are both named {name:?} (bundle.toml `name`). Fix: give each bundle its own name");
        }
        let out = a.out.join(&name);
        if !quiet {
            eprintln!("evaluating {name} on {} into {}", suite.name, out.display());
        }
        let bars = EvalBars::new(quiet);
        gsmile::evaluate::evaluate_suite(&suite, None, &models, &config, &a.run.options(), &out, a.force, &bars)?;
        runs.push((name, out));
    }
    let summary = gsmile::evaluate::compare(&runs, &a.out)?;
    if !quiet {
        print!("{}", summary.table());
        eprintln!("wrote {}", a.out.display());
    }
    Ok(())
}
