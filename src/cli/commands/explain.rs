//! `gsmile explain`: one explanation, written as a folder, summarised as a table.

use anyhow::{Result, bail};
use gsmile::explain::{self, ImageInfo, Models};
use gsmile::runtime::RuntimeOptions;
use gsmile::{imaging, output, render};

use crate::cli::args::ExplainArgs;
use crate::cli::progress::Bars;

/// Explains the instruction on the image and writes the output folder.
pub fn run(a: &ExplainArgs, runtime: RuntimeOptions, quiet: bool) -> Result<()> {
    let instruction = &a.input.instruction;
    if instruction.trim().is_empty() {
        bail!("--instruction is empty. Fix: pass the edit to explain, e.g. --instruction \"make the car red\"");
    }
    output::check_target(&a.out.out, a.out.force)?;
    let config = a.method.config()?;
    let image = imaging::load_rgb(&a.input.image)?;
    let image_info = ImageInfo::from_file(&a.input.image)?;
    let open = a.run.open_options(runtime, &a.method.diffusion);
    let models = Models::open(&a.models.editor.editor, &a.models.encoder.encoder, config.needs(), &open)?;
    let run = explain::explain(&image, image_info, instruction, &models, &config, &a.run.options(), &Bars::new(quiet))?;
    output::write_explanation(&run, &image, &a.out.out, a.out.force)?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&run.explanation)?);
    } else if !quiet {
        print!("{}", render::terminal_table(&run.explanation, 40));
        eprintln!("wrote {}", a.out.out.display());
    }
    Ok(())
}
