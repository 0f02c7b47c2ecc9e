//! Model bundles: a folder with a `bundle.toml` manifest, ONNX graphs and a tokenizer.
//!
//! The manifest says what kind of model the folder holds, which files and tensor names
//! to use, and how images and text must be prepared. Loading a bundle validates the
//! manifest; the model wrappers then check it against the graphs' real inputs and outputs.

// Errors here carry the paths, fields and fixes a user needs; they are returned on cold
// load paths only, so their size does not matter.
#![allow(clippy::result_large_err)]

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The manifest's file name inside a bundle folder.
pub const MANIFEST: &str = "bundle.toml";

/// What to do about a folder that holds no bundle, never suggesting the folder that failed.
fn not_found_fix(path: &Path) -> String {
    if path.starts_with("onnx") || path.to_string_lossy().contains("/onnx/") {
        format!(
            "pass a folder that holds a {MANIFEST}; `gsmile models onnx` lists the shipped ones, and `git checkout onnx` restores them"
        )
    } else {
        format!(
            "pass a folder that holds a {MANIFEST}, e.g. onnx/tiny-editor; `gsmile models onnx` lists the shipped ones"
        )
    }
}

/// A bundle that cannot be used, with the place to fix it.
#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    /// The folder or its manifest does not exist.
    #[error("{path}: no model bundle here ({what}). Fix: {}", not_found_fix(path))]
    NotFound {
        /// The path that was given.
        path: PathBuf,
        /// What is missing.
        what: String,
    },
    /// The bundle is there but a file it needs cannot be read (permissions, a disk error).
    #[error("{path}: cannot read {what}. Fix: check that the file is readable (permissions, disk)")]
    Unreadable {
        /// The file or folder that failed.
        path: PathBuf,
        /// What failed, and how.
        what: String,
    },
    /// A diffusers export is missing part of its layout.
    #[error(
        "{path}: the diffusers ONNX layout needs {file}, which is missing. Fix: export the pipeline again with `python onnx/export_ip2p.py CHECKPOINT {path}`"
    )]
    Incomplete {
        /// The bundle folder.
        path: PathBuf,
        /// The missing file, relative to it.
        file: String,
    },
    /// The manifest is not valid TOML or misses a field.
    #[error("{path}: {message}")]
    Manifest {
        /// The manifest file.
        path: PathBuf,
        /// The parser's message, with line and field.
        message: String,
    },
    /// A field has a value that cannot work.
    #[error("{path}: field `{field}` {message}")]
    Field {
        /// The manifest file.
        path: PathBuf,
        /// The dotted field name.
        field: String,
        /// What is wrong and how to fix it.
        message: String,
    },
    /// The bundle is of another kind than the command needs.
    #[error(
        "{bundle}: is a `{found}` bundle but {role} needs kind `{expected}`. Fix: pass a `{expected}` bundle (see `gsmile models`)"
    )]
    WrongKind {
        /// The bundle folder.
        bundle: PathBuf,
        /// The kind the caller needs.
        expected: String,
        /// The kind the manifest declares.
        found: String,
        /// What the bundle was passed as, e.g. `--editor`.
        role: String,
    },
    /// A graph lacks a tensor the manifest names.
    #[error(
        "bundle {bundle}: {file} has no {side} named `{name}` (set by `{field}` in {MANIFEST}); the graph's {side}s are: {available:?}. Fix: set `{field}` to one of them"
    )]
    MissingTensor {
        /// The bundle folder.
        bundle: PathBuf,
        /// The ONNX file.
        file: PathBuf,
        /// `input` or `output`.
        side: String,
        /// Manifest field naming the tensor.
        field: &'static str,
        /// The missing name.
        name: String,
        /// Names the graph does have.
        available: Vec<String>,
    },
    /// A tensor exists but has another element type, rank or size than required.
    #[error(
        "bundle {bundle}: {file} {side} `{name}` (set by `{field}`) should be {expected} but the graph has {found}. Fix: re-export the model with that signature or point `{field}` at the right tensor"
    )]
    Contract {
        /// The bundle folder.
        bundle: PathBuf,
        /// The ONNX file.
        file: PathBuf,
        /// `input` or `output`.
        side: String,
        /// Manifest field naming the tensor.
        field: &'static str,
        /// Tensor name.
        name: String,
        /// What gsmile needs.
        expected: String,
        /// What the graph declares.
        found: String,
    },
    /// ONNX Runtime rejected a graph file.
    #[error("bundle {bundle}: {file}: {message}")]
    Graph {
        /// The bundle folder.
        bundle: PathBuf,
        /// The ONNX file.
        file: PathBuf,
        /// What ONNX Runtime said.
        message: String,
    },
    /// The tokenizer file or folder is missing, unreadable or inconsistent; the message ends with the fix.
    #[error("bundle {bundle}: tokenizer {file}: {message}")]
    Tokenizer {
        /// The bundle folder.
        bundle: PathBuf,
        /// The tokenizer file.
        file: PathBuf,
        /// What went wrong.
        message: String,
    },
}

/// What a bundle holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BundleKind {
    /// A one-step editor: (image, instruction) → edited image in a single graph.
    Editor,
    /// A CLIP-style dual encoder with separate image and text graphs.
    Clip,
    /// A diffusers InstructPix2Pix pipeline in the ONNX layout (text encoder, UNet, VAE encoder and decoder, scheduler config).
    InstructPix2Pix,
    /// Any editor behind a local worker process speaking gsmile's JSON-lines protocol (`[worker]`).
    Command,
    /// Any editor behind an HTTP endpoint (`[http]`): gsmile's protocol or an OpenAI-style image-edit API.
    Http,
    /// A learned perceptual distance between two images (LPIPS, `[lpips]`).
    Lpips,
    /// An image feature model (DINOv2, ViT, a CNN's conv features, `[features]`): image embeddings only.
    Features,
}

impl std::fmt::Display for BundleKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            BundleKind::Editor => "editor",
            BundleKind::Clip => "clip",
            BundleKind::InstructPix2Pix => "instruct-pix2pix",
            BundleKind::Command => "command",
            BundleKind::Http => "http",
            BundleKind::Lpips => "lpips",
            BundleKind::Features => "features",
        })
    }
}

/// Where a bundle's models came from and under which terms they may be used.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Provenance {
    /// The command that made the bundle.
    #[serde(default)]
    pub made_by: String,
    /// Licence of the weights.
    #[serde(default)]
    pub licence: String,
    /// Free text: measured figures, limits.
    #[serde(default)]
    pub notes: String,
}

/// How instructions become token ids.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenizerSpec {
    /// A Hugging Face `tokenizers` JSON file, or a tokenizer folder (`tokenizer.json`, or CLIP's `vocab.json` + `merges.txt`), relative to the bundle.
    pub file: PathBuf,
    /// Token sequence length the graphs take; longer instructions are rejected.
    pub max_length: usize,
}

/// How images are fed to the graphs.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImageSpec {
    /// Input height in pixels.
    pub height: u32,
    /// Input width in pixels.
    pub width: u32,
    /// Per-channel mean subtracted after mapping pixels to `range`.
    pub mean: [f32; 3],
    /// Per-channel standard deviation divided by after subtracting `mean`.
    pub std: [f32; 3],
    /// Value range pixels are mapped to before normalising (`[0, 1]` or `[-1, 1]`).
    pub range: [f32; 2],
}

impl ImageSpec {
    /// The settings in one line, for listings.
    pub fn summary(&self) -> String {
        format!("{}x{} range {:?} mean {:?} std {:?}", self.height, self.width, self.range, self.mean, self.std)
    }
}

/// Tensor names of a one-step editor graph.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EditorSection {
    /// The ONNX file, relative to the bundle.
    pub file: PathBuf,
    /// Image input `[B,3,H,W]` float32.
    pub image_input: String,
    /// Token ids input `[B,L]` int64.
    pub ids_input: String,
    /// Attention mask input `[B,L]` int64.
    pub mask_input: String,
    /// Edited image output `[B,3,H,W]` float32, in the image `range`.
    pub output: String,
}

/// Files and tensor names of a CLIP-style dual encoder.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClipSection {
    /// Embedding width shared by both towers.
    pub embed_dim: usize,
    /// Whether the graphs already L2-normalise their embeddings.
    #[serde(default)]
    pub normalized: bool,
    /// A Hugging Face `preprocessor_config.json` (CLIPImageProcessor) that replaces the `[image]` section's plain resize.
    #[serde(default)]
    pub preprocessor: Option<PathBuf>,
    /// Image tower ONNX file.
    pub image_file: PathBuf,
    /// Image tower input `[B,3,H,W]` float32, normalised.
    pub pixel_input: String,
    /// Image tower output `[B,D]` float32.
    pub image_output: String,
    /// Text tower ONNX file.
    pub text_file: PathBuf,
    /// Text tower token ids input `[B,L]` int64.
    pub ids_input: String,
    /// Text tower attention mask input `[B,L]` int64.
    pub mask_input: String,
    /// Text tower output `[B,D]` float32.
    pub text_output: String,
}

/// Most pixels a side of the images a bundle's graphs take (`[image]`, a preprocessor's
/// sizes): beyond any image model gsmile runs, and small enough that a batch fits in memory.
pub const MAX_MODEL_SIDE: u32 = 4096;

/// Widest features a `features` bundle may declare (`features.dim`): beyond any image model.
pub const MAX_FEATURE_DIM: usize = 65_536;

/// Most prefix tokens (CLS and registers) a `features` bundle may declare.
pub const MAX_PREFIX_TOKENS: usize = 64;

/// Most tokens of an instruction a bundle may declare (`tokenizer.max_length`).
pub const MAX_TOKENS: usize = 8192;

/// The parsed `bundle.toml`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// What the bundle holds.
    pub kind: BundleKind,
    /// Short name shown in reports.
    pub name: String,
    /// One sentence about the model.
    #[serde(default)]
    pub description: String,
    /// Origin and licence.
    #[serde(default)]
    pub provenance: Provenance,
    /// Tokenizer settings; required except for editors behind a worker or an endpoint,
    /// which tokenise for themselves.
    #[serde(default)]
    pub tokenizer: Option<TokenizerSpec>,
    /// Image settings; optional for clip bundles with a `preprocessor` and for instruct-pix2pix bundles.
    #[serde(default)]
    pub image: Option<ImageSpec>,
    /// Present for `kind = "editor"`.
    #[serde(default)]
    pub editor: Option<EditorSection>,
    /// Present for `kind = "clip"`.
    #[serde(default)]
    pub clip: Option<ClipSection>,
    /// Optional for `kind = "instruct-pix2pix"`: default sampling settings.
    #[serde(default)]
    pub pix2pix: Option<DiffusionSettings>,
    /// Present for `kind = "command"`.
    #[serde(default)]
    pub worker: Option<WorkerSection>,
    /// Present for `kind = "http"`.
    #[serde(default)]
    pub http: Option<HttpSection>,
    /// Present for `kind = "lpips"`.
    #[serde(default)]
    pub lpips: Option<LpipsSection>,
    /// Present for `kind = "features"`.
    #[serde(default)]
    pub features: Option<FeaturesSection>,
}

/// How a feature graph lays out its output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FeatureLayout {
    /// `[B, T, D]`: a transformer's tokens (transformers' `last_hidden_state`), prefix tokens first.
    Tokens,
    /// `[B, D, h, w]`: a convolutional feature map, one token per position.
    Channels,
}

/// How a feature graph's tokens become one vector per image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Pooling {
    /// The mean of every token (the SMILE paper's pooling of DINOv2), or global average pooling of a feature map.
    Mean,
    /// The first token (a ViT's CLS token, transformers' `pooler_output` before any head).
    Cls,
}

/// The graph of a feature encoder (`kind = "features"`): `pixel_values` in, tokens or a
/// feature map out, pooled by gsmile.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeaturesSection {
    /// The ONNX graph.
    pub file: PathBuf,
    /// Input `[B,3,H,W]` float32, prepared by `preprocessor` (or the `[image]` section).
    pub pixel_input: String,
    /// Output: `[B,T,D]` tokens or a `[B,D,h,w]` map (`layout`).
    pub output: String,
    /// How `output` is laid out.
    pub layout: FeatureLayout,
    /// Feature width D.
    pub dim: usize,
    /// How tokens become one vector.
    pub pooling: Pooling,
    /// Tokens before the patch tokens (CLS and registers), left out of the patch set patch-OT compares.
    #[serde(default)]
    pub prefix_tokens: usize,
    /// A Hugging Face `preprocessor_config.json` (CLIP, Bit or ViT image processor) replacing the `[image]` resize.
    #[serde(default)]
    pub preprocessor: Option<PathBuf>,
}

/// The graph of an LPIPS bundle (`kind = "lpips"`): two images in `[-1, 1]` of any size of at
/// least `min_side`, their distance and its per-pixel map out.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LpipsSection {
    /// The ONNX graph.
    pub file: PathBuf,
    /// First image input, float32 `[B,3,H,W]` in `[-1, 1]`.
    pub image_0: String,
    /// Second image input, like the first.
    pub image_1: String,
    /// Output: float32 `[B]`, the distance of each pair.
    pub distance: String,
    /// Output: float32 `[B,1,H,W]`, each layer's distance map upsampled to the input and summed.
    pub distance_map: String,
    /// The smallest side the network takes (its strides and pools); smaller images are enlarged to it.
    pub min_side: u32,
}

/// How to start an editor's worker process (`kind = "command"`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkerSection {
    /// The program and its arguments, run in the bundle's folder (relative paths in the
    /// arguments are relative to it), e.g. `["python3", "worker.py", "--device", "cuda"]`.
    pub command: Vec<String>,
    /// Seconds one request may take before the worker is stopped and the run fails.
    #[serde(default = "default_timeout")]
    pub timeout_s: f64,
    /// Seconds the worker may take to start and answer the handshake (loading weights).
    #[serde(default = "default_startup")]
    pub startup_timeout_s: f64,
    /// Settings passed to the worker with every request (and part of every cache key).
    #[serde(default)]
    pub params: toml::Table,
}

/// Which wire format an HTTP editor speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum HttpPreset {
    /// gsmile's own protocol: a `hello` and `edit` requests as JSON, as a command worker gets them.
    #[default]
    Gsmile,
    /// An OpenAI-compatible image edit endpoint: multipart image and prompt in, base64 image out.
    OpenaiImagesEdit,
}

/// How to reach an editor behind an HTTP endpoint (`kind = "http"`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpSection {
    /// The endpoint, e.g. `http://127.0.0.1:8000/edit` or `https://api.openai.com/v1/images/edits`.
    pub url: String,
    /// The wire format.
    #[serde(default)]
    pub preset: HttpPreset,
    /// Seconds one request may take.
    #[serde(default = "default_timeout")]
    pub timeout_s: f64,
    /// Retries of a request that failed with 429, a 5xx status or a broken connection.
    #[serde(default = "default_retries")]
    pub retries: u32,
    /// Requests in flight at once (the command line's `--concurrency` overrides it).
    #[serde(default = "default_concurrency")]
    pub concurrency: usize,
    /// The environment variable that holds the credential; the secret itself never appears
    /// in the bundle, a cache key or an explanation.
    #[serde(default)]
    pub auth_env: Option<String>,
    /// The header the credential goes in.
    #[serde(default = "default_auth_header")]
    pub auth_header: String,
    /// Put before the credential in the header (`"Bearer"`; empty for a bare key).
    #[serde(default = "default_auth_scheme")]
    pub auth_scheme: String,
    /// `openai-images-edit`: the model to ask for, e.g. `gpt-image-1`.
    #[serde(default)]
    pub model: Option<String>,
    /// `openai-images-edit`: the image size to ask for and expect, `[height, width]`.
    #[serde(default)]
    pub size: Option<[u32; 2]>,
    /// Settings passed with every request (and part of every cache key).
    #[serde(default)]
    pub params: toml::Table,
}

fn default_timeout() -> f64 {
    600.0
}
fn default_startup() -> f64 {
    120.0
}
fn default_retries() -> u32 {
    5
}
fn default_concurrency() -> usize {
    4
}
fn default_auth_header() -> String {
    "Authorization".into()
}
fn default_auth_scheme() -> String {
    "Bearer".into()
}

/// Sampling settings of a diffusion editor, each optional: a bundle's defaults (`[pix2pix]` in
/// `bundle.toml`), the command line's flags (`#[command(flatten)]` it), or one layered over the
/// other with [`DiffusionSettings::or`]. The editor resolves what is left unset.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize, clap::Args)]
#[serde(from = "Pix2PixKeys", into = "Pix2PixKeys")]
pub struct DiffusionSettings {
    /// Denoising steps [default: the bundle's, else 20].
    #[arg(long, value_name = "N")]
    pub steps: Option<usize>,
    /// Text guidance scale [default: the bundle's, else 7.5].
    #[arg(long, value_name = "G")]
    pub guidance_scale: Option<f32>,
    /// Image guidance scale [default: the bundle's, else 1.5].
    #[arg(long, value_name = "G")]
    pub image_guidance_scale: Option<f32>,
    /// Working size, N or WxH, a multiple of the VAE's factor [default: the UNet's sample size × factor].
    #[arg(long, value_name = "WxH", value_parser = Size::parse)]
    pub size: Option<Size>,
    /// Seed of the initial latents and of every step's noise; set by the caller (`--seed`,
    /// `--editor-seed`), never by a bundle.
    #[arg(skip)]
    pub seed: Option<u64>,
}

impl DiffusionSettings {
    /// These settings where given, else `base`'s (`overrides.or(bundle_defaults)`), side by side for the size.
    pub fn or(self, base: DiffusionSettings) -> DiffusionSettings {
        let size = match (self.size, base.size) {
            (Some(over), Some(under)) => Some(over.or(under)),
            (over, under) => over.or(under),
        };
        DiffusionSettings {
            steps: self.steps.or(base.steps),
            guidance_scale: self.guidance_scale.or(base.guidance_scale),
            image_guidance_scale: self.image_guidance_scale.or(base.image_guidance_scale),
            size,
            seed: self.seed.or(base.seed),
        }
    }

    /// These settings with noise seed `seed`.
    pub fn with_seed(self, seed: u64) -> DiffusionSettings {
        DiffusionSettings { seed: Some(seed), ..self }
    }

    /// The field of the first sampling setting given (the seed aside), for editors that have
    /// no such setting to refuse it by name (the CLI names it as its flag).
    pub fn first_field(&self) -> Option<&'static str> {
        [
            ("steps", self.steps.is_some()),
            ("guidance_scale", self.guidance_scale.is_some()),
            ("image_guidance_scale", self.image_guidance_scale.is_some()),
            ("size", self.size.is_some()),
        ]
        .into_iter()
        .find_map(|(flag, given)| given.then_some(flag))
    }
}

/// A diffusion editor's working size in pixels; a side left unset takes the model's default.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Size {
    /// Width in pixels.
    pub width: Option<u32>,
    /// Height in pixels.
    pub height: Option<u32>,
}

impl Size {
    /// Parses `N` or `WxH` (the `--size` flag), setting both sides.
    pub fn parse(s: &str) -> Result<Size, String> {
        let parse = |t: &str| t.trim().parse::<u32>().ok().filter(|&n| n > 0);
        let parsed = match s.split_once(['x', 'X']) {
            Some((w, h)) => parse(w).zip(parse(h)),
            None => parse(s).map(|n| (n, n)),
        };
        let (width, height) = parsed.ok_or_else(|| {
            format!("{s:?} is not a size. Fix: pass N or WxH with positive integers, e.g. 512 or 512x384")
        })?;
        Ok(Size { width: Some(width), height: Some(height) })
    }

    /// This size's sides where set, else `base`'s.
    pub fn or(self, base: Size) -> Size {
        Size { width: self.width.or(base.width), height: self.height.or(base.height) }
    }
}

/// The keys of `[pix2pix]` in `bundle.toml`, where the size is two keys; a bundle sets no seed.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Pix2PixKeys {
    steps: Option<usize>,
    guidance_scale: Option<f32>,
    image_guidance_scale: Option<f32>,
    /// A multiple of the VAE's downsampling factor.
    height: Option<u32>,
    width: Option<u32>,
}

impl From<Pix2PixKeys> for DiffusionSettings {
    fn from(k: Pix2PixKeys) -> Self {
        let size = (k.width.is_some() || k.height.is_some()).then_some(Size { width: k.width, height: k.height });
        DiffusionSettings {
            steps: k.steps,
            guidance_scale: k.guidance_scale,
            image_guidance_scale: k.image_guidance_scale,
            size,
            seed: None,
        }
    }
}

impl From<DiffusionSettings> for Pix2PixKeys {
    fn from(s: DiffusionSettings) -> Self {
        let size = s.size.unwrap_or_default();
        Pix2PixKeys {
            steps: s.steps,
            guidance_scale: s.guidance_scale,
            image_guidance_scale: s.image_guidance_scale,
            height: size.height,
            width: size.width,
        }
    }
}

/// What a loaded model says about itself in listings (`gsmile models`), beyond its manifest.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Description {
    /// How it takes images, in one line: the preprocessing, or a diffusion editor's working settings.
    pub image: String,
    /// One line per graph input and output, as the loaded graphs declare them.
    pub signature: Vec<String>,
}

/// The diffusers pipeline index of an ONNX InstructPix2Pix folder.
pub const MODEL_INDEX: &str = "model_index.json";

/// The files of the diffusers ONNX layout that an instruct-pix2pix bundle must have.
pub const PIX2PIX_FILES: [&str; 6] = [
    "scheduler/scheduler_config.json",
    "text_encoder/model.onnx",
    "unet/model.onnx",
    "vae_encoder/model.onnx",
    "vae_decoder/model.onnx",
    "tokenizer",
];

/// A bundle folder with its validated manifest.
#[derive(Debug, Clone)]
pub struct Bundle {
    dir: PathBuf,
    manifest: Manifest,
}

impl Bundle {
    /// Reads and validates `dir/bundle.toml`; files it names must exist.
    pub fn open(dir: impl AsRef<Path>) -> Result<Bundle, BundleError> {
        let dir = dir.as_ref().to_path_buf();
        if !dir.is_dir() {
            return Err(BundleError::NotFound { path: dir, what: "no such folder".into() });
        }
        let path = dir.join(MANIFEST);
        if !path.is_file() && dir.join(MODEL_INDEX).is_file() {
            let bundle = Bundle { manifest: diffusers_manifest(&dir)?, dir };
            bundle.validate()?;
            return Ok(bundle);
        }
        let text = std::fs::read_to_string(&path).map_err(|e| BundleError::NotFound {
            path: dir.clone(),
            what: format!("cannot read {MANIFEST} ({e}) and no diffusers {MODEL_INDEX} either"),
        })?;
        let manifest: Manifest =
            toml::from_str(&text).map_err(|e| BundleError::Manifest { path: path.clone(), message: e.to_string() })?;
        let bundle = Bundle { dir, manifest };
        bundle.validate()?;
        Ok(bundle)
    }

    /// The bundle folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The parsed manifest.
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// A file of the bundle, resolved against its folder.
    pub fn file(&self, relative: &Path) -> PathBuf {
        self.dir.join(relative)
    }

    /// Fails unless the bundle is of kind `kind`; `role` names the CLI flag it came from.
    pub fn expect_kind(&self, kind: BundleKind, role: &str) -> Result<(), BundleError> {
        if self.manifest.kind == kind {
            Ok(())
        } else {
            Err(BundleError::WrongKind {
                bundle: self.dir.clone(),
                expected: kind.to_string(),
                found: self.manifest.kind.to_string(),
                role: role.to_string(),
            })
        }
    }

    /// The tokenizer settings, or an error naming the bundle when it has none.
    pub fn tokenizer_spec(&self) -> Result<&TokenizerSpec, BundleError> {
        self.manifest
            .tokenizer
            .as_ref()
            .ok_or_else(|| self.field_err("tokenizer", "is missing: this kind of bundle needs a [tokenizer] section"))
    }

    /// The image settings; `field` names what needs them in the error when the bundle has none.
    pub fn image_spec(&self, field: &str) -> Result<&ImageSpec, BundleError> {
        self.manifest.image.as_ref().ok_or_else(|| self.field_err("image", format!("is missing but {field} needs it")))
    }

    /// Total size of the bundle's files in bytes, subfolders included.
    pub fn size_bytes(&self) -> u64 {
        files_under(&self.dir)
            .map(|files| files.iter().filter_map(|f| f.metadata().ok()).map(|m| m.len()).sum())
            .unwrap_or(0)
    }

    /// SHA-256 over the bundle's files (relative paths and contents, sorted), and over every
    /// file its manifest names outside its folder (an absolute or `../` path): the model's
    /// identity in caches and reports, so no file it runs on can change without changing it.
    pub fn content_hash(&self) -> Result<String, BundleError> {
        self.content_hash_memo(None)
    }

    /// The files (or tokenizer folders) the manifest names, relative to the bundle.
    fn named_files(&self) -> Vec<&Path> {
        let m = &self.manifest;
        let mut named: Vec<&Path> = m.tokenizer.iter().map(|t| t.file.as_path()).collect();
        if let Some(e) = &m.editor {
            named.push(&e.file);
        }
        if let Some(l) = &m.lpips {
            named.push(&l.file);
        }
        if let Some(c) = &m.clip {
            named.extend([c.image_file.as_path(), c.text_file.as_path()]);
            named.extend(c.preprocessor.as_deref());
        }
        named
    }

    /// [`Bundle::content_hash`], remembering large files' hashes in `memo_dir` (see [`crate::cache::file_sha256_memo`]).
    pub fn content_hash_memo(&self, memo_dir: Option<&Path>) -> Result<String, BundleError> {
        let err =
            |e: std::io::Error| BundleError::Unreadable { path: self.dir.clone(), what: format!("its files ({e})") };
        // A worker runs in its bundle's folder and may write there (logs, __pycache__,
        // downloaded weights); its identity is its handshake, so only the manifest counts.
        let files = if matches!(self.manifest.kind, BundleKind::Command | BundleKind::Http) {
            vec![self.dir.join(MANIFEST)]
        } else {
            files_under(&self.dir).map_err(err)?
        };
        let mut parts = Vec::new();
        for f in &files {
            let name = f.strip_prefix(&self.dir).unwrap_or(f).to_string_lossy().into_owned();
            parts.push(name.into_bytes());
            parts.push(crate::cache::file_sha256_memo(f, memo_dir).map_err(err)?.into_bytes());
        }
        // Files named outside the folder, each under its resolved path (what the graphs
        // load); folders inside were hashed above.
        let inside = std::fs::canonicalize(&self.dir).map_err(err)?;
        for rel in self.named_files() {
            let Ok(path) = std::fs::canonicalize(self.file(rel)) else { continue };
            if path.starts_with(&inside) {
                continue;
            }
            let outside = if path.is_dir() { files_under(&path).map_err(err)? } else { vec![path.clone()] };
            for f in outside {
                parts.push(format!("outside:{}", f.display()).into_bytes());
                parts.push(crate::cache::file_sha256_memo(&f, memo_dir).map_err(err)?.into_bytes());
            }
        }
        let refs: Vec<&[u8]> = parts.iter().map(Vec::as_slice).collect();
        Ok(crate::cache::key(&refs))
    }

    fn field_err(&self, field: &str, message: impl Into<String>) -> BundleError {
        BundleError::Field { path: self.dir.join(MANIFEST), field: field.to_string(), message: message.into() }
    }

    fn require_file(&self, field: &str, rel: &Path) -> Result<(), BundleError> {
        // Only the tokenizer may be a folder (a Hugging Face tokenizer directory).
        let path = self.file(rel);
        if path.is_file() || (field == "tokenizer.file" && path.is_dir()) {
            Ok(())
        } else {
            Err(self.field_err(
                field,
                format!(
                    "names {}, which does not exist in {}. Fix: copy the file there or correct the name",
                    rel.display(),
                    self.dir.display()
                ),
            ))
        }
    }

    fn validate(&self) -> Result<(), BundleError> {
        let m = &self.manifest;
        if let Some(img) = &m.image {
            if img.height == 0 || img.width == 0 {
                return Err(self.field_err("image.height/width", "must be positive"));
            }
            if img.height.max(img.width) > MAX_MODEL_SIDE {
                return Err(self.field_err(
                    "image.height/width",
                    format!(
                        "is {}x{}, beyond the {MAX_MODEL_SIDE} pixels a side gsmile feeds a graph (one batch would need gigabytes). Fix: give the size the graph takes",
                        img.width, img.height
                    ),
                ));
            }
            if img.std.iter().any(|s| !s.is_finite() || *s <= 0.0) {
                return Err(self.field_err("image.std", "must be positive numbers"));
            }
            if img.mean.iter().any(|s| !s.is_finite()) {
                return Err(self.field_err("image.mean", "must be finite numbers"));
            }
            if !(img.range[0].is_finite() && img.range[1].is_finite() && img.range[0] < img.range[1]) {
                return Err(self.field_err("image.range", "must be [low, high] with low < high, e.g. [0.0, 1.0]"));
            }
        }
        if m.kind == BundleKind::InstructPix2Pix {
            for rel in PIX2PIX_FILES {
                if !self.dir.join(rel).exists() {
                    return Err(BundleError::Incomplete { path: self.dir.clone(), file: rel.to_string() });
                }
            }
        }
        if !matches!(m.kind, BundleKind::Command | BundleKind::Http | BundleKind::Lpips | BundleKind::Features)
            || m.tokenizer.is_some()
        {
            let t = self.tokenizer_spec()?;
            if t.max_length == 0 || t.max_length > MAX_TOKENS {
                return Err(self.field_err(
                    "tokenizer.max_length",
                    format!("is {}; it must be 1 to {MAX_TOKENS} (CLIP takes 77)", t.max_length),
                ));
            }
            self.require_file("tokenizer.file", &t.file)?;
        }
        match m.kind {
            BundleKind::Command => {
                let w = m.worker.as_ref().ok_or_else(|| {
                    self.field_err("worker", "is missing: a command bundle needs a [worker] section with `command`")
                })?;
                if w.command.first().is_none_or(|p| p.trim().is_empty()) {
                    return Err(self.field_err(
                        "worker.command",
                        "is empty. Fix: name the program and its arguments, e.g. command = [\"python3\", \"worker.py\"]",
                    ));
                }
                for (field, t) in [("worker.timeout_s", w.timeout_s), ("worker.startup_timeout_s", w.startup_timeout_s)]
                {
                    if !(t.is_finite() && t > 0.0 && t <= 86_400.0) {
                        return Err(self.field_err(field, format!("is {t}; give seconds between 0 and 86400")));
                    }
                }
            }
            BundleKind::Http => {
                let h = m.http.as_ref().ok_or_else(|| {
                    self.field_err("http", "is missing: an http bundle needs an [http] section with `url`")
                })?;
                let uri = h.url.parse::<ureq::http::Uri>().ok();
                let scheme_ok = uri.as_ref().and_then(|u| u.scheme_str()).is_some_and(|s| s == "http" || s == "https");
                let host_ok = uri.as_ref().and_then(|u| u.host()).is_some_and(|s| !s.is_empty());
                let port_ok = uri.as_ref().and_then(|u| u.authority()).is_some_and(|a| !a.as_str().ends_with(':'));
                if !(scheme_ok && host_ok && port_ok) {
                    return Err(self.field_err(
                        "http.url",
                        format!(
                            "is {:?}; give an http:// or https:// URL with a host, e.g. \"http://127.0.0.1:8000/edit\"",
                            h.url
                        ),
                    ));
                }
                if !(h.timeout_s.is_finite() && h.timeout_s > 0.0 && h.timeout_s <= 86_400.0) {
                    return Err(self
                        .field_err("http.timeout_s", format!("is {}; give seconds between 0 and 86400", h.timeout_s)));
                }
                if h.concurrency == 0 || h.concurrency > 256 {
                    return Err(self.field_err("http.concurrency", format!("is {}; give 1 to 256", h.concurrency)));
                }
                if h.retries > 20 {
                    return Err(self.field_err("http.retries", format!("is {}; give 0 to 20", h.retries)));
                }
                if h.preset == HttpPreset::OpenaiImagesEdit && h.size.is_none() {
                    return Err(self.field_err(
                        "http.size",
                        "is missing: an openai-images-edit endpoint does not say its size. Fix: set size = [1024, 1024]",
                    ));
                }
                if let Some([hh, ww]) = h.size
                    && (hh == 0 || ww == 0 || hh.max(ww) > MAX_MODEL_SIDE)
                {
                    return Err(self.field_err("http.size", format!("is {hh}x{ww}; give 1 to {MAX_MODEL_SIDE} a side")));
                }
            }
            BundleKind::Editor => {
                let e = m.editor.as_ref().ok_or_else(|| {
                    self.field_err("editor", "is missing: an editor bundle needs an [editor] section")
                })?;
                self.image_spec("an editor bundle")?;
                self.require_file("editor.file", &e.file)?;
            }
            BundleKind::InstructPix2Pix => {}
            BundleKind::Lpips => {
                let l = m
                    .lpips
                    .as_ref()
                    .ok_or_else(|| self.field_err("lpips", "is missing: an lpips bundle needs an [lpips] section"))?;
                if l.min_side == 0 || l.min_side > MAX_MODEL_SIDE {
                    return Err(
                        self.field_err("lpips.min_side", format!("is {}; give 1 to {MAX_MODEL_SIDE}", l.min_side))
                    );
                }
                self.require_file("lpips.file", &l.file)?;
            }
            BundleKind::Features => {
                let f = m.features.as_ref().ok_or_else(|| {
                    self.field_err("features", "is missing: a features bundle needs a [features] section")
                })?;
                if f.dim == 0 || f.dim > MAX_FEATURE_DIM {
                    return Err(self.field_err("features.dim", format!("is {}; give 1 to {MAX_FEATURE_DIM}", f.dim)));
                }
                if f.prefix_tokens > MAX_PREFIX_TOKENS {
                    return Err(self.field_err(
                        "features.prefix_tokens",
                        format!("is {}; give 0 to {MAX_PREFIX_TOKENS} (a CLS token and registers)", f.prefix_tokens),
                    ));
                }
                if f.layout == FeatureLayout::Channels {
                    let field = if f.pooling == Pooling::Cls { "features.pooling" } else { "features.prefix_tokens" };
                    if f.pooling == Pooling::Cls || f.prefix_tokens > 0 {
                        return Err(self.field_err(
                            field,
                            "a feature map (layout = \"channels\") has no CLS or prefix tokens. Fix: pooling = \"mean\" and no prefix_tokens",
                        ));
                    }
                }
                if f.pooling == Pooling::Cls && f.prefix_tokens == 0 {
                    return Err(self.field_err(
                        "features.prefix_tokens",
                        "is 0, so the CLS token pooling = \"cls\" reads would count as a patch. Fix: prefix_tokens = 1 (plus any registers)",
                    ));
                }
                match &f.preprocessor {
                    Some(p) => self.require_file("features.preprocessor", p)?,
                    None => {
                        self.image_spec("a features bundle without features.preprocessor")?;
                    }
                }
                self.require_file("features.file", &f.file)?;
            }
            BundleKind::Clip => {
                let c = m
                    .clip
                    .as_ref()
                    .ok_or_else(|| self.field_err("clip", "is missing: a clip bundle needs a [clip] section"))?;
                if c.embed_dim == 0 {
                    return Err(self.field_err("clip.embed_dim", "must be at least 1"));
                }
                match &c.preprocessor {
                    Some(p) => self.require_file("clip.preprocessor", p)?,
                    None => {
                        self.image_spec("a clip bundle without clip.preprocessor")?;
                    }
                }
                self.require_file("clip.image_file", &c.image_file)?;
                self.require_file("clip.text_file", &c.text_file)?;
            }
        }
        Ok(())
    }
}

/// The manifest of a diffusers ONNX folder that has no `bundle.toml`: its name is the folder's.
fn diffusers_manifest(dir: &Path) -> Result<Manifest, BundleError> {
    let index = dir.join(MODEL_INDEX);
    let text = std::fs::read_to_string(&index)
        .map_err(|e| BundleError::Unreadable { path: dir.to_path_buf(), what: format!("{MODEL_INDEX} ({e})") })?;
    let value: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| BundleError::Manifest { path: index.clone(), message: format!("not valid JSON: {e}") })?;
    let class = value.get("_class_name").and_then(serde_json::Value::as_str).unwrap_or("");
    if !class.contains("InstructPix2Pix") {
        return Err(BundleError::Field {
            path: index,
            field: "_class_name".into(),
            message: format!(
                "is {class:?}; gsmile runs StableDiffusionInstructPix2PixPipeline exports. Fix: export an InstructPix2Pix checkpoint with onnx/export_ip2p.py"
            ),
        });
    }
    let tokenizer_config = dir.join("tokenizer/tokenizer_config.json");
    let max_length = std::fs::read_to_string(&tokenizer_config)
        .ok()
        .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
        .and_then(|v| v.get("model_max_length").and_then(serde_json::Value::as_u64))
        .filter(|&n| n > 0 && n < 100_000)
        .unwrap_or(77) as usize;
    let name = dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "instruct-pix2pix".into());
    Ok(Manifest {
        kind: BundleKind::InstructPix2Pix,
        name,
        description: format!("diffusers {class} exported to ONNX"),
        provenance: Provenance::default(),
        tokenizer: Some(TokenizerSpec { file: PathBuf::from("tokenizer"), max_length }),
        image: None,
        editor: None,
        clip: None,
        pix2pix: None,
        worker: None,
        http: None,
        lpips: None,
        features: None,
    })
}

/// Every file under `dir`, recursively, sorted by path.
fn files_under(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d)? {
            let path = entry?.path();
            if path.is_dir() {
                stack.push(path);
            } else if path.is_file() {
                files.push(path);
            }
        }
    }
    files.sort();
    Ok(files)
}

/// Whether `dir` is a bundle: it has a `bundle.toml` or a diffusers `model_index.json`.
pub fn is_bundle(dir: &Path) -> bool {
    dir.join(MANIFEST).is_file() || dir.join(MODEL_INDEX).is_file()
}

/// Bundle folders under `root`: `root` itself if it is one, else its direct children that are.
pub fn discover(root: &Path) -> Vec<PathBuf> {
    if is_bundle(root) {
        return vec![root.to_path_buf()];
    }
    let mut found: Vec<PathBuf> = std::fs::read_dir(root)
        .map(|rd| rd.flatten().map(|e| e.path()).filter(|p| is_bundle(p)).collect())
        .unwrap_or_default();
    found.sort();
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    const EDITOR: &str = r#"
kind = "editor"
name = "t"
[tokenizer]
file = "tokenizer.json"
max_length = 8
[image]
height = 64
width = 64
mean = [0.0, 0.0, 0.0]
std = [1.0, 1.0, 1.0]
range = [0.0, 1.0]
[editor]
file = "editor.onnx"
image_input = "image"
ids_input = "input_ids"
mask_input = "attention_mask"
output = "edited"
"#;

    fn write_bundle(manifest: &str) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(MANIFEST), manifest).unwrap();
        std::fs::write(dir.path().join("tokenizer.json"), "{}").unwrap();
        std::fs::write(dir.path().join("editor.onnx"), "x").unwrap();
        dir
    }

    #[test]
    fn valid_manifest_opens() {
        let dir = write_bundle(EDITOR);
        let b = Bundle::open(dir.path()).unwrap();
        assert_eq!(b.manifest().kind, BundleKind::Editor);
        assert!(b.expect_kind(BundleKind::Clip, "--encoder").is_err());
    }

    #[test]
    fn missing_folder_says_so() {
        let err = Bundle::open("/no/such/bundle").unwrap_err();
        assert!(err.to_string().contains("/no/such/bundle"), "{err}");
    }

    #[test]
    fn unknown_field_is_named_with_line() {
        let dir = write_bundle(&EDITOR.replace("max_length = 8", "max_length = 8\nmax_lenght = 9"));
        let err = Bundle::open(dir.path()).unwrap_err().to_string();
        assert!(err.contains("max_lenght") && err.contains("line"), "{err}");
    }

    #[test]
    fn bad_std_is_named() {
        let dir = write_bundle(&EDITOR.replace("std = [1.0, 1.0, 1.0]", "std = [1.0, 0.0, 1.0]"));
        let err = Bundle::open(dir.path()).unwrap_err().to_string();
        assert!(err.contains("image.std"), "{err}");
    }

    #[test]
    fn missing_graph_file_is_named() {
        let dir = write_bundle(&EDITOR.replace("editor.onnx", "nope.onnx"));
        let err = Bundle::open(dir.path()).unwrap_err().to_string();
        assert!(err.contains("editor.file") && err.contains("nope.onnx"), "{err}");
    }

    #[test]
    fn pix2pix_section_keeps_its_keys_and_layers_under_flags() {
        let bundle: DiffusionSettings = toml::from_str("steps = 5\nheight = 64").unwrap();
        assert_eq!(bundle.steps, Some(5));
        assert_eq!(bundle.size, Some(Size { width: None, height: Some(64) }));
        let err = toml::from_str::<DiffusionSettings>("step = 5").unwrap_err().to_string();
        assert!(err.contains("step") && err.contains("line"), "{err}");
        assert!(toml::from_str::<DiffusionSettings>("seed = 5").is_err(), "a bundle sets no seed");
        let flags = DiffusionSettings {
            guidance_scale: Some(2.0),
            size: Some(Size::parse("24x16").unwrap()),
            ..Default::default()
        };
        let run = flags.with_seed(3).or(bundle);
        assert_eq!((run.steps, run.guidance_scale, run.seed), (Some(5), Some(2.0), Some(3)));
        assert_eq!(run.size, Some(Size { width: Some(24), height: Some(16) }));
        let width_only = DiffusionSettings { size: Some(Size { width: Some(32), height: None }), ..Default::default() };
        assert_eq!(width_only.or(bundle).size, Some(Size { width: Some(32), height: Some(64) }));
        assert_eq!(flags.first_field(), Some("guidance_scale"));
        assert_eq!(DiffusionSettings::default().with_seed(1).first_field(), None);
    }

    #[test]
    fn sizes_parse_as_n_or_w_by_h() {
        assert_eq!(Size::parse("512").unwrap(), Size { width: Some(512), height: Some(512) });
        assert_eq!(Size::parse("512x384").unwrap(), Size { width: Some(512), height: Some(384) });
        for bad in ["0", "x", "12x", "-3", "abc"] {
            assert!(Size::parse(bad).unwrap_err().contains("Fix"), "{bad}");
        }
    }

    #[test]
    fn missing_section_is_named() {
        let dir = write_bundle(&EDITOR.replace("kind = \"editor\"", "kind = \"clip\""));
        let err = Bundle::open(dir.path()).unwrap_err().to_string();
        assert!(err.contains("`clip`"), "{err}");
    }
}
