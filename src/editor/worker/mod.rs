//! Editors that run outside gsmile: a local worker process (`kind = "command"`, [`command`])
//! or an HTTP endpoint (`kind = "http"`, [`http`]), both speaking gsmile's worker protocol,
//! plus OpenAI-style image-edit endpoints ([`http::OpenAiEditor`]).
//!
//! # The protocol (version 1)
//!
//! JSON objects, one per line over a worker's stdin/stdout, or one per POST body over HTTP.
//!
//! 1. gsmile says hello: `{"type": "hello", "protocol": 1, "gsmile_version": "…"}`. The worker
//!    answers with its [`Handshake`]: `{"type": "hello", "protocol": 1, "name": "…",
//!    "version": "…", "height": 512, "width": 512, "stochastic": true, "max_batch": 8,
//!    "accepts": ["png", "f32"], "params": {…}}`.
//! 2. Each request edits one image with a batch of instructions: `{"type": "edit", "id": 7,
//!    "image": IMAGE, "instructions": ["…", …], "seeds": [s0, s1, …], "params": {…}}`. The
//!    image is at the handshake's size. Each instruction has its own seed, derived from the
//!    run's seed and the instruction's text alone, so a sample's edit never depends on the
//!    batch it was sent in.
//! 3. The worker replies `{"type": "edited", "id": 7, "images": [IMAGE, …]}`, one per
//!    instruction in order, or `{"type": "error", "id": 7, "message": "…"}`.
//!
//! An IMAGE is `{"png_base64": "…"}` (8-bit RGB) or `{"f32_base64": "…", "shape": [3, H, W]}`
//! (little-endian `float32` in `[0, 1]`, channel-major), which carries values exactly; gsmile
//! sends `f32` to workers that list it in `accepts`, PNG otherwise, and reads either.
//!
//! Every reply is checked (its id, the number of images, their size, that values are finite)
//! and a failure names the bundle and the request. Edits already made are in the cache, so a
//! rerun after a failure resumes.

pub mod command;
pub mod http;

use std::path::{Path, PathBuf};

use base64::Engine as _;
use ndarray::{Array3, Array4, ArrayView3, ArrayView4, Axis, s};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{DiffusionSettings, Editor, check_batch};
use crate::bundle::{Bundle, BundleKind, Description};
use crate::{Error, Result, imaging};

/// The protocol version gsmile speaks.
pub const PROTOCOL: u32 = 1;

/// Largest batch a worker may declare (its replies are held in memory together).
const MAX_WORKER_BATCH: usize = 1024;

/// A worker or endpoint that failed: it could not start, broke the protocol, replied with
/// an error, timed out or exited.
#[derive(Debug, thiserror::Error)]
#[error("editor {bundle}: {message}")]
pub struct WorkerError {
    /// The bundle folder.
    pub bundle: PathBuf,
    /// What happened, naming the request where there was one, and the fix.
    pub message: String,
}

/// What a worker says about itself in answer to `hello`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Handshake {
    /// The protocol version it speaks.
    pub protocol: u32,
    /// Its name, e.g. `onnx-worker`.
    pub name: String,
    /// Its version; part of every cache key, so a new worker version recomputes.
    pub version: String,
    /// Height of the images it takes and returns.
    pub height: u32,
    /// Width of the images it takes and returns.
    pub width: u32,
    /// Whether its edits depend on the seed.
    #[serde(default)]
    pub stochastic: bool,
    /// The most instructions one request may carry.
    #[serde(default = "one")]
    pub max_batch: usize,
    /// Image encodings it reads (`png`, `f32`).
    #[serde(default)]
    pub accepts: Vec<String>,
    /// Settings that change its outputs (model, steps…), as it reports them.
    #[serde(default)]
    pub params: serde_json::Value,
}

fn one() -> usize {
    1
}

impl Handshake {
    /// Checks a handshake from `bundle`'s worker can be worked with.
    fn check(&self, bundle: &Path) -> Result<()> {
        let bad = |m: String| Err(worker_error(bundle, format!("its handshake {m}")));
        if self.protocol != PROTOCOL {
            return bad(format!(
                "speaks protocol {}, gsmile speaks {PROTOCOL}. Fix: update the worker or gsmile",
                self.protocol
            ));
        }
        if self.height == 0 || self.width == 0 || self.height.max(self.width) > crate::bundle::MAX_MODEL_SIDE {
            return bad(format!(
                "gives a size of {}x{}; it must be 1 to {} pixels a side",
                self.width,
                self.height,
                crate::bundle::MAX_MODEL_SIDE
            ));
        }
        if self.max_batch == 0 || self.max_batch > MAX_WORKER_BATCH {
            return bad(format!("gives max_batch {}; it must be 1 to {MAX_WORKER_BATCH}", self.max_batch));
        }
        Ok(())
    }
}

/// An image on the wire.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct WireImage {
    /// A PNG, base64.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub png_base64: Option<String>,
    /// Raw little-endian `f32` values in `[0, 1]`, base64.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub f32_base64: Option<String>,
    /// `[3, H, W]` of `f32_base64`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shape: Option<[usize; 3]>,
}

impl WireImage {
    /// `image` (`[3,H,W]` in `[0,1]`) as raw floats, or as a PNG.
    pub fn encode(image: ArrayView3<f32>, exact: bool) -> WireImage {
        let b64 = base64::engine::general_purpose::STANDARD;
        if exact {
            let (c, h, w) = image.dim();
            let bytes: Vec<u8> = image.iter().flat_map(|v| v.to_le_bytes()).collect();
            WireImage { f32_base64: Some(b64.encode(bytes)), shape: Some([c, h, w]), png_base64: None }
        } else {
            let png = imaging::png_bytes(&imaging::from_tensor(image));
            WireImage { png_base64: Some(b64.encode(png)), ..WireImage::default() }
        }
    }

    /// The image as `[3,H,W]` in `[0,1]`, checked to be `height`×`width` and finite.
    pub fn decode(&self, height: u32, width: u32) -> std::result::Result<Array3<f32>, String> {
        let b64 = base64::engine::general_purpose::STANDARD;
        let (h, w) = (height as usize, width as usize);
        let image = match (&self.f32_base64, &self.png_base64) {
            (Some(data), _) => {
                let shape = self.shape.ok_or("an f32 image needs its \"shape\": [3, H, W]")?;
                if shape != [3, h, w] {
                    return Err(format!("an image of shape {shape:?}, expected [3, {h}, {w}]"));
                }
                let bytes = b64.decode(data).map_err(|e| format!("f32_base64 is not base64 ({e})"))?;
                if bytes.len() != 3 * h * w * 4 {
                    return Err(format!("{} bytes of f32 data, expected {}", bytes.len(), 3 * h * w * 4));
                }
                // Clamped to [0, 1] as the in-process editors' outputs are (NaN stays NaN and is refused below).
                let values = bytes
                    .chunks_exact(4)
                    .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]).clamp(0.0, 1.0))
                    .collect();
                Array3::from_shape_vec((3, h, w), values).map_err(|e| e.to_string())?
            }
            (None, Some(data)) => {
                let bytes = b64.decode(data).map_err(|e| format!("png_base64 is not base64 ({e})"))?;
                let img = image::load_from_memory_with_format(&bytes, image::ImageFormat::Png)
                    .map_err(|e| format!("png_base64 is not a PNG ({e})"))?
                    .to_rgb8();
                if img.dimensions() != (width, height) {
                    return Err(format!(
                        "an image of {}x{} pixels, expected {width}x{height} (the handshake's size)",
                        img.width(),
                        img.height()
                    ));
                }
                imaging::to_tensor(&img)
            }
            (None, None) => return Err("an image with neither png_base64 nor f32_base64".into()),
        };
        if let Some(bad) = image.iter().position(|v| !v.is_finite()) {
            return Err(format!("an image holding NaN or infinity (at flat index {bad})"));
        }
        Ok(image)
    }
}

/// An `edit` request.
#[derive(Debug, Clone, Serialize)]
pub struct Request<'a> {
    /// Always `"edit"`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// Unique within a run; the reply must carry it.
    pub id: u64,
    /// The image to edit, at the handshake's size.
    pub image: WireImage,
    /// The instructions, one edit each.
    pub instructions: &'a [&'a str],
    /// One seed per instruction ([`instruction_seed`]).
    pub seeds: Vec<u64>,
    /// The bundle's settings and the run's sampling settings.
    pub params: &'a serde_json::Value,
}

/// A reply to `hello` or `edit`.
#[derive(Debug, Clone, Deserialize)]
pub struct Reply {
    /// `hello`, `edited` or `error`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The request's id (edits).
    #[serde(default)]
    pub id: Option<u64>,
    /// The edited images.
    #[serde(default)]
    pub images: Vec<WireImage>,
    /// What went wrong (errors).
    #[serde(default)]
    pub message: Option<String>,
}

/// The `hello` gsmile sends.
pub fn hello() -> serde_json::Value {
    serde_json::json!({"type": "hello", "protocol": PROTOCOL, "gsmile_version": env!("CARGO_PKG_VERSION")})
}

/// The seed of one instruction's edit: the run's seed and the instruction's text hashed, so
/// it never depends on which batch the instruction travels in. At most 2^32 − 1, which every
/// generator (numpy's legacy one included) takes.
pub fn instruction_seed(seed: u64, instruction: &str) -> u64 {
    let mut h = Sha256::new();
    h.update(seed.to_le_bytes());
    h.update(instruction.as_bytes());
    let d = h.finalize();
    u64::from(u32::from_le_bytes([d[0], d[1], d[2], d[3]]))
}

/// An error about `bundle`'s worker.
pub fn worker_error(bundle: &Path, message: impl Into<String>) -> Error {
    Error::Worker(WorkerError { bundle: bundle.to_path_buf(), message: message.into() })
}

/// How requests reach a worker: JSON in, JSON out, blocking.
pub trait Transport: Send + Sync + std::fmt::Debug {
    /// Sends one request and returns the reply, or an error naming what failed.
    fn call(&self, request: &serde_json::Value, what: &str) -> Result<serde_json::Value>;
    /// Requests that may be in flight at once.
    fn concurrency(&self) -> usize {
        1
    }
}

/// An editor behind a [`Transport`]: a worker process or an endpoint speaking the protocol.
#[derive(Debug)]
pub struct WorkerEditor {
    name: String,
    kind: BundleKind,
    bundle: PathBuf,
    handshake: Handshake,
    transport: Box<dyn Transport>,
    params: serde_json::Value,
    seed: u64,
    next_id: std::sync::atomic::AtomicU64,
}

impl WorkerEditor {
    /// Greets the worker behind `transport` and checks its handshake; `settings` are the
    /// run's sampling settings, passed on as parameters (a worker that is not stochastic
    /// refuses them, as a one-step editor does).
    pub fn connect(bundle: &Bundle, transport: Box<dyn Transport>, settings: DiffusionSettings) -> Result<Self> {
        let dir = bundle.dir().to_path_buf();
        let raw = transport.call(&hello(), "the hello")?;
        let mut handshake: Handshake = serde_json::from_value(raw.clone()).map_err(|e| {
            worker_error(&dir, format!("its answer to hello is not a handshake ({e}): {}", clip(&raw.to_string())))
        })?;
        handshake.accepts.iter_mut().for_each(|a| a.make_ascii_lowercase());
        handshake.check(&dir)?;
        if !handshake.stochastic
            && let Some(field) = settings.first_field()
        {
            let message = format!(
                "`{field}` applies to diffusion editors, but the worker of {} says it is not stochastic. Fix: drop `{field}`",
                dir.display()
            );
            return Err(crate::error::ConfigError::new(field, message).into());
        }
        if settings.size.is_some() {
            let message = format!(
                "the worker of {} works at its own size ({}x{}); set the size in the worker's command, not with `size`. Fix: drop --size",
                dir.display(),
                handshake.width,
                handshake.height
            );
            return Err(crate::error::ConfigError::new("size", message).into());
        }
        let m = bundle.manifest();
        let table = match m.kind {
            BundleKind::Http => m.http.as_ref().map(|h| h.params.clone()),
            _ => m.worker.as_ref().map(|w| w.params.clone()),
        }
        .unwrap_or_default();
        let mut params = serde_json::to_value(table).unwrap_or_default();
        let sampling = serde_json::to_value(DiffusionSettings { seed: None, ..settings }).unwrap_or_default();
        if let (Some(p), Some(s)) = (params.as_object_mut(), sampling.as_object()) {
            for (k, v) in s {
                if !v.is_null() {
                    p.insert(k.clone(), v.clone());
                }
            }
        }
        Ok(WorkerEditor {
            name: m.name.clone(),
            kind: m.kind,
            bundle: dir,
            handshake,
            transport,
            params,
            seed: settings.seed.unwrap_or(0),
            next_id: std::sync::atomic::AtomicU64::new(1),
        })
    }

    /// What the worker said about itself.
    pub fn handshake(&self) -> &Handshake {
        &self.handshake
    }

    /// One request: `image` edited with each of `instructions`.
    fn request(&self, image: ArrayView3<f32>, instructions: &[&str]) -> Result<Array4<f32>> {
        let id = self.next_id.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let exact = self.handshake.accepts.iter().any(|a| a == "f32");
        let request = Request {
            kind: "edit",
            id,
            image: WireImage::encode(image, exact),
            instructions,
            seeds: instructions.iter().map(|t| instruction_seed(self.seed, t)).collect(),
            params: &self.params,
        };
        let what = format!(
            "request {id} ({} instruction{}, the first {:?})",
            instructions.len(),
            if instructions.len() == 1 { "" } else { "s" },
            instructions.first().copied().unwrap_or("")
        );
        let body = serde_json::to_value(&request).map_err(|e| Error::InvalidInput(e.to_string()))?;
        let raw = self.transport.call(&body, &what)?;
        let fail = |m: String| worker_error(&self.bundle, format!("{what}: {m}"));
        let reply: Reply = serde_json::from_value(raw.clone())
            .map_err(|e| fail(format!("the reply is not a protocol reply ({e}): {}", clip(&raw.to_string()))))?;
        match reply.kind.as_str() {
            "edited" => {}
            "error" => return Err(fail(format!("the worker failed: {}", clip(&reply.message.unwrap_or_default())))),
            other => return Err(fail(format!("a reply of type {other:?}, expected \"edited\" or \"error\""))),
        }
        if reply.id != Some(id) {
            return Err(fail(format!("the reply is for request {:?}", reply.id)));
        }
        if reply.images.len() != instructions.len() {
            return Err(fail(format!("{} images for {} instructions", reply.images.len(), instructions.len())));
        }
        let (h, w) = (self.handshake.height, self.handshake.width);
        let mut out = Array4::zeros((instructions.len(), 3, h as usize, w as usize));
        for (k, img) in reply.images.iter().enumerate() {
            let edited = img.decode(h, w).map_err(|m| fail(format!("image {k}: {m}")))?;
            out.index_axis_mut(Axis(0), k).assign(&edited);
        }
        Ok(out)
    }
}

/// Runs `request` on every item, at most `concurrency` at once on scoped threads, in waves;
/// `done` receives each result in the items' order. The first failure ends the work after
/// its wave has finished.
fn in_waves<T: Sync, R: Send>(
    items: &[T],
    concurrency: usize,
    request: impl Fn(&T) -> Result<R> + Sync,
    mut done: impl FnMut(&T, R),
) -> Result<()> {
    for wave in items.chunks(concurrency.max(1)) {
        let results: Vec<Result<R>> = std::thread::scope(|scope| {
            let handles: Vec<_> = wave.iter().map(|item| scope.spawn(|| request(item))).collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap_or_else(|_| Err(Error::InvalidInput("a request thread panicked".into()))))
                .collect()
        });
        for (item, result) in wave.iter().zip(results) {
            done(item, result?);
        }
    }
    Ok(())
}

/// Long text cut for an error message, control characters escaped.
fn clip(text: &str) -> String {
    let text = crate::io::escape_control(text);
    if text.chars().count() > 300 { text.chars().take(300).chain("…".chars()).collect() } else { text }
}

impl Editor for WorkerEditor {
    fn name(&self) -> &str {
        &self.name
    }

    fn size(&self) -> (u32, u32) {
        (self.handshake.height, self.handshake.width)
    }

    /// The worker as it reported itself, the settings sent with each request and the seed:
    /// part of every cache key and of `explanation.json`.
    fn params(&self) -> String {
        let h = &self.handshake;
        serde_json::json!({
            "kind": self.kind.to_string(),
            "worker": {"name": h.name, "version": h.version, "params": h.params, "stochastic": h.stochastic},
            "params": self.params,
            "seed": if h.stochastic { Some(self.seed) } else { None },
        })
        .to_string()
    }

    fn check_instruction(&self, _instruction: &str) -> Result<()> {
        Ok(())
    }

    /// One wave of requests: `max_batch` instructions each, as many as may be in flight.
    fn batch_hint(&self) -> Option<usize> {
        Some(self.handshake.max_batch * self.transport.concurrency().max(1))
    }

    fn edit(&self, images: ArrayView4<f32>, instructions: &[&str]) -> Result<Array4<f32>> {
        check_batch(self, images.dim(), instructions.len())?;
        let (b, c, h, w) = images.dim();
        let mut out = Array4::zeros((b, c, h, w));
        for (k, image) in images.axis_iter(Axis(0)).enumerate() {
            let edited = self.request(image, &instructions[k..=k])?;
            out.index_axis_mut(Axis(0), k).assign(&edited.index_axis(Axis(0), 0));
        }
        Ok(out)
    }

    /// Splits the instructions into requests of at most the worker's `max_batch`, up to the
    /// transport's concurrency of them in flight at once; results keep the instructions' order.
    fn edit_shared(&self, image: ArrayView3<f32>, instructions: &[&str]) -> Result<Array4<f32>> {
        let (c, h, w) = image.dim();
        if (h, w) != (self.handshake.height as usize, self.handshake.width as usize) {
            return Err(Error::InvalidInput(format!(
                "editor {} takes [3,{},{}] images, got [{c},{h},{w}]",
                self.name, self.handshake.height, self.handshake.width
            )));
        }
        let mut out = Array4::zeros((instructions.len(), c, h, w));
        let chunks: Vec<(usize, &[&str])> = instructions
            .chunks(self.handshake.max_batch)
            .enumerate()
            .map(|(k, c)| (k * self.handshake.max_batch, c))
            .collect();
        in_waves(
            &chunks,
            self.transport.concurrency(),
            |(_, chunk)| self.request(image, chunk),
            |(start, _), edited| {
                out.slice_mut(s![*start..*start + edited.dim().0, .., .., ..]).assign(&edited);
            },
        )?;
        Ok(out)
    }

    fn describe(&self) -> Result<Description> {
        let h = &self.handshake;
        Ok(Description {
            image: format!("{}x{} (the worker's size)", h.height, h.width),
            signature: vec![
                format!("worker: {} {} (protocol {})", h.name, h.version, h.protocol),
                format!(
                    "stochastic: {}, max batch {}, accepts {}",
                    h.stochastic,
                    h.max_batch,
                    if h.accepts.is_empty() { "png".to_string() } else { h.accepts.join(", ") }
                ),
            ],
        })
    }
}

/// Loads the editor of a `command` or `http` bundle.
pub fn load(bundle: &Bundle, settings: DiffusionSettings, concurrency: Option<usize>) -> Result<Box<dyn Editor>> {
    let m = bundle.manifest();
    match m.kind {
        BundleKind::Command => {
            let transport = command::CommandTransport::start(bundle)?;
            Ok(Box::new(WorkerEditor::connect(bundle, Box::new(transport), settings)?))
        }
        BundleKind::Http => {
            let section = m.http.as_ref().ok_or_else(|| Error::InvalidInput("http section missing".into()))?;
            match section.preset {
                crate::bundle::HttpPreset::Gsmile => {
                    let transport = http::HttpTransport::new(bundle, section, concurrency)?;
                    Ok(Box::new(WorkerEditor::connect(bundle, Box::new(transport), settings)?))
                }
                crate::bundle::HttpPreset::OpenaiImagesEdit => {
                    Ok(Box::new(http::OpenAiEditor::new(bundle, section, concurrency, settings)?))
                }
            }
        }
        other => Err(Error::InvalidInput(format!("{other} bundles are not worker editors"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn images_cross_the_wire_exactly_as_f32_and_rounded_as_png() {
        let img = Array3::from_shape_fn((3, 4, 5), |(c, y, x)| (c * 20 + y * 5 + x) as f32 / 61.0);
        let exact = WireImage::encode(img.view(), true).decode(4, 5).unwrap();
        assert_eq!(exact, img);
        let png = WireImage::encode(img.view(), false).decode(4, 5).unwrap();
        assert!(png.iter().zip(img.iter()).all(|(a, b)| (a - b).abs() <= 0.5 / 255.0 + 1e-6));
        assert!(WireImage::encode(img.view(), true).decode(5, 4).unwrap_err().contains("shape"));
        assert!(WireImage::encode(img.view(), false).decode(5, 4).unwrap_err().contains("expected 4x5"));
        let not_png = WireImage { png_base64: Some("aGVsbG8=".into()), ..WireImage::default() };
        assert!(not_png.decode(4, 5).unwrap_err().contains("not a PNG"));
        let nan = Array3::from_elem((3, 4, 5), f32::NAN);
        assert!(WireImage::encode(nan.view(), true).decode(4, 5).unwrap_err().contains("NaN"));
    }

    #[test]
    fn seeds_depend_on_the_seed_and_the_text_only() {
        assert_eq!(instruction_seed(3, "make it red"), instruction_seed(3, "make it red"));
        assert_ne!(instruction_seed(3, "make it red"), instruction_seed(4, "make it red"));
        assert_ne!(instruction_seed(3, "make it red"), instruction_seed(3, "make it blue"));
        assert!(instruction_seed(u64::MAX, "x") <= u64::from(u32::MAX));
    }
}
