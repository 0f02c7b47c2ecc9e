//! `gsmile edit`: runs an editor once on an image.

use anyhow::{Context, Result, bail};
use gsmile::bundle::Bundle;
use gsmile::{editor, imaging};

use crate::cli::args::{EditArgs, Global};
use crate::cli::progress::warn_fallbacks;

/// Edits the image and writes the result.
pub fn run(a: &EditArgs, g: &Global) -> Result<()> {
    let (runtime, quiet) = (g.runtime(), g.quiet);
    if a.input.instruction.trim().is_empty() {
        bail!("--instruction is empty. Fix: pass the edit to make, e.g. --instruction \"make the car red\"");
    }
    imaging::output_format(&a.out)?;
    // Like explain: an existing output is refused without --force, and the folder is
    // created, before any model work.
    if let Ok(meta) = std::fs::symlink_metadata(&a.out) {
        if meta.is_dir() {
            bail!(
                "{}: is a folder. Fix: --out names the image file to write, e.g. --out outputs/red-car.png",
                a.out.display()
            );
        }
        if !a.force {
            bail!("{} exists. Fix: pass --force to replace it, or choose another --out", a.out.display());
        }
    }
    if let Some(parent) = a.out.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).with_context(|| format!("cannot create the folder {}", parent.display()))?;
    }
    let image = imaging::load_rgb_limited(&a.input.image, g.max_pixels)?;
    let bundle = Bundle::open(&a.editor.editor)?;
    let editor = editor::load(&bundle, &runtime, a.diffusion.with_seed(a.seed), 32, None)?;
    editor.prepare()?;
    warn_fallbacks(quiet);
    let mut edited = editor::edit_image(editor.as_ref(), &image, &a.input.instruction)?;
    if a.model_size {
        let (h, w) = editor.size();
        let t = imaging::resize_tensor(imaging::to_tensor(&edited).view(), h, w);
        edited = imaging::from_tensor(t.view());
    }
    imaging::save_rgb_as(&edited, &a.out, a.force).map_err(|e| match e {
        imaging::ImageError::Write(w) if w.source.kind() == std::io::ErrorKind::AlreadyExists => anyhow::anyhow!(
            "{} appeared while the edit ran; it was left as it is. Fix: pass --force to replace it, or choose another --out",
            a.out.display()
        ),
        e => e.into(),
    })?;
    if !quiet {
        eprintln!("wrote {} ({}x{})", a.out.display(), edited.width(), edited.height());
    }
    Ok(())
}
