//! `gsmile compare`: evaluates several editors on one suite and compares them slice by slice.

use std::path::PathBuf;

use anyhow::{Result, bail};
use gsmile::explain::Models;
use gsmile::{evaluate, scenario};

use crate::cli::args::{CompareArgs, Global};
use crate::cli::progress::EvalBars;

/// Evaluates every editor into `<out>/<name>/`, then writes and prints the comparison.
pub fn run(a: &CompareArgs, g: &Global) -> Result<()> {
    let (runtime, quiet) = (g.runtime(), g.quiet);
    if a.editors.len() < 2 {
        bail!(
            "compare needs at least two --editor bundles. Fix: repeat --editor, e.g. --editor onnx/tiny-editor --editor onnx/tiny-editor-bow"
        );
    }
    let suite = scenario::load_suite(&a.suite)?;
    let config = a.quality.config()?;
    let mut open = a.run.open_options(runtime, &a.quality.method.diffusion);
    open.lpips = Some(a.encoder.lpips.clone());
    let options = a.run.options(g.max_pixels);
    let mut runs: Vec<(String, PathBuf)> = Vec::new();
    for editor in &a.editors {
        let models = Models::open(editor, &a.encoder.encoder, config.explain.needs(), &open)?;
        let name = models.editor_info.name.clone();
        if runs.iter().any(|(n, _)| *n == name) {
            bail!("two editors are both named {name:?} (bundle.toml `name`). Fix: give each bundle its own name");
        }
        // The bundle's name becomes a folder under --out: never a path that leaves it, and
        // never one another editor already took.
        let base = gsmile::io::safe_name(&name, "editor");
        let mut folder = base.clone();
        let mut k = 2;
        while runs.iter().any(|(_, dir)| dir.file_name() == Some(std::ffi::OsStr::new(&folder))) {
            folder = format!("{base}-{k}");
            k += 1;
        }
        let out = a.out.out.join(&folder);
        if !quiet {
            eprintln!("evaluating {name} on {} into {}", suite.name, out.display());
        }
        let bars = EvalBars::new(quiet);
        evaluate::evaluate_suite(&suite, None, &models, &config, &options, &out, a.out.force, &bars)?;
        runs.push((name, out));
    }
    let summary = evaluate::compare(&runs, &a.out.out)?;
    crate::cli::progress::warn_cache(&options, quiet);
    if !quiet {
        crate::cli::stdout::print(&summary.table())?;
        eprintln!("wrote {}", a.out.out.display());
    }
    Ok(())
}
