//! The library in about 40 lines: open the shipped models, explain one instruction, write
//! the explanation folder and print the ranked words.
//!
//! Run: `cargo run --release --example explain_one -- [IMAGE] [INSTRUCTION] [OUT]`
//! (defaults: assets/scene-01.png, "please make the car red", outputs/example-car-red).

use std::path::PathBuf;

use gsmile::explain::{self, ExplainConfig, ImageInfo, NoProgress, RunOptions};
use gsmile::models::{Models, OpenOptions};

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let image_path = args.next().map(PathBuf::from).unwrap_or_else(|| root.join("assets/scene-01.png"));
    let instruction = args.next().unwrap_or_else(|| "please make the car red".to_string());
    let out = args.next().map(PathBuf::from).unwrap_or_else(|| root.join("outputs/example-car-red"));

    // Everything that changes the numbers lives in one config; the defaults are gSMILE's.
    let config = ExplainConfig { samples: 32, ..ExplainConfig::default() };

    // The editor, and the encoder the config needs (image embeddings, text weights).
    let editor = root.join("onnx/tiny-editor");
    let encoder = root.join("onnx/tiny-clip");
    let models = Models::open(&editor, &encoder, config.needs(), &OpenOptions::default())?;

    let image = gsmile::imaging::load_rgb(&image_path)?;
    let info = ImageInfo::from_file(&image_path)?;
    let run = explain::explain(&image, info, &instruction, &models, &config, &RunOptions::default(), &NoProgress)?;

    // explanation.json, words.png, overlays, samples.png and report.html, written atomically.
    gsmile::output::write_explanation(&run, &image, &out, true)?;
    print!("{}", gsmile::render::terminal_table(&run.explanation, 40));
    let top = run.explanation.words.iter().min_by_key(|w| w.rank).map(|w| w.word.text.as_str()).unwrap_or("");
    println!("top word: {top}\nwrote {}", out.display());
    Ok(())
}
