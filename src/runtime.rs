//! ONNX Runtime: finding the shared library, starting it once, and model sessions that
//! check their contract when they load.
//!
//! `ort` runs with its `load-dynamic` feature: the library is found at run time, from
//! `ORT_DYLIB_PATH` if set, else from the copy `build.rs` fetched from PyPI's
//! `onnxruntime` wheel. Sessions are built once per model file and reused for every call.

// Errors here carry the paths, fields and fixes a user needs; they are returned on cold
// load paths only, so their size does not matter.
#![allow(clippy::result_large_err)]

use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use ort::session::Session;
use ort::value::{TensorElementType, ValueType};

use crate::bundle::BundleError;

/// The ONNX Runtime version gsmile is built and tested against.
pub const ORT_VERSION: &str = "1.31.1";

/// ONNX Runtime could not be found or started.
#[derive(Debug, Clone, thiserror::Error)]
pub enum RuntimeError {
    /// No library at any of the places gsmile looks.
    #[error(
        "ONNX Runtime not found: {tried}.\nFix: `python3 -m pip install onnxruntime=={ORT_VERSION}` and point ORT_DYLIB_PATH at its library:\n  export ORT_DYLIB_PATH=$(python3 -c \"import onnxruntime, glob, os; print(sorted(glob.glob(os.path.join(os.path.dirname(onnxruntime.__file__), 'capi', 'libonnxruntime.so*')))[0])\")\nor rebuild gsmile (`cargo build`) on a machine that reaches PyPI."
    )]
    NotFound {
        /// Where gsmile looked.
        tried: String,
    },
    /// The library was found but ONNX Runtime refused to start from it.
    #[error(
        "cannot start ONNX Runtime from {path}: {message}. Fix: point ORT_DYLIB_PATH at libonnxruntime from onnxruntime {ORT_VERSION}"
    )]
    Load {
        /// The library that failed.
        path: PathBuf,
        /// ONNX Runtime's message.
        message: String,
    },
}

/// A model failed while running or returned something its bundle did not promise.
#[derive(Debug, thiserror::Error)]
#[error("model {file}: {message}")]
pub struct ModelError {
    /// The ONNX file of the model.
    pub file: PathBuf,
    /// What went wrong.
    pub message: String,
}

/// Options for every session gsmile creates.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RuntimeOptions {
    /// Intra-op threads per session; 0 lets ONNX Runtime use all cores.
    pub threads: usize,
}

/// The library path `build.rs` recorded, empty when the download failed.
const BUILD_TIME_DYLIB: &str = env!("GSMILE_ORT_DYLIB");

/// The started runtime: the library it came from and the environment sessions are built in.
struct Loaded {
    path: PathBuf,
    environment: ort::environment::Environment,
}

static LOADED: OnceLock<Result<Loaded, RuntimeError>> = OnceLock::new();

/// Where the ONNX Runtime library will be loaded from: `ORT_DYLIB_PATH`, else the build-time copy.
pub fn dylib_path() -> Result<PathBuf, RuntimeError> {
    if let Some(p) = std::env::var_os("ORT_DYLIB_PATH").filter(|p| !p.is_empty()) {
        let p = PathBuf::from(p);
        return if p.is_file() {
            Ok(p)
        } else {
            Err(RuntimeError::NotFound { tried: format!("ORT_DYLIB_PATH={} is not a file", p.display()) })
        };
    }
    if BUILD_TIME_DYLIB.is_empty() {
        return Err(RuntimeError::NotFound {
            tried: "ORT_DYLIB_PATH is unset and the build could not fetch onnxruntime from PyPI".into(),
        });
    }
    let p = PathBuf::from(BUILD_TIME_DYLIB);
    if p.is_file() {
        Ok(p)
    } else {
        Err(RuntimeError::NotFound {
            tried: format!("ORT_DYLIB_PATH is unset and the build-time copy {} is gone", p.display()),
        })
    }
}

fn loaded() -> Result<&'static Loaded, RuntimeError> {
    let loaded = LOADED.get_or_init(|| {
        let path = dylib_path()?;
        let load_err = |e: &dyn std::fmt::Display| RuntimeError::Load { path: path.clone(), message: e.to_string() };
        let builder = ort::init_from(&path).map_err(|e| load_err(&e))?;
        let environment = builder.with_name("gsmile").build().map_err(|e| load_err(&e))?;
        Ok(Loaded { path, environment })
    });
    loaded.as_ref().map_err(Clone::clone)
}

/// Sessions created so far in this process.
static SESSIONS_CREATED: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// How many ONNX Runtime sessions this process has created: lets tests check that a run
/// served from the cache loads no model.
pub fn sessions_created() -> usize {
    SESSIONS_CREATED.load(std::sync::atomic::Ordering::Relaxed)
}

/// Builds `T` once, on first use: model wrappers keep their sessions in one, so a run whose
/// edits and embeddings all come from the cache never pays for loading the graphs (seconds
/// and gigabytes for a real InstructPix2Pix).
pub struct Lazy<T> {
    value: OnceLock<T>,
    init: Mutex<Option<LazyInit<T>>>,
    /// The model file named when an earlier attempt to build the value failed.
    file: PathBuf,
}

type LazyInit<T> = Box<dyn FnOnce() -> crate::Result<T> + Send>;

impl<T> Lazy<T> {
    /// A value `init` builds on the first [`Lazy::get`]; `file` names it in errors.
    pub fn new(file: impl Into<PathBuf>, init: impl FnOnce() -> crate::Result<T> + Send + 'static) -> Self {
        Lazy { value: OnceLock::new(), init: Mutex::new(Some(Box::new(init))), file: file.into() }
    }

    /// The value, built now if this is the first call; the build's error otherwise.
    pub fn get(&self) -> crate::Result<&T> {
        if let Some(v) = self.value.get() {
            return Ok(v);
        }
        let mut init = self.init.lock().map_err(|_| self.failed("a thread loading it panicked"))?;
        // Another thread may have built it while this one waited for the lock.
        if let Some(v) = self.value.get() {
            return Ok(v);
        }
        let build = init.take().ok_or_else(|| self.failed("it failed to load earlier in this run"))?;
        let value = build()?;
        Ok(self.value.get_or_init(|| value))
    }

    /// Whether the value has been built.
    pub fn is_ready(&self) -> bool {
        self.value.get().is_some()
    }

    fn failed(&self, why: &str) -> crate::Error {
        ModelError { file: self.file.clone(), message: why.to_string() }.into()
    }
}

impl<T> std::fmt::Debug for Lazy<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lazy").field("file", &self.file).field("ready", &self.is_ready()).finish()
    }
}

/// Nanoseconds spent inside ONNX Runtime's `Session::run`, summed over every session of the process.
static INFERENCE_NANOS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Wall time spent inside ONNX Runtime's `run` calls so far, over all sessions of the process
/// (overlapping calls on several threads add up): what benchmarks subtract to get the time
/// gsmile itself spends around inference.
pub fn inference_time() -> std::time::Duration {
    std::time::Duration::from_nanos(INFERENCE_NANOS.load(std::sync::atomic::Ordering::Relaxed))
}

/// Loads ONNX Runtime once per process and returns the library it came from.
pub fn ensure_loaded() -> Result<&'static Path, RuntimeError> {
    Ok(loaded()?.path.as_path())
}

/// One dimension of a tensor in a model's contract.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dim {
    /// Any size, usually the batch axis.
    Any,
    /// Exactly this size; a graph that leaves the axis dynamic also satisfies it.
    Fixed(i64),
}

/// What a bundle promises about one input or output tensor of a graph.
#[derive(Debug, Clone)]
pub struct TensorContract {
    /// The manifest field that names the tensor, e.g. `editor.image_input`.
    pub field: &'static str,
    /// The tensor's name in the graph.
    pub name: String,
    /// Element types the wrapper can feed or read; the first is the preferred one.
    pub types: Vec<TensorElementType>,
    /// Expected shape, one entry per axis.
    pub dims: Vec<Dim>,
}

impl TensorContract {
    /// Builds a contract for a tensor named by manifest field `field` with exactly element type `ty`.
    pub fn new(field: &'static str, name: &str, ty: TensorElementType, dims: &[Dim]) -> Self {
        TensorContract { field, name: name.to_string(), types: vec![ty], dims: dims.to_vec() }
    }

    /// A float tensor: float32, or float16 converted at the boundary (fp16 exports).
    pub fn float(field: &'static str, name: &str, dims: &[Dim]) -> Self {
        Self::new(field, name, TensorElementType::Float32, dims).or(TensorElementType::Float16)
    }

    /// A token-id tensor: int64, or int32 as diffusers' ONNX exports take it.
    pub fn ids(field: &'static str, name: &str, dims: &[Dim]) -> Self {
        Self::new(field, name, TensorElementType::Int64, dims).or(TensorElementType::Int32)
    }

    /// Also accepts element type `ty`.
    pub fn or(mut self, ty: TensorElementType) -> Self {
        self.types.push(ty);
        self
    }

    fn describe(&self) -> String {
        let dims: Vec<String> = self
            .dims
            .iter()
            .map(|d| match d {
                Dim::Any => "N".to_string(),
                Dim::Fixed(n) => n.to_string(),
            })
            .collect();
        let types: Vec<String> = self.types.iter().map(|t| type_name(*t)).collect();
        format!("{} [{}] (rank {})", types.join(" or "), dims.join(","), self.dims.len())
    }
}

fn type_name(ty: TensorElementType) -> String {
    format!("{ty:?}").to_lowercase()
}

fn describe_value(v: &ValueType) -> String {
    match v {
        ValueType::Tensor { ty, shape, .. } => {
            let dims: Vec<String> =
                shape.iter().map(|d| if *d < 0 { "N".to_string() } else { d.to_string() }).collect();
            format!("{} [{}] (rank {})", type_name(*ty), dims.join(","), shape.len())
        }
        other => format!("{other:?}"),
    }
}

/// An ONNX Runtime session for one model file, built once and reused by every call.
///
/// `ort` needs `&mut Session` to run, so the session sits behind a mutex; ONNX Runtime
/// parallelises each call internally with its intra-op threads.
pub struct ModelSession {
    session: Mutex<Session>,
    file: PathBuf,
    signature: Vec<String>,
    /// Declared element type and shape of every input and output, by name.
    tensors: Vec<(String, TensorElementType, Vec<i64>)>,
    /// Output names in graph order.
    outputs: Vec<String>,
    provider: &'static str,
}

impl std::fmt::Debug for ModelSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ModelSession").field("file", &self.file).finish()
    }
}

impl ModelSession {
    /// A [`Lazy`] session: [`ModelSession::load`] with these arguments on first use.
    pub fn deferred(
        bundle: &Path,
        file: &Path,
        inputs: Vec<TensorContract>,
        outputs: Vec<TensorContract>,
        options: &RuntimeOptions,
    ) -> Lazy<ModelSession> {
        let (bundle, path, options) = (bundle.to_path_buf(), file.to_path_buf(), *options);
        Lazy::new(file, move || ModelSession::load(&bundle, &path, &inputs, &outputs, &options))
    }

    /// Loads `file` of bundle `bundle` and checks it has the promised inputs and outputs.
    pub fn load(
        bundle: &Path,
        file: &Path,
        inputs: &[TensorContract],
        outputs: &[TensorContract],
        options: &RuntimeOptions,
    ) -> crate::Result<Self> {
        let environment = &loaded()?.environment;
        let bundle_err =
            |message: String| BundleError::Graph { bundle: bundle.to_path_buf(), file: file.to_path_buf(), message };
        let mut builder = Session::builder(environment).map_err(|e| bundle_err(e.to_string()))?;
        if options.threads > 0 {
            builder = builder.with_intra_threads(options.threads).map_err(|e| bundle_err(e.to_string()))?;
        }
        let provider = register_accelerator(&mut builder, file);
        let session = builder.commit_from_file(file).map_err(|e| {
            bundle_err(format!(
                "ONNX Runtime cannot load it ({e}); Fix: re-export the model or check the file is a complete .onnx file"
            ))
        })?;
        check_side(bundle, file, "input", session.inputs().iter().map(|o| (o.name(), o.dtype())), inputs)?;
        check_side(bundle, file, "output", session.outputs().iter().map(|o| (o.name(), o.dtype())), outputs)?;
        let signature = session
            .inputs()
            .iter()
            .map(|o| format!("in  {}: {}", o.name(), describe_value(o.dtype())))
            .chain(session.outputs().iter().map(|o| format!("out {}: {}", o.name(), describe_value(o.dtype()))))
            .collect();
        let tensors = session
            .inputs()
            .iter()
            .map(|o| (o.name(), o.dtype()))
            .chain(session.outputs().iter().map(|o| (o.name(), o.dtype())))
            .filter_map(|(name, v)| match v {
                ValueType::Tensor { ty, shape, .. } => Some((name.to_string(), *ty, shape.to_vec())),
                _ => None,
            })
            .collect();
        let outputs = session.outputs().iter().map(|o| o.name().to_string()).collect();
        SESSIONS_CREATED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Ok(ModelSession {
            session: Mutex::new(session),
            file: file.to_path_buf(),
            signature,
            tensors,
            outputs,
            provider,
        })
    }

    /// The execution provider the session runs on: `cpu`, or `cuda` with the `cuda` feature and a usable GPU.
    pub fn provider(&self) -> &'static str {
        self.provider
    }

    /// The graph's output names, in order.
    pub fn output_names(&self) -> &[String] {
        &self.outputs
    }

    /// The element type the graph declares for tensor `name`.
    pub fn element_type(&self, name: &str) -> Option<TensorElementType> {
        self.tensors.iter().find(|(n, _, _)| n == name).map(|(_, ty, _)| *ty)
    }

    /// The shape the graph declares for tensor `name`; dynamic axes are negative.
    pub fn declared_shape(&self, name: &str) -> Option<&[i64]> {
        self.tensors.iter().find(|(n, _, _)| n == name).map(|(_, _, s)| s.as_slice())
    }

    /// A float array as input `name`: borrowed when the graph takes float32, converted when it takes float16.
    pub fn float_input<'a, S: ndarray::Data<Elem = f32>, D: ndarray::Dimension>(
        &self,
        name: &str,
        array: &'a ndarray::ArrayBase<S, D>,
    ) -> Result<ort::session::SessionInputValue<'a>, ModelError> {
        if self.element_type(name) != Some(TensorElementType::Float16) {
            return self.tensor(array);
        }
        let shape: Vec<i64> = array.shape().iter().map(|&d| d as i64).collect();
        let data: Vec<half::f16> = array.iter().map(|&x| half::f16::from_f32(x)).collect();
        let tensor = ort::value::Tensor::from_array((shape, data)).map_err(|e| self.error(e))?;
        Ok(tensor.into())
    }

    /// A float array as an owned input value for `name` (float16 when the graph takes float16), to reuse across runs.
    pub fn float_value<D: ndarray::Dimension>(
        &self,
        name: &str,
        array: &ndarray::Array<f32, D>,
    ) -> Result<ort::value::DynValue, ModelError> {
        let shape: Vec<i64> = array.shape().iter().map(|&d| d as i64).collect();
        let value = if self.element_type(name) == Some(TensorElementType::Float16) {
            let data: Vec<half::f16> = array.iter().map(|&x| half::f16::from_f32(x)).collect();
            ort::value::Tensor::from_array((shape, data)).map_err(|e| self.error(e))?.into_dyn()
        } else {
            let data: Vec<f32> = array.iter().copied().collect();
            ort::value::Tensor::from_array((shape, data)).map_err(|e| self.error(e))?.into_dyn()
        };
        Ok(value)
    }

    /// Token ids as input `name`: borrowed when the graph takes int64, converted when it takes int32.
    pub fn ids_input<'a, D: ndarray::Dimension>(
        &self,
        name: &str,
        array: &'a ndarray::Array<i64, D>,
    ) -> Result<ort::session::SessionInputValue<'a>, ModelError> {
        if self.element_type(name) != Some(TensorElementType::Int32) {
            return self.tensor(array);
        }
        let shape: Vec<i64> = array.shape().iter().map(|&d| d as i64).collect();
        let data = array
            .iter()
            .map(|&x| {
                i32::try_from(x)
                    .map_err(|_| self.error(format!("token id {x} does not fit the graph's int32 `{name}`")))
            })
            .collect::<Result<Vec<i32>, _>>()?;
        let tensor = ort::value::Tensor::from_array((shape, data)).map_err(|e| self.error(e))?;
        Ok(tensor.into())
    }

    /// The ONNX file this session runs.
    pub fn file(&self) -> &Path {
        &self.file
    }

    /// The graph's real inputs and outputs, one line each, as `gsmile models` shows them.
    pub fn signature(&self) -> &[String] {
        &self.signature
    }

    /// Runs the graph on named inputs and hands the outputs to `read`, which copies out what it needs.
    pub fn run<T>(
        &self,
        inputs: Vec<(std::borrow::Cow<'_, str>, ort::session::SessionInputValue<'_>)>,
        read: impl FnOnce(&ort::session::SessionOutputs<'_>) -> Result<T, String>,
    ) -> Result<T, ModelError> {
        let err = |message: String| ModelError { file: self.file.clone(), message };
        let mut session = self.session.lock().map_err(|_| err("session poisoned by an earlier panic".into()))?;
        let start = std::time::Instant::now();
        let outputs = session.run(inputs).map_err(|e| err(e.to_string()));
        INFERENCE_NANOS.fetch_add(start.elapsed().as_nanos() as u64, std::sync::atomic::Ordering::Relaxed);
        read(&outputs?).map_err(err)
    }

    /// Borrows a contiguous (standard-layout) array as an ONNX input tensor; other layouts are an error.
    pub fn tensor<'a, T, S, D>(
        &self,
        array: &'a ndarray::ArrayBase<S, D>,
    ) -> Result<ort::session::SessionInputValue<'a>, ModelError>
    where
        T: ort::value::PrimitiveTensorElementType + Clone + std::fmt::Debug + 'static,
        S: ndarray::Data<Elem = T>,
        D: ndarray::Dimension,
    {
        let shape: Vec<i64> = array.shape().iter().map(|&d| d as i64).collect();
        let data = array.as_slice().ok_or_else(|| self.error("input array is not contiguous"))?;
        let tensor = ort::value::TensorRef::from_array_view((shape, data)).map_err(|e| self.error(e))?;
        Ok(tensor.into())
    }

    /// Wraps an `ort` error raised while preparing inputs for this model.
    pub fn error(&self, e: impl std::fmt::Display) -> ModelError {
        ModelError { file: self.file.clone(), message: e.to_string() }
    }
}

/// Copies output `name` out of a run as an `f32` array of the expected shape (float16 outputs are widened).
pub fn read_f32<D: ndarray::Dimension>(
    outputs: &ort::session::SessionOutputs<'_>,
    name: &str,
    expected: D,
) -> Result<ndarray::Array<f32, D>, String> {
    let (shape, data) = read_f32_dyn(outputs, name)?;
    if shape != expected.slice() {
        return Err(format!("output `{name}` has shape {shape:?}, expected {:?}", expected.slice()));
    }
    ndarray::Array::from_shape_vec(expected, data).map_err(|e| e.to_string())
}

/// Copies output `name` out of a run as `(shape, f32 data)`, whatever its shape (float16 outputs are widened).
pub fn read_f32_dyn(outputs: &ort::session::SessionOutputs<'_>, name: &str) -> Result<(Vec<usize>, Vec<f32>), String> {
    let value = outputs.get(name).ok_or_else(|| format!("no output `{name}`"))?;
    let dims = |shape: &ort::value::Shape| shape.iter().map(|&d| d.max(0) as usize).collect::<Vec<usize>>();
    let (shape, data) = if let Ok((shape, data)) = value.try_extract_tensor::<f32>() {
        (dims(shape), data.to_vec())
    } else {
        let (shape, data) = value.try_extract_tensor::<half::f16>().map_err(|e| format!("output `{name}`: {e}"))?;
        (dims(shape), data.iter().map(|x| x.to_f32()).collect())
    };
    check_finite(name, &data)?;
    Ok((shape, data))
}

/// Fails if a model output holds NaN or an infinity: no later stage can give a meaningful
/// answer from it, and caught here the error names the model that produced it.
fn check_finite(name: &str, data: &[f32]) -> Result<(), String> {
    let bad = data.iter().filter(|v| !v.is_finite()).count();
    if bad == 0 {
        return Ok(());
    }
    let first = data.iter().position(|v| !v.is_finite()).unwrap_or(0);
    Err(format!(
        "output `{name}` holds {bad} NaN or infinite values of {} (the first at flat index {first}, {}); \
         the model is broken or overflows on this input (a float16 export overflows where float32 does not)",
        data.len(),
        data[first]
    ))
}

/// Why sessions fell back from an accelerator to the CPU, reported once per process.
static FALLBACK: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// Accelerator fallbacks since the last call (e.g. "CUDA unavailable: …; running on CPU"), for the CLI to log.
pub fn take_fallback_warnings() -> Vec<String> {
    FALLBACK.lock().map(|mut w| std::mem::take(&mut *w)).unwrap_or_default()
}

#[cfg(feature = "cuda")]
fn register_accelerator(builder: &mut ort::session::builder::SessionBuilder, _file: &Path) -> &'static str {
    use ort::ep::ExecutionProvider;
    static REPORTED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    match ort::ep::CUDA::default().register(builder) {
        Ok(()) => "cuda",
        Err(e) => {
            // One line per process: every session fails the same way.
            if !REPORTED.swap(true, std::sync::atomic::Ordering::Relaxed)
                && let Ok(mut w) = FALLBACK.lock()
            {
                w.push(format!("CUDA execution provider unavailable ({}); running on CPU", e.to_string().trim()));
            }
            "cpu"
        }
    }
}

#[cfg(not(feature = "cuda"))]
fn register_accelerator(_builder: &mut ort::session::builder::SessionBuilder, _file: &Path) -> &'static str {
    "cpu"
}

fn check_side<'a>(
    bundle: &Path,
    file: &Path,
    side: &str,
    found: impl Iterator<Item = (&'a str, &'a ValueType)>,
    expected: &[TensorContract],
) -> Result<(), BundleError> {
    let found: Vec<(&str, &ValueType)> = found.collect();
    for want in expected {
        let Some((_, ty)) = found.iter().find(|(n, _)| *n == want.name) else {
            return Err(BundleError::MissingTensor {
                bundle: bundle.to_path_buf(),
                file: file.to_path_buf(),
                side: side.to_string(),
                field: want.field,
                name: want.name.clone(),
                available: found.iter().map(|(n, _)| n.to_string()).collect(),
            });
        };
        if !value_matches(ty, want) {
            return Err(BundleError::Contract {
                bundle: bundle.to_path_buf(),
                file: file.to_path_buf(),
                side: side.to_string(),
                field: want.field,
                name: want.name.clone(),
                expected: want.describe(),
                found: describe_value(ty),
            });
        }
    }
    Ok(())
}

fn value_matches(v: &ValueType, want: &TensorContract) -> bool {
    let ValueType::Tensor { ty, shape, .. } = v else { return false };
    want.types.contains(ty)
        && shape.len() == want.dims.len()
        && shape.iter().zip(&want.dims).all(|(d, w)| match w {
            Dim::Any => true,
            Dim::Fixed(n) => *d < 0 || d == n,
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn lazy_builds_once_across_threads() {
        let calls = std::sync::Arc::new(AtomicUsize::new(0));
        let counted = calls.clone();
        let lazy = Lazy::new("m.onnx", move || {
            counted.fetch_add(1, Ordering::SeqCst);
            std::thread::sleep(std::time::Duration::from_millis(20));
            Ok(42)
        });
        assert!(!lazy.is_ready());
        std::thread::scope(|s| {
            for _ in 0..8 {
                s.spawn(|| assert_eq!(*lazy.get().unwrap(), 42));
            }
        });
        assert!(lazy.is_ready());
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn lazy_returns_the_build_error_then_names_the_file() {
        let lazy: Lazy<u8> = Lazy::new("broken.onnx", || Err(crate::Error::InvalidInput("bad graph".into())));
        assert!(lazy.get().unwrap_err().to_string().contains("bad graph"));
        let again = lazy.get().unwrap_err().to_string();
        assert!(again.contains("broken.onnx") && again.contains("failed to load earlier"), "{again}");
        assert!(!lazy.is_ready());
    }
}
