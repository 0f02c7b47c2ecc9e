//! The `gsmile` command line over the library, laid out as uv's: [`args`] holds the clap
//! structs, [`settings`] resolves them into library settings, and each command lives in
//! [`commands`]`/<command>.rs`; [`progress`] draws the bars and
//! [`stdout`] prints results.

pub mod args;
pub mod commands;
pub mod progress;
pub mod settings;
pub mod stdout;
