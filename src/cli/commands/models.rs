//! `gsmile models`: lists bundles with their contracts, checking each against its graphs.

use anyhow::{Result, bail};
use gsmile::bundle;
use gsmile::runtime::RuntimeOptions;

use crate::cli::args::ModelsArgs;

/// Describes every bundle found under the given folders; fails if any is broken.
pub fn run(a: &ModelsArgs, runtime: RuntimeOptions) -> Result<()> {
    let mut dirs = Vec::new();
    for p in &a.paths {
        let found = bundle::discover(p);
        if found.is_empty() {
            bail!(
                "{}: no bundle here (no {} in it or its subfolders). Fix: pass a bundle folder{}",
                p.display(),
                bundle::MANIFEST,
                if p.starts_with("onnx") {
                    "; `git checkout onnx` restores the shipped ones"
                } else {
                    " such as onnx/tiny-editor"
                }
            );
        }
        dirs.extend(found);
    }
    let mut broken = 0;
    for dir in &dirs {
        match gsmile::describe::describe_bundle(dir, &runtime) {
            Ok(text) => crate::cli::stdout::print(&format!("{text}\n"))?,
            Err(e) => {
                broken += 1;
                crate::cli::stdout::print(&format!("{}\n  BROKEN: {e:#}\n\n", dir.display()))?;
            }
        }
    }
    if broken > 0 {
        bail!("{broken} of {} bundles failed their checks (see above)", dirs.len());
    }
    Ok(())
}
