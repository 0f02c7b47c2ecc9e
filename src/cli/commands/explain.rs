//! `gsmile explain`: one explanation, written as a folder, summarised as a table.

use anyhow::{Result, bail};
use gsmile::explain::{self, ImageInfo, Models};
use gsmile::{imaging, output, render};

use crate::cli::args::{ExplainArgs, Global};
use crate::cli::progress::Bars;

/// Explains the instruction on the image and writes the output folder.
pub fn run(a: &ExplainArgs, g: &Global) -> Result<()> {
    let (runtime, quiet) = (g.runtime(), g.quiet);
    let instruction = &a.input.instruction;
    if instruction.trim().is_empty() {
        bail!("--instruction is empty. Fix: pass the edit to explain, e.g. --instruction \"make the car red\"");
    }
    let config = a.method.config()?;
    let image = imaging::load_rgb_limited(&a.input.image, g.max_pixels)?;
    let image_info = ImageInfo::from_file(&a.input.image)?;
    // Everything about the output that can fail does so before the model work; a dry run writes nothing.
    let staging = if a.dry_run { None } else { Some(output::Staging::begin(&a.out.out, a.out.force)?) };
    let options = a.run.options(g.max_pixels);
    let mut open = a.run.open_options(runtime, &a.method.diffusion);
    open.lpips = Some(a.models.encoder.lpips.clone());
    let models = Models::open(&a.models.editor.editor, &a.models.encoder.encoder, config.needs(), &open)?;
    let plan = explain::plan(&image, instruction, &models, &config, &options)?;
    let calls = plan.calls();
    let at_most = if plan.upper_bound { "at most " } else { "" };
    let Some(staging) = staging else {
        return print_plan(&plan);
    };
    if let Some(max) = a.max_calls
        && calls > max
    {
        bail!(
            "this run needs {at_most}{calls} editor calls after the cache, more than --max-calls {max}. Fix: lower --samples, raise --max-calls, or run with --dry-run to see them"
        );
    }
    if !quiet {
        eprintln!(
            "editor calls: {at_most}{calls} to make ({} distinct perturbed instructions, {} cached)",
            plan.instructions.len(),
            plan.instructions.len() - calls
        );
    }
    let run = explain::explain(&image, image_info, instruction, &models, &config, &options, &Bars::new(quiet))?;
    staging.finish(&run, &image)?;
    crate::cli::progress::warn_cache(&options, quiet);
    if a.json {
        crate::cli::stdout::print(&(serde_json::to_string_pretty(&run.explanation)? + "\n"))?;
    } else if !quiet {
        crate::cli::stdout::print(&render::terminal_table(&run.explanation, 40))?;
        eprintln!("wrote {}", a.out.out.display());
    }
    Ok(())
}

/// `--dry-run`: each perturbed instruction, whether its edit is cached, and the call count.
fn print_plan(plan: &explain::CallPlan) -> Result<()> {
    let mut listing = String::new();
    for (text, cached) in plan.instructions.iter().zip(&plan.cached) {
        listing += &format!("{}\t{}\n", if *cached { "cached" } else { "call" }, render::escape_control(text));
    }
    listing += &format!(
        "{}{} editor calls ({} distinct perturbed instructions, {} cached); dry run, none made\n",
        if plan.upper_bound { "at most " } else { "" },
        plan.calls(),
        plan.instructions.len(),
        plan.instructions.len() - plan.calls()
    );
    crate::cli::stdout::print(&listing)
}
