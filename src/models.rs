//! The models an explanation runs: opening them from bundle folders, and the identities
//! (name, path, content hash, parameters) every result records.
//!
//! [`Models::open`] is the one place bundles become an editor and encoders; the CLI, the
//! benches, the examples and the tests all call it. A caller with its own editor builds
//! [`Models`] directly from its public fields (see `examples/custom_editor.rs`).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::bundle::Bundle;
use crate::bundle::BundleKind;
use crate::editor::{self, DiffusionSettings, Editor};
use crate::encoder::{ClipEncoder, FeatureEncoder, ImageEncoder, TextEncoder};
use crate::lpips::Lpips;
use crate::runtime::RuntimeOptions;
use crate::{Error, Result, cache};

/// A model as an explanation records it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelInfo {
    /// The bundle's name.
    pub name: String,
    /// The bundle's kind (`editor`, `instruct-pix2pix`, `command`, `http`, `clip`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub kind: String,
    /// The bundle folder as given.
    pub path: String,
    /// SHA-256 over the bundle's files.
    pub sha256: String,
    /// Settings beyond the bundle that change its outputs (a diffusion editor's steps, guidance, size, seed); null for one-step models.
    #[serde(default, skip_serializing_if = "serde_json::Value::is_null")]
    pub params: serde_json::Value,
}

impl ModelInfo {
    /// The identity of `bundle`, its content hashed; `params` as the model reports them
    /// (JSON text, empty for none); `hash_memo` is where large files' hashes are remembered.
    pub fn from_bundle(bundle: &Bundle, params: &str, hash_memo: Option<&Path>) -> Result<Self> {
        Ok(ModelInfo {
            name: bundle.manifest().name.clone(),
            kind: bundle.manifest().kind.to_string(),
            path: bundle.dir().display().to_string(),
            sha256: bundle.content_hash_memo(hash_memo)?,
            params: serde_json::from_str(params).unwrap_or(serde_json::Value::Null),
        })
    }
}

/// The explained image as an explanation records it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImageInfo {
    /// The file as given.
    pub path: String,
    /// SHA-256 of the file's bytes.
    pub sha256: String,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
}

impl ImageInfo {
    /// The identity of the image file at `path`: its bytes hashed, its size read from the header.
    pub fn from_file(path: &Path) -> Result<Self> {
        let io = |e: std::io::Error| Error::InvalidInput(format!("{}: {e}", path.display()));
        let sha256 = cache::file_sha256(path).map_err(io)?;
        let reader = image::ImageReader::open(path).and_then(|r| r.with_guessed_format()).map_err(io)?;
        let (width, height) = reader.into_dimensions().map_err(|e| {
            Error::InvalidInput(format!("{}: not a readable image ({e}). Fix: pass a PNG or JPEG file", path.display()))
        })?;
        Ok(ImageInfo { path: path.display().to_string(), sha256, width, height })
    }
}

/// Which models an explanation needs besides the editor, and the editor's noise seed
/// (from [`crate::explain::ExplainConfig::needs`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Needs {
    /// An image encoder, to measure change on embeddings.
    pub image_encoder: bool,
    /// A text encoder, to weight samples by instruction distance.
    pub text_encoder: bool,
    /// An LPIPS network, to measure change perceptually.
    pub lpips: bool,
    /// The noise seed of stochastic (diffusion) editors.
    pub editor_seed: u64,
}

/// How models are opened: everything that is not the bundle folders.
#[derive(Debug, Clone)]
pub struct OpenOptions {
    /// ONNX Runtime session options.
    pub runtime: RuntimeOptions,
    /// Overrides of a diffusion editor's sampling settings (one-step editors refuse any).
    pub diffusion: DiffusionSettings,
    /// Most UNet rows per graph call of a diffusion editor (one-step editors take the batches
    /// [`crate::explain::RunOptions::max_batch`] makes).
    pub max_batch: usize,
    /// Folder where large model files' hashes are remembered (the cache folder), if any.
    pub hash_memo: Option<PathBuf>,
    /// Requests an editor behind an endpoint may have in flight at once; `None` keeps the bundle's.
    pub concurrency: Option<usize>,
    /// The LPIPS bundle, opened when the run measures change with it (`space = lpips`).
    pub lpips: Option<PathBuf>,
}

impl Default for OpenOptions {
    fn default() -> Self {
        OpenOptions {
            runtime: RuntimeOptions::default(),
            diffusion: DiffusionSettings::default(),
            max_batch: 32,
            hash_memo: None,
            concurrency: None,
            lpips: None,
        }
    }
}

/// The models an explanation runs, with the identities recorded in its JSON.
#[derive(Clone)]
pub struct Models {
    /// The editor being explained.
    pub editor: Arc<dyn Editor>,
    /// Its identity.
    pub editor_info: ModelInfo,
    /// Image encoder for `Space::Embedding`.
    pub image_encoder: Option<Arc<dyn ImageEncoder>>,
    /// Text encoder for `Weighting::TextWasserstein`.
    pub text_encoder: Option<Arc<dyn TextEncoder>>,
    /// The encoder's identity.
    pub encoder_info: Option<ModelInfo>,
    /// LPIPS network for `Space::Lpips`.
    pub lpips: Option<Arc<Lpips>>,
    /// Its identity.
    pub lpips_info: Option<ModelInfo>,
}

impl Models {
    /// Opens the editor bundle at `editor` and, when `needs` asks for one, the CLIP-style
    /// encoder bundle at `encoder`.
    ///
    /// Opening checks the bundles and hashes their files; graphs load on first use, so a run
    /// served from the cache loads none of them.
    pub fn open(editor: &Path, encoder: &Path, needs: Needs, options: &OpenOptions) -> Result<Self> {
        let memo = options.hash_memo.as_deref();
        // Both bundles are opened (and checked) before either is hashed, so a wrong encoder
        // folder fails at once even when the editor is gigabytes.
        let editor_bundle = Bundle::open(editor)?;
        let encoder_bundle =
            if needs.image_encoder || needs.text_encoder { Some(Bundle::open(encoder)?) } else { None };
        let lpips_bundle = match (&options.lpips, needs.lpips) {
            (Some(dir), true) => Some(Bundle::open(dir)?),
            (None, true) => {
                return Err(crate::error::ConfigError::new(
                    "space",
                    "`space = lpips` needs an LPIPS bundle. Fix: pass --lpips onnx/lpips-alex (OpenOptions::lpips in the library)",
                )
                .into());
            }
            (_, false) => None,
        };
        let diffusion = options.diffusion.with_seed(needs.editor_seed);
        let editor = editor::load(&editor_bundle, &options.runtime, diffusion, options.max_batch, options.concurrency)?;
        // A clip bundle serves both towers; a features bundle images only.
        type Towers = (Option<Arc<dyn ImageEncoder>>, Option<Arc<dyn TextEncoder>>);
        let (image_encoder, text_encoder): Towers = match &encoder_bundle {
            Some(b) if b.manifest().kind == BundleKind::Features => {
                if needs.text_encoder {
                    return Err(crate::error::ConfigError::new(
                            "weighting",
                            format!(
                                "these weights need a text encoder, and {} is a features bundle: it embeds images, not instructions. Fix: set `weighting = removed-words`, or give a clip `encoder`",
                                b.dir().display()
                            ),
                        )
                        .into());
                }
                (Some(Arc::new(FeatureEncoder::load(b, &options.runtime)?)), None)
            }
            Some(b) => {
                let clip = Arc::new(ClipEncoder::load(b, &options.runtime)?);
                (Some(clip.clone()), Some(clip))
            }
            None => (None, None),
        };
        let mut models = Models {
            editor_info: ModelInfo::from_bundle(&editor_bundle, &editor.params(), memo)?,
            editor: Arc::from(editor),
            image_encoder: None,
            text_encoder: None,
            encoder_info: None,
            lpips: None,
            lpips_info: None,
        };
        if let Some(bundle) = &lpips_bundle {
            models.lpips = Some(Arc::new(Lpips::load(bundle, &options.runtime)?));
            models.lpips_info = Some(ModelInfo::from_bundle(bundle, "", memo)?);
        }
        if let Some(bundle) = &encoder_bundle {
            models.encoder_info = Some(ModelInfo::from_bundle(bundle, "", memo)?);
            models.image_encoder = image_encoder;
            models.text_encoder = text_encoder;
        }
        Ok(models)
    }
}
