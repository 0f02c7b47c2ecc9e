//! `gsmile edit`: runs an editor once on an image.

use anyhow::{Result, bail};
use gsmile::bundle::Bundle;
use gsmile::runtime::RuntimeOptions;
use gsmile::{editor, imaging};

use crate::cli::args::EditArgs;
use crate::cli::progress::warn_fallbacks;

/// Edits the image and writes the result.
pub fn run(a: &EditArgs, runtime: RuntimeOptions, quiet: bool) -> Result<()> {
    if a.input.instruction.trim().is_empty() {
        bail!("--instruction is empty. Fix: pass the edit to make, e.g. --instruction \"make the car red\"");
    }
    imaging::output_format(&a.out)?;
    let image = imaging::load_rgb(&a.input.image)?;
    let bundle = Bundle::open(&a.editor.editor)?;
    let editor = editor::load(&bundle, &runtime, a.diffusion.with_seed(a.seed), 32)?;
    editor.prepare()?;
    warn_fallbacks(quiet);
    let mut edited = editor::edit_image(editor.as_ref(), &image, &a.input.instruction)?;
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
