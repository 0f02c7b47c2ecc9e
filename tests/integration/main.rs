//! The integration tests, one module per area, in one binary so `cargo test` links the crate
//! and ONNX Runtime once (ripgrep's `tests/tests.rs` layout).
//!
//! Tests here run on parallel threads of one process, so none may depend on process-wide
//! state: they set no environment variable (children get theirs through `Command::env`),
//! never change the current directory, and read no global counter. Tests that count what the
//! whole process did live in `tests/counters`.

#[path = "../common/mod.rs"]
mod common;

mod accuracy;
mod architecture;
mod cli_edit;
mod cli_embed;
mod cli_evaluate;
mod cli_explain;
mod cli_methods;
mod clip_hf_parity;
mod clip_tokenizer;
mod evaluate;
mod examples;
mod features_parity;
mod fuzz;
mod layout;
mod lpips_parity;
mod methods_parity;
mod metrics_parity;
mod models;
mod parity;
mod pix2pix_parity;
mod preprocess_parity;
mod report_chromium;
mod runtime;
mod safety;
mod scenario;
mod stats_parity;
mod style;
mod workers;
