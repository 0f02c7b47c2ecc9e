//! `gsmile merge`: the tables of one run from the outputs of `evaluate --shard` runs.

use anyhow::Result;

use crate::cli::args::MergeArgs;

/// Merges the shard folders and prints the summary table.
pub fn run(a: &MergeArgs, quiet: bool) -> Result<()> {
    let summary = gsmile::evaluate::merge(&a.inputs, &a.out.out, a.out.force)?;
    if !quiet {
        crate::cli::stdout::print(&summary.table())?;
    }
    Ok(())
}
