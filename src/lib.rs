//! gsmile explains instruction-based image editors.
//!
//! Given an image and an editing instruction ("make the sky orange"), gsmile perturbs the
//! words of the instruction, runs the editor on every perturbed instruction, measures how
//! the output changes, and fits a weighted linear surrogate whose coefficients say which
//! words caused which change (gSMILE: generative Statistical Model-agnostic
//! Interpretability with Local Explanations).
//!
//! This crate is the library; the `gsmile` binary is a thin shell over it. Model bundles
//! ([`bundle`]) are loaded into wrappers that own their ONNX Runtime sessions
//! ([`editor`], [`encoder`], [`lpips`]); everything else sees plain `ndarray` and `image` types.

pub mod bundle;
pub mod cache;
pub mod describe;
pub mod distance;
pub mod editor;
pub mod encoder;
pub mod error;
pub mod evaluate;
pub mod explain;
pub mod imaging;
pub mod io;
pub mod lpips;
pub mod method;
pub mod metrics;
pub mod models;
pub mod output;
pub mod perturb;
pub mod preprocess;
pub mod render;
pub mod runtime;
pub mod scenario;
pub mod spatial;
pub mod stats;
pub mod surrogate;
pub mod tokenizer;

pub use error::{Error, Result};
