//! `gsmile evaluate`: explanation quality over a scenario suite (resumable, shardable); with
//! several `--method`s or a `--samples` list, every method at every budget on the same edits.

use std::path::PathBuf;

use anyhow::{Result, bail};
use gsmile::explain::Models;
use gsmile::{evaluate, scenario};

use crate::cli::args::{EvaluateArgs, Global, Samples};
use crate::cli::progress::EvalBars;

/// Evaluates the suite and prints its summary table; a sweep evaluates each (method,
/// budget) into `<out>/<method>-<budget>/`, compares the methods at each budget in
/// `<out>/compare-<budget>/` and writes the sweep tables into `<out>`.
pub fn run(a: &EvaluateArgs, g: &Global) -> Result<()> {
    let (runtime, quiet) = (g.runtime(), g.quiet);
    let shard = a.shard.as_deref().map(scenario::parse_shard).transpose()?;
    let suite = scenario::load_suite(&a.suite)?;
    let method = &a.quality.method;
    let mut open = a.run.open_options(runtime, &method.diffusion);
    open.lpips = Some(a.models.encoder.lpips.clone());
    let options = a.run.options(g.max_pixels);
    if method.methods.len() == 1 && method.samples.len() == 1 {
        let config = a.quality.config()?;
        let models = Models::open(&a.models.editor.editor, &a.models.encoder.encoder, config.explain.needs(), &open)?;
        let summary = evaluate::evaluate_suite(
            &suite,
            shard,
            &models,
            &config,
            &options,
            &a.out.out,
            a.out.force,
            &EvalBars::new(quiet),
        )?;
        crate::cli::progress::warn_cache(&options, quiet);
        if !quiet {
            crate::cli::stdout::print(&summary.table())?;
        }
        return Ok(());
    }
    if shard.is_some() {
        bail!(
            "--shard splits one evaluation; a sweep of several methods or budgets runs whole. Fix: drop --shard or pass one --method and one --samples"
        );
    }
    if repeats(&method.methods) || repeats(&method.samples) {
        bail!("--method and --samples must not repeat a value. Fix: name each method and budget once");
    }
    // One model set serves every configuration that needs the same encoders.
    let configs = method.configs();
    let mut needs = configs[0].needs();
    needs.text_encoder = configs.iter().any(|c| c.needs().text_encoder);
    needs.lpips = configs.iter().any(|c| c.needs().lpips);
    let models = Models::open(&a.models.editor.editor, &a.models.encoder.encoder, needs, &open)?;
    // Every configuration is checked before the first evaluation starts.
    for config in configs {
        a.quality.with(config).validate(&models)?;
    }
    // The sweep's folder holds its tables beside the runs: never a folder gsmile did not make.
    gsmile::io::check_replaceable(&a.out.out, true)?;
    std::fs::create_dir_all(&a.out.out)?;
    gsmile::io::write_owner_marker(&a.out.out, "evaluate")?;
    let mut runs = Vec::new();
    for &budget in &method.samples {
        let label = match budget {
            Samples::Fixed(n) => n.to_string(),
            Samples::Auto => "auto".to_string(),
        };
        let mut at_budget: Vec<(String, PathBuf)> = Vec::new();
        for &m in &method.methods {
            let config = a.quality.with(method.config_for(m, budget));
            let dir = a.out.out.join(format!("{}-{label}", m.name()));
            if !quiet {
                eprintln!("evaluating --method {} --samples {label} into {}", m.name(), dir.display());
            }
            evaluate::evaluate_suite(
                &suite,
                None,
                &models,
                &config,
                &options,
                &dir,
                a.out.force,
                &EvalBars::new(quiet),
            )?;
            at_budget.push((m.name().to_string(), dir.clone()));
            runs.push(evaluate::SweepRun { method: m.name().into(), budget: label.clone(), dir });
        }
        if at_budget.len() > 1 {
            evaluate::compare(&at_budget, &a.out.out.join(format!("compare-{label}")))?;
        }
    }
    let summary = evaluate::sweep(&runs, &a.out.out)?;
    crate::cli::progress::warn_cache(&options, quiet);
    if !quiet {
        crate::cli::stdout::print(&summary.table())?;
    }
    Ok(())
}

/// Whether any value of `values` occurs twice.
fn repeats<T: PartialEq>(values: &[T]) -> bool {
    (1..values.len()).any(|i| values[..i].contains(&values[i]))
}
