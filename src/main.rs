//! The `gsmile` command line: parses arguments, calls the library, prints results.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Result, bail};
use clap::{Args, Parser, Subcommand};
use gsmile::bundle::{self, Bundle, BundleKind};
use gsmile::editor::{self, OnnxEditor};
use gsmile::encoder::{ClipEncoder, ImageEncoder, TextEncoder};
use gsmile::imaging;
use gsmile::distance::Metric;
use gsmile::explain::{self, ExplainConfig, ImageInfo, ModelInfo, Models, Progress, Reference, RunOptions, Space, Weighting};
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
    /// Pool change maps over PxP patches before the spatial fit.
    #[arg(long, default_value_t = 1, value_name = "P")]
    patch: usize,
    /// Seed passed to stochastic editors, the same for every sample.
    #[arg(long, default_value_t = 0, value_name = "S")]
    editor_seed: u64,
    /// Most images per editor call.
    #[arg(long, default_value_t = 32, value_name = "N")]
    max_batch: usize,
    /// Cache folder for edits and embeddings.
    #[arg(long, default_value = "outputs/.cache", value_name = "DIR")]
    cache: PathBuf,
    /// Do not read or write the cache.
    #[arg(long)]
    no_cache: bool,
    /// Print explanation.json to standard output instead of the table.
    #[arg(long)]
    json: bool,
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
        Command::Edit(a) => run_edit(a, &options, cli.global.quiet),
        Command::Embed(a) => run_embed(a, &options),
        Command::Models(a) => run_models(a, &options),
    };
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
    let editor = OnnxEditor::load(&bundle, options)?;
    let mut edited = editor::edit_image(&editor, &image, &a.instruction)?;
    if a.model_size {
        let (h, w) = gsmile::editor::Editor::size(&editor);
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
    let image_embeds: Vec<Vec<f32>> = images
        .iter()
        .map(|img| {
            let t = imaging::to_tensor(img).insert_axis(ndarray::Axis(0));
            encoder.embed_images(t.view()).map(|e| e.row(0).to_vec())
        })
        .collect::<Result<_, _>>()?;
    let texts: Vec<&str> = a.text.iter().map(String::as_str).collect();
    let text_embeds = if texts.is_empty() { ndarray::Array2::zeros((0, 0)) } else { encoder.embed_texts(&texts)? };
    let cosine = |u: &[f32], v: &[f32]| {
        let dot: f32 = u.iter().zip(v).map(|(a, b)| a * b).sum();
        let nu = u.iter().map(|a| a * a).sum::<f32>().sqrt();
        let nv = v.iter().map(|a| a * a).sum::<f32>().sqrt();
        dot / (nu * nv).max(f32::MIN_POSITIVE)
    };
    let similarity: Vec<Vec<f32>> =
        image_embeds.iter().map(|ie| text_embeds.rows().into_iter().map(|te| cosine(ie, te.as_slice().unwrap_or(&[]))).collect()).collect();
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
            bail!("{}: no bundle here (no {} in it or its subfolders). Fix: pass a bundle folder such as onnx/tiny-editor", p.display(), bundle::MANIFEST);
        }
        dirs.extend(found);
    }
    let mut broken = 0;
    for dir in &dirs {
        match describe_bundle(dir, options) {
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

fn describe_bundle(dir: &Path, options: &RuntimeOptions) -> Result<String> {
    let b = Bundle::open(dir)?;
    let m = b.manifest();
    let signature = match m.kind {
        BundleKind::Editor => OnnxEditor::load(&b, options)?.signature().to_vec(),
        BundleKind::Clip => ClipEncoder::load(&b, options)?.signature(),
    };
    let mut out = format!(
        "{} ({})\n  kind: {}\n  {}\n  image: {}x{} range {:?} mean {:?} std {:?}\n  tokens: {} (tokenizer {})\n  size: {:.2} MB\n",
        m.name,
        dir.display(),
        m.kind,
        m.description,
        m.image.height,
        m.image.width,
        m.image.range,
        m.image.mean,
        m.image.std,
        m.tokenizer.max_length,
        m.tokenizer.file.display(),
        b.size_bytes() as f64 / 1e6
    );
    for line in signature {
        out += &format!("  {line}\n");
    }
    if !m.provenance.made_by.is_empty() {
        out += &format!("  made by: {}\n", m.provenance.made_by);
    }
    if !m.provenance.licence.is_empty() {
        out += &format!("  licence: {}\n", m.provenance.licence);
    }
    Ok(out)
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

fn model_info(bundle: &Bundle) -> Result<ModelInfo> {
    Ok(ModelInfo {
        name: bundle.manifest().name.clone(),
        path: bundle.dir().display().to_string(),
        sha256: bundle.content_hash()?,
    })
}

fn run_explain(a: &ExplainArgs, options: &RuntimeOptions, quiet: bool) -> Result<()> {
    if a.instruction.trim().is_empty() {
        bail!("--instruction is empty. Fix: pass the edit to explain, e.g. --instruction \"make the car red\"");
    }
    gsmile::output::check_target(&a.out, a.force)?;
    let config = ExplainConfig {
        samples: a.samples,
        seed: a.seed,
        strategy: a.strategy,
        replacement: a.replace.clone(),
        reference: a.reference,
        space: a.space,
        distance: a.distance,
        weighting: a.weighting,
        kernel_width: a.kernel_width,
        surrogate: SurrogateConfig {
            ridge_alpha: a.ridge,
            bootstrap: a.bootstrap,
            confidence: a.confidence,
            seed: a.seed,
            top_k: a.top_k,
        },
        spatial: !a.no_spatial,
        patch: a.patch,
        editor_seed: a.editor_seed,
    };
    let image = imaging::load_rgb(&a.image)?;
    let image_info = ImageInfo {
        path: a.image.display().to_string(),
        sha256: gsmile::cache::file_sha256(&a.image).map_err(|e| anyhow::anyhow!("{}: {e}", a.image.display()))?,
        width: image.width(),
        height: image.height(),
    };
    let editor_bundle = Bundle::open(&a.editor)?;
    let editor = OnnxEditor::load(&editor_bundle, options)?.with_max_batch(a.max_batch);
    let needs_encoder = config.space == Space::Embedding || config.weighting == Weighting::TextWasserstein;
    let encoder_bundle = if needs_encoder { Some(Bundle::open(&a.encoder)?) } else { None };
    let encoder = encoder_bundle.as_ref().map(|b| ClipEncoder::load(b, options)).transpose()?;
    let models = Models {
        editor: &editor,
        editor_info: model_info(&editor_bundle)?,
        image_encoder: encoder.as_ref().map(|e| e as &dyn ImageEncoder),
        text_encoder: encoder.as_ref().map(|e| e as &dyn TextEncoder),
        encoder_info: encoder_bundle.as_ref().map(model_info).transpose()?,
    };
    let run_options = RunOptions {
        max_batch: a.max_batch,
        cache: if a.no_cache { None } else { Some(gsmile::cache::ArrayCache::new(&a.cache)) },
    };
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
