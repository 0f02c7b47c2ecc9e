//! The `gsmile` command line: parses arguments, calls the library, prints results.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Result, bail};
use clap::{Args, Parser, Subcommand};
use gsmile::bundle::{self, Bundle, BundleKind};
use gsmile::editor::{self, OnnxEditor};
use gsmile::encoder::{ClipEncoder, ImageEncoder, TextEncoder};
use gsmile::imaging;
use gsmile::runtime::RuntimeOptions;

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
