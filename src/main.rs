//! The `gsmile` binary: parses the command line and dispatches to [`cli::commands`].

mod cli;

use std::process::ExitCode;

use clap::Parser;
use gsmile::runtime::RuntimeOptions;

use cli::args::{Cli, Command};
use cli::commands;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = RuntimeOptions { threads: cli.global.threads };
    let quiet = cli.global.quiet;
    let result = match &cli.command {
        Command::Explain(a) => commands::explain::run(a, runtime, quiet),
        Command::Evaluate(a) => commands::evaluate::run(a, runtime, quiet),
        Command::Merge(a) => commands::merge::run(a, quiet),
        Command::Compare(a) => commands::compare::run(a, runtime, quiet),
        Command::Edit(a) => commands::edit::run(a, runtime, quiet),
        Command::Embed(a) => commands::embed::run(a, runtime),
        Command::Models(a) => commands::models::run(a, runtime),
    };
    cli::progress::warn_fallbacks(quiet);
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", cli::settings::error_message(&e));
            ExitCode::FAILURE
        }
    }
}
