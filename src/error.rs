//! The crate-wide error type, one variant per area, each carrying what a user needs to act.

use crate::bundle::BundleError;
use crate::imaging::ImageError;
use crate::io::OutputError;
use crate::runtime::{ModelError, RuntimeError};
use crate::tokenizer::TokenizeError;

/// Any failure of the gsmile library.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// ONNX Runtime could not be found or started.
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    /// A model bundle is missing, malformed, or does not match its ONNX graphs (boxed: its
    /// messages carry several paths and names, and errors travel through every `Result`).
    #[error(transparent)]
    Bundle(Box<BundleError>),
    /// A model failed while running.
    #[error(transparent)]
    Model(#[from] ModelError),
    /// An image could not be read or written.
    #[error(transparent)]
    Image(#[from] ImageError),
    /// An instruction or caption could not be tokenised.
    #[error(transparent)]
    Tokenize(#[from] TokenizeError),
    /// An output file could not be written.
    #[error(transparent)]
    Output(#[from] OutputError),
    /// Perturbation settings that cannot work.
    #[error(transparent)]
    Perturb(#[from] crate::perturb::PerturbError),
    /// Distances asked of the wrong kind of data.
    #[error(transparent)]
    Distance(#[from] crate::distance::DistanceError),
    /// The surrogate could not be fitted.
    #[error(transparent)]
    Surrogate(#[from] crate::surrogate::SurrogateError),
    /// A diffusion scheduler config that cannot be run.
    #[error(transparent)]
    Scheduler(#[from] crate::editor::scheduler::SchedulerError),
    /// A CLIP image preprocessor config that cannot be used.
    #[error(transparent)]
    Preprocess(#[from] crate::preprocess::PreprocessError),
    /// An editor behind a worker process or an endpoint failed.
    #[error(transparent)]
    Worker(#[from] crate::editor::worker::WorkerError),
    /// A configuration value that cannot work, named by its config field.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A caller passed arguments that cannot work together.
    #[error("invalid input: {0}")]
    InvalidInput(String),
}

/// A configuration value that cannot work, alone or with the models at hand.
///
/// Messages name configuration fields in backticks (`` `kernel_width` ``, or
/// `` `space = pixels` `` for a value to set), the names of [`crate::explain::ExplainConfig`]
/// and [`crate::evaluate::EvalConfig`]; a front end that exposes them under other names (the
/// CLI's flags) rewrites those spans and nothing else.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{message}")]
pub struct ConfigError {
    /// The field at fault, as its config path (`surrogate.ridge_alpha`).
    pub field: &'static str,
    /// What is wrong and how to fix it, naming fields in backticks.
    pub message: String,
}

impl ConfigError {
    /// An error about `field`; `message` names fields in backticks.
    pub fn new(field: &'static str, message: impl Into<String>) -> Self {
        ConfigError { field, message: message.into() }
    }
}

impl From<BundleError> for Error {
    fn from(e: BundleError) -> Self {
        Error::Bundle(Box::new(e))
    }
}

/// Result with the crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
