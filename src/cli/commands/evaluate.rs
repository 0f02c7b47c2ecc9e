//! `gsmile evaluate`: explanation quality over a scenario suite (resumable, shardable).

use anyhow::Result;
use gsmile::explain::Models;
use gsmile::runtime::RuntimeOptions;
use gsmile::{evaluate, scenario};

use crate::cli::args::EvaluateArgs;
use crate::cli::progress::EvalBars;

/// Evaluates the suite and prints its summary table.
pub fn run(a: &EvaluateArgs, runtime: RuntimeOptions, quiet: bool) -> Result<()> {
    let shard = a.shard.as_deref().map(scenario::parse_shard).transpose()?;
    let suite = scenario::load_suite(&a.suite)?;
    let config = a.quality.config()?;
    let open = a.run.open_options(runtime, &a.quality.method.diffusion);
    let models = Models::open(&a.models.editor.editor, &a.models.encoder.encoder, config.explain.needs(), &open)?;
    let summary = evaluate::evaluate_suite(
        &suite,
        shard,
        &models,
        &config,
        &a.run.options(),
        &a.out.out,
        a.out.force,
        &EvalBars::new(quiet),
    )?;
    if !quiet {
        print!("{}", summary.table());
    }
    Ok(())
}
