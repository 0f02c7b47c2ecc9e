//! The `gsmile` binary: parses the command line and dispatches to [`cli::commands`].

mod cli;

use std::process::ExitCode;

use clap::Parser;

use cli::args::{Cli, Command};
use cli::commands;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let g = &cli.global;
    let quiet = g.quiet;
    let result = match &cli.command {
        Command::Explain(a) => commands::explain::run(a, g),
        Command::Evaluate(a) => commands::evaluate::run(a, g),
        Command::Merge(a) => commands::merge::run(a, quiet),
        Command::Compare(a) => commands::compare::run(a, g),
        Command::Edit(a) => commands::edit::run(a, g),
        Command::Embed(a) => commands::embed::run(a, g),
        Command::Models(a) => commands::models::run(a, g.runtime()),
        Command::Cache(a) => commands::cache::run(a),
    };
    cli::progress::warn_fallbacks(quiet);
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if cli::stdout::is_closed_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            // Messages quote what the user typed; its control characters must not reach the
            // terminal raw (newlines between a message's lines are kept).
            let message = cli::settings::error_message(&e);
            let lines: Vec<String> = message.lines().map(gsmile::render::escape_control).collect();
            eprintln!("error: {}", lines.join("\n"));
            ExitCode::FAILURE
        }
    }
}
