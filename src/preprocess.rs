//! Image preprocessing, an exact reproduction of transformers' `CLIPImageProcessor` and of
//! the classes that run the same steps with other defaults: `BitImageProcessor` (DINOv2's)
//! and `ViTImageProcessor`, told apart by `image_processor_type`.
//!
//! CLIP models are trained on images prepared by one particular pipeline, and embeddings
//! move measurably when the pixels feeding them differ by a grey level, so gsmile
//! reproduces that pipeline bit for bit rather than approximately. The reference is the PIL
//! backend (`CLIPImageProcessorPil`, transformers 5.18, Pillow 13), read from a Hugging Face
//! `preprocessor_config.json`:
//!
//! 1. resize so the shorter side is `size.shortest_edge`, the longer side truncated as
//!    `transformers.image_transforms.get_resize_output_image_size(default_to_square=False)`
//!    computes it (or to a fixed `size.height` x `size.width`), with Pillow's
//!    `Image.resize` ([`pil_resize`]);
//! 2. centre crop to `crop_size` with `image_transforms.center_crop`'s offsets, padding with
//!    zeros where the image is smaller than the crop;
//! 3. rescale: `uint8` to `float64`, times `rescale_factor`, cast to `float32`
//!    (`image_transforms.rescale`);
//! 4. normalise in `float32`: `(x - mean) / std` with `mean` and `std` cast to `float32`
//!    (`image_transforms.normalize`).
//!
//! `tests/integration/preprocess_parity.rs` checks all of it against the fixtures of
//! `tests/fixtures/preprocess/make_preprocess_fixtures.py`.

use std::path::{Path, PathBuf};

use image::RgbImage;
use ndarray::Array4;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};

/// transformers' `OPENAI_CLIP_MEAN`, the default `image_mean`.
const OPENAI_CLIP_MEAN: [f64; 3] = [0.48145466, 0.4578275, 0.40821073];
/// transformers' `OPENAI_CLIP_STD`, the default `image_std`.
const OPENAI_CLIP_STD: [f64; 3] = [0.26862954, 0.26130258, 0.27577711];
/// The default `size.shortest_edge` and `crop_size` of `CLIPImageProcessor`.
const CLIP_SIZE: u32 = 224;

/// Why a `preprocessor_config.json` cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum PreprocessError {
    /// The file could not be read.
    #[error(
        "{path}: cannot read the image preprocessor config: {source}. Fix: pass the path of a Hugging Face preprocessor_config.json"
    )]
    Read {
        /// The config file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not a JSON object.
    #[error(
        "{path}: not a valid preprocessor_config.json: {message}. Fix: give a JSON object such as the preprocessor_config.json of openai/clip-vit-large-patch14"
    )]
    Json {
        /// The config file.
        path: PathBuf,
        /// The JSON parser's message, with line and column.
        message: String,
    },
    /// A field has a value this processor cannot reproduce.
    #[error("{path}: field `{field}` {problem}. Fix: {fix}")]
    Field {
        /// The config file.
        path: PathBuf,
        /// The JSON field at fault.
        field: String,
        /// What is wrong with it.
        problem: String,
        /// What to change.
        fix: String,
    },
}

/// A problem with one field, before it is tied to a file.
#[derive(Debug)]
struct FieldProblem {
    /// The JSON field at fault.
    field: String,
    /// What is wrong with it.
    problem: String,
    /// What to change.
    fix: String,
}

impl FieldProblem {
    fn new(field: &str, problem: impl Into<String>, fix: impl Into<String>) -> Self {
        Self { field: field.to_owned(), problem: problem.into(), fix: fix.into() }
    }

    fn at(self, path: &Path) -> PreprocessError {
        PreprocessError::Field { path: path.to_path_buf(), field: self.field, problem: self.problem, fix: self.fix }
    }
}

impl std::fmt::Display for FieldProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "field `{}` {}. Fix: {}", self.field, self.problem, self.fix)
    }
}

/// A Pillow resampling filter that [`pil_resize`] reproduces exactly.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Resample {
    /// Pillow's `BILINEAR` (code 2): the triangle filter, support 1 input pixel.
    Bilinear,
    /// Pillow's `BICUBIC` (code 3): Keys' cubic convolution with a = -0.5, support 2 pixels.
    Bicubic,
}

impl Resample {
    /// The filter of a Pillow `Image.Resampling` code, if this module reproduces it.
    pub fn from_pil_code(code: i64) -> Option<Self> {
        match code {
            2 => Some(Self::Bilinear),
            3 => Some(Self::Bicubic),
            _ => None,
        }
    }

    /// The Pillow `Image.Resampling` code of this filter.
    pub fn pil_code(self) -> u8 {
        match self {
            Self::Bilinear => 2,
            Self::Bicubic => 3,
        }
    }

    /// Half-width of the filter at scale 1 (Pillow's `struct filter.support`).
    fn support(self) -> f64 {
        match self {
            Self::Bilinear => 1.0,
            Self::Bicubic => 2.0,
        }
    }

    /// The filter's weight at distance `x` (Pillow's `bilinear_filter` / `bicubic_filter`;
    /// the operation order is kept so the `f64` results are the same).
    fn weight(self, x: f64) -> f64 {
        let x = x.abs();
        match self {
            Self::Bilinear => {
                if x < 1.0 {
                    1.0 - x
                } else {
                    0.0
                }
            }
            Self::Bicubic => {
                const A: f64 = -0.5;
                if x < 1.0 {
                    ((A + 2.0) * x - (A + 3.0)) * x * x + 1.0
                } else if x < 2.0 {
                    (((x - 5.0) * x + 8.0) * x - 4.0) * A
                } else {
                    0.0
                }
            }
        }
    }
}

/// How the resize step picks its output size (transformers' `size` field).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ResizeTarget {
    /// Scale so the shorter side is this long, keeping the aspect ratio; the longer side is
    /// `int(shortest_edge * long / short)` (truncated, as transformers computes it).
    ShortestEdge(u32),
    /// Resize to exactly this height and width, ignoring the aspect ratio.
    Exact {
        /// Output height in pixels.
        height: u32,
        /// Output width in pixels.
        width: u32,
    },
}

/// The resize step: target size and filter.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Resize {
    target: ResizeTarget,
    filter: Resample,
}

/// The normalisation step: per-channel mean and std as written in the config.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Normalize {
    mean: [f64; 3],
    std: [f64; 3],
}

/// transformers' `CLIPImageProcessor` (PIL backend), built from a `preprocessor_config.json`.
///
/// Absent fields take `CLIPImageProcessor`'s defaults (shortest edge 224, bicubic, 224x224
/// centre crop, rescale by 1/255, OpenAI CLIP mean and std); unknown fields are ignored; a
/// field set to `null` is unset, as in transformers (a step whose flag is `null` is skipped,
/// a step that is on but lacks its value is an error). Deserialising checks the config once,
/// so [`ImageProcessor::preprocess`] cannot fail on it later.
#[derive(Clone, Debug, PartialEq)]
pub struct ImageProcessor {
    class: Class,
    resize: Option<Resize>,
    crop: Option<(u32, u32)>,
    rescale: Option<f64>,
    normalize: Option<Normalize>,
    do_convert_rgb: bool,
}

impl Default for ImageProcessor {
    /// `CLIPImageProcessor()` with no arguments (the settings of OpenAI's CLIP ViT-L/14).
    fn default() -> Self {
        Self {
            class: Class::Clip,
            resize: Some(Resize { target: ResizeTarget::ShortestEdge(CLIP_SIZE), filter: Resample::Bicubic }),
            crop: Some((CLIP_SIZE, CLIP_SIZE)),
            rescale: Some(1.0 / 255.0),
            normalize: Some(Normalize { mean: OPENAI_CLIP_MEAN, std: OPENAI_CLIP_STD }),
            do_convert_rgb: true,
        }
    }
}

/// transformers' `IMAGENET_STANDARD_MEAN` and `_STD`, ViTImageProcessor's defaults.
const IMAGENET_STANDARD: [f64; 3] = [0.5, 0.5, 0.5];

/// The transformers image-processor classes whose (PIL) pipeline this module reproduces:
/// they run the same steps and differ only in the defaults of absent fields.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Class {
    /// `CLIPImageProcessor`.
    Clip,
    /// `BitImageProcessor` (DINOv2's): CLIP's steps and CLIP's defaults.
    Bit,
    /// `ViTImageProcessor`: an exact 224×224 bilinear resize, no crop, mean and std 0.5.
    Vit,
}

/// What a [`Class`] uses for a field its config leaves out.
struct ClassDefaults {
    size: RawSize,
    resample: Resample,
    center_crop: bool,
    default_to_square: bool,
    mean: [f64; 3],
    std: [f64; 3],
}

impl Class {
    /// The class a `image_processor_type` names (its `Fast` and `Pil` variants too).
    fn from_name(name: &str) -> Option<Self> {
        let base = name.strip_suffix("Fast").or_else(|| name.strip_suffix("Pil")).unwrap_or(name);
        match base {
            "CLIPImageProcessor" => Some(Class::Clip),
            "BitImageProcessor" => Some(Class::Bit),
            "ViTImageProcessor" => Some(Class::Vit),
            _ => None,
        }
    }

    /// The `image_processor_type` written for this class.
    fn name(self) -> &'static str {
        match self {
            Class::Clip => "CLIPImageProcessor",
            Class::Bit => "BitImageProcessor",
            Class::Vit => "ViTImageProcessor",
        }
    }

    fn defaults(self) -> ClassDefaults {
        match self {
            Class::Clip | Class::Bit => ClassDefaults {
                size: RawSize::Dict(Map::from_iter([("shortest_edge".to_owned(), Value::from(CLIP_SIZE))])),
                resample: Resample::Bicubic,
                center_crop: true,
                default_to_square: false,
                mean: OPENAI_CLIP_MEAN,
                std: OPENAI_CLIP_STD,
            },
            Class::Vit => ClassDefaults {
                size: RawSize::Dict(Map::from_iter([
                    ("height".to_owned(), Value::from(CLIP_SIZE)),
                    ("width".to_owned(), Value::from(CLIP_SIZE)),
                ])),
                resample: Resample::Bilinear,
                center_crop: false,
                default_to_square: true,
                mean: IMAGENET_STANDARD,
                std: IMAGENET_STANDARD,
            },
        }
    }
}

/// A JSON field that may be absent, `null`, or hold a value.
enum Slot<T> {
    Absent,
    Null,
    Set(T),
}

impl<T> Slot<T> {
    /// The value, the class default when absent, or `None` when explicitly `null`.
    fn or_default(self, default: T) -> Option<T> {
        match self {
            Slot::Absent => Some(default),
            Slot::Null => None,
            Slot::Set(v) => Some(v),
        }
    }
}

/// Reads field `name` of `obj` as a `T`, naming the field if its type is wrong.
fn slot<T: DeserializeOwned>(obj: &Map<String, Value>, name: &str, expected: &str) -> Result<Slot<T>, FieldProblem> {
    match obj.get(name) {
        None => Ok(Slot::Absent),
        Some(Value::Null) => Ok(Slot::Null),
        Some(v) => serde_json::from_value(v.clone()).map(Slot::Set).map_err(|e| {
            FieldProblem::new(
                name,
                format!("is {v}, not {expected} ({e})"),
                format!("write {expected}, or remove the field to use CLIPImageProcessor's default"),
            )
        }),
    }
}

/// A size as transformers accepts it: an int, a `[height, width]` list, or a dict.
#[derive(Clone, Deserialize)]
#[serde(untagged)]
enum RawSize {
    Int(i64),
    List(Vec<i64>),
    Dict(Map<String, Value>),
}

/// A mean or std: one number for all channels, or one per channel.
#[derive(Deserialize)]
#[serde(untagged)]
enum RawChannels {
    One(f64),
    Each(Vec<f64>),
}

/// A positive pixel count, or a problem naming `field`.
fn pixels(field: &str, v: i64) -> Result<u32, FieldProblem> {
    let max = crate::bundle::MAX_MODEL_SIDE;
    u32::try_from(v).ok().filter(|&n| n > 0 && n <= max).ok_or_else(|| {
        FieldProblem::new(field, format!("has {v} pixels"), format!("give a positive number of pixels, at most {max}"))
    })
}

/// The `height` and `width` keys of a size dict, if both are set.
fn height_width(field: &str, d: &Map<String, Value>) -> Result<Option<(u32, u32)>, FieldProblem> {
    let get = |key: &str| -> Result<Option<u32>, FieldProblem> {
        match d.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => match v.as_i64() {
                Some(n) => pixels(&format!("{field}.{key}"), n).map(Some),
                None => Err(FieldProblem::new(
                    &format!("{field}.{key}"),
                    format!("is {v}, not an integer"),
                    "give a positive number of pixels",
                )),
            },
        }
    };
    Ok(match (get("height")?, get("width")?) {
        (Some(h), Some(w)) => Some((h, w)),
        _ => None,
    })
}

/// The keys of `d` whose values are not `null`, for error messages.
fn set_keys(d: &Map<String, Value>) -> Vec<&str> {
    d.iter().filter(|(_, v)| !v.is_null()).map(|(k, _)| k.as_str()).collect()
}

/// transformers' `get_size_dict(size, default_to_square)` followed by the branch
/// `PilBackend.resize` takes, restricted to the branches this module reproduces.
fn resize_target(raw: RawSize, default_to_square: bool) -> Result<ResizeTarget, FieldProblem> {
    let unsupported = |what: &str| {
        FieldProblem::new(
            "size",
            format!("is {what}, which CLIPImageProcessor resizes in a way gsmile does not reproduce"),
            "use {\"shortest_edge\": n} or {\"height\": h, \"width\": w}",
        )
    };
    match raw {
        RawSize::Int(n) if default_to_square => {
            let n = pixels("size", n)?;
            Ok(ResizeTarget::Exact { height: n, width: n })
        }
        RawSize::Int(n) => Ok(ResizeTarget::ShortestEdge(pixels("size", n)?)),
        RawSize::List(v) if v.len() == 2 => {
            Ok(ResizeTarget::Exact { height: pixels("size", v[0])?, width: pixels("size", v[1])? })
        }
        RawSize::List(v) => Err(FieldProblem::new(
            "size",
            format!("is a list of {} numbers", v.len()),
            "give [height, width], one number, or a dict such as {\"shortest_edge\": 224}",
        )),
        RawSize::Dict(d) => {
            let is_set = |k: &str| d.get(k).is_some_and(|v| !v.is_null());
            if is_set("shortest_edge") && is_set("longest_edge") {
                return Err(unsupported("{shortest_edge, longest_edge}"));
            }
            if is_set("shortest_edge") {
                let v = &d["shortest_edge"];
                let n = v.as_i64().ok_or_else(|| {
                    FieldProblem::new(
                        "size.shortest_edge",
                        format!("is {v}, not an integer"),
                        "give a positive number of pixels",
                    )
                })?;
                return Ok(ResizeTarget::ShortestEdge(pixels("size.shortest_edge", n)?));
            }
            if is_set("max_height") && is_set("max_width") {
                return Err(unsupported("{max_height, max_width}"));
            }
            match height_width("size", &d)? {
                Some((height, width)) => Ok(ResizeTarget::Exact { height, width }),
                None if is_set("longest_edge") || is_set("min_pixels") || is_set("max_pixels") => {
                    Err(unsupported(&format!("{:?}", set_keys(&d))))
                }
                None => Err(FieldProblem::new(
                    "size",
                    format!("has keys {:?}, which transformers does not accept", set_keys(&d)),
                    "use {\"shortest_edge\": n} or {\"height\": h, \"width\": w}",
                )),
            }
        }
    }
}

/// transformers' `get_size_dict(crop_size)` (ints are squares) as `(height, width)`.
fn crop_size(raw: RawSize) -> Result<(u32, u32), FieldProblem> {
    match raw {
        RawSize::Int(n) => {
            let n = pixels("crop_size", n)?;
            Ok((n, n))
        }
        RawSize::List(v) if v.len() == 2 => Ok((pixels("crop_size", v[0])?, pixels("crop_size", v[1])?)),
        RawSize::List(v) => Err(FieldProblem::new(
            "crop_size",
            format!("is a list of {} numbers", v.len()),
            "give [height, width], one number, or {\"height\": h, \"width\": w}",
        )),
        RawSize::Dict(d) => height_width("crop_size", &d)?.ok_or_else(|| {
            FieldProblem::new(
                "crop_size",
                format!("has keys {:?}; a centre crop needs height and width", set_keys(&d)),
                "give {\"height\": h, \"width\": w}",
            )
        }),
    }
}

/// Per-channel values of `image_mean` / `image_std` (one number applies to all three).
fn channels(field: &str, raw: RawChannels) -> Result<[f64; 3], FieldProblem> {
    let values = match raw {
        RawChannels::One(v) => [v; 3],
        RawChannels::Each(v) => <[f64; 3]>::try_from(v.as_slice()).map_err(|_| {
            FieldProblem::new(
                field,
                format!("has {} values for 3 (RGB) channels", v.len()),
                "give three numbers, one per channel, or one number for all",
            )
        })?,
    };
    if values.iter().any(|v| !v.is_finite()) {
        return Err(FieldProblem::new(field, "is not finite", "give finite numbers"));
    }
    Ok(values)
}

impl ImageProcessor {
    /// Reads and checks a Hugging Face `preprocessor_config.json`.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self, PreprocessError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path)
            .map_err(|source| PreprocessError::Read { path: path.to_path_buf(), source })?;
        let value: Value = serde_json::from_str(&text)
            .map_err(|e| PreprocessError::Json { path: path.to_path_buf(), message: e.to_string() })?;
        let Value::Object(obj) = value else {
            return Err(PreprocessError::Json {
                path: path.to_path_buf(),
                message: "the top level is not an object".to_owned(),
            });
        };
        Self::from_map(&obj).map_err(|p| p.at(path))
    }

    /// Builds the processor from the fields of a config object, as
    /// `CLIPImageProcessorPil.from_dict` would, and checks it can produce a batch.
    fn from_map(obj: &Map<String, Value>) -> Result<Self, FieldProblem> {
        const BOOL: &str = "true or false";
        const SIZE: &str = "an integer, [height, width] or a dict";
        let class = match slot::<String>(obj, "image_processor_type", "a string")? {
            Slot::Set(name) => Class::from_name(&name).ok_or_else(|| {
                FieldProblem::new(
                    "image_processor_type",
                    format!("is {name:?}, whose pipeline gsmile does not reproduce"),
                    "use a CLIPImageProcessor, BitImageProcessor or ViTImageProcessor config",
                )
            })?,
            // Older configs name only their feature extractor (`ViTFeatureExtractor`).
            Slot::Absent | Slot::Null => match slot::<String>(obj, "feature_extractor_type", "a string")? {
                Slot::Set(name) => name
                    .strip_suffix("FeatureExtractor")
                    .and_then(|base| Class::from_name(&format!("{base}ImageProcessor")))
                    .unwrap_or(Class::Clip),
                _ => Class::Clip,
            },
        };
        let defaults = class.defaults();
        // A `null` flag is falsy in transformers: the step is skipped.
        let flag = |name: &str| -> Result<bool, FieldProblem> {
            Ok(slot::<bool>(obj, name, BOOL)?.or_default(true).unwrap_or(false))
        };
        let do_resize = flag("do_resize")?;
        let do_center_crop =
            slot::<bool>(obj, "do_center_crop", BOOL)?.or_default(defaults.center_crop).unwrap_or(false);
        let do_rescale = flag("do_rescale")?;
        let do_normalize = flag("do_normalize")?;
        let do_convert_rgb = flag("do_convert_rgb")?;
        let default_to_square =
            slot::<bool>(obj, "default_to_square", BOOL)?.or_default(defaults.default_to_square).unwrap_or(false);
        if slot::<bool>(obj, "do_pad", BOOL)?.or_default(false).unwrap_or(false) {
            return Err(FieldProblem::new(
                "do_pad",
                "is true, and CLIPImageProcessor's padding is not reproduced",
                "set \"do_pad\": false or remove it",
            ));
        }
        let missing = |field: &str, step: &str| {
            FieldProblem::new(
                field,
                format!("is null but {step} is true"),
                format!(
                    "give a value, or remove the field to use CLIPImageProcessor's default, or set {step} to false"
                ),
            )
        };

        let resize = if do_resize {
            let size = slot::<RawSize>(obj, "size", SIZE)?
                .or_default(defaults.size)
                .ok_or_else(|| missing("size", "do_resize"))?;
            let code = slot::<i64>(obj, "resample", "a Pillow resampling code (an integer)")?
                .or_default(i64::from(defaults.resample.pil_code()))
                .ok_or_else(|| missing("resample", "do_resize"))?;
            let filter = Resample::from_pil_code(code).ok_or_else(|| {
                let name = match code {
                    0 => "NEAREST",
                    1 => "LANCZOS",
                    4 => "BOX",
                    5 => "HAMMING",
                    _ => "not a Pillow filter",
                };
                FieldProblem::new(
                    "resample",
                    format!("is {code} ({name}); only 2 (BILINEAR) and 3 (BICUBIC) are reproduced"),
                    "set \"resample\": 3 (bicubic, CLIP's default) or 2",
                )
            })?;
            Some(Resize { target: resize_target(size, default_to_square)?, filter })
        } else {
            None
        };

        let crop = if do_center_crop {
            let raw = slot::<RawSize>(obj, "crop_size", SIZE)?
                .or_default(RawSize::Int(i64::from(CLIP_SIZE)))
                .ok_or_else(|| missing("crop_size", "do_center_crop"))?;
            Some(crop_size(raw)?)
        } else {
            None
        };

        let rescale = if do_rescale {
            let factor = slot::<f64>(obj, "rescale_factor", "a number")?
                .or_default(1.0 / 255.0)
                .ok_or_else(|| missing("rescale_factor", "do_rescale"))?;
            if !factor.is_finite() {
                return Err(FieldProblem::new("rescale_factor", "is not finite", "give 1/255"));
            }
            Some(factor)
        } else {
            None
        };

        let normalize = if do_normalize {
            let numbers = "a number or a list of 3 numbers";
            let mean = slot::<RawChannels>(obj, "image_mean", numbers)?
                .or_default(RawChannels::Each(defaults.mean.to_vec()))
                .ok_or_else(|| missing("image_mean", "do_normalize"))?;
            let std = slot::<RawChannels>(obj, "image_std", numbers)?
                .or_default(RawChannels::Each(defaults.std.to_vec()))
                .ok_or_else(|| missing("image_std", "do_normalize"))?;
            let (mean, std) = (channels("image_mean", mean)?, channels("image_std", std)?);
            if std.iter().any(|&s| s == 0.0 || s as f32 == 0.0) {
                return Err(FieldProblem::new(
                    "image_std",
                    format!("{std:?} has a zero, which would divide by zero"),
                    "give non-zero standard deviations",
                ));
            }
            Some(Normalize { mean, std })
        } else {
            None
        };

        let processor = Self { class, resize, crop, rescale, normalize, do_convert_rgb };
        if processor.fixed_size().is_none() {
            return Err(FieldProblem::new(
                "do_center_crop",
                "is false and the resize does not fix the output size, so images of different shapes give pixel_values of different shapes",
                "set \"do_center_crop\": true with a crop_size, or \"size\": {\"height\": h, \"width\": w}",
            ));
        }
        Ok(processor)
    }

    /// The `(height, width)` of every output, if it does not depend on the input.
    fn fixed_size(&self) -> Option<(u32, u32)> {
        match (self.crop, self.resize) {
            (Some(crop), _) => Some(crop),
            (None, Some(Resize { target: ResizeTarget::Exact { height, width }, .. })) => Some((height, width)),
            _ => None,
        }
    }

    /// The transformers class this config is for (`image_processor_type`), for listings.
    pub fn class_name(&self) -> &'static str {
        self.class.name()
    }

    /// The `(height, width)` of each image in `pixel_values`.
    pub fn output_size(&self) -> (u32, u32) {
        self.fixed_size().expect("checked when the processor was built")
    }

    /// `pixel_values` `[B, 3, H, W]` of RGB images, equal to transformers'
    /// `CLIPImageProcessorPil(images, return_tensors="np")["pixel_values"]`.
    ///
    /// `do_convert_rgb` has nothing to do: the images are RGB already.
    ///
    /// # Panics
    /// If an image has zero width or height (transformers and Pillow reject those too).
    pub fn preprocess(&self, images: &[RgbImage]) -> Array4<f32> {
        let (out_h, out_w) = self.output_size();
        let (out_h, out_w) = (out_h as usize, out_w as usize);
        let lut = self.value_table();
        let mut out = Array4::<f32>::zeros((images.len(), 3, out_h, out_w));
        for (b, image) in images.iter().enumerate() {
            assert!(
                image.width() > 0 && image.height() > 0,
                "ImageProcessor::preprocess: image {b} is {}x{}; images need at least one pixel",
                image.width(),
                image.height()
            );
            let resized = match self.resize {
                Some(Resize { target, filter }) => {
                    let (h, w) = match target {
                        ResizeTarget::ShortestEdge(edge) => shortest_edge_size(image.height(), image.width(), edge),
                        ResizeTarget::Exact { height, width } => (height, width),
                    };
                    pil_resize(image, w, h, filter)
                }
                None => image.clone(),
            };
            let cropped = match self.crop {
                Some((h, w)) => center_crop(&resized, h, w),
                None => resized,
            };
            debug_assert_eq!((cropped.height() as usize, cropped.width() as usize), (out_h, out_w));
            let mut item = out.index_axis_mut(ndarray::Axis(0), b);
            for (x, y, px) in cropped.enumerate_pixels() {
                for c in 0..3 {
                    item[[c, y as usize, x as usize]] = lut[c][usize::from(px[c])];
                }
            }
        }
        out
    }

    /// The output value of each channel and `uint8` level: rescale in `float64` then cast to
    /// `float32` (`image_transforms.rescale`), normalise in `float32`
    /// (`image_transforms.normalize`); the value depends only on the channel and the level.
    fn value_table(&self) -> [[f32; 256]; 3] {
        let mut lut = [[0f32; 256]; 3];
        for (c, row) in lut.iter_mut().enumerate() {
            for (level, v) in row.iter_mut().enumerate() {
                let x = match self.rescale {
                    Some(factor) => (level as f64 * factor) as f32,
                    None => level as f32,
                };
                *v = match self.normalize {
                    Some(n) => (x - n.mean[c] as f32) / n.std[c] as f32,
                    None => x,
                };
            }
        }
        lut
    }

    /// The config as a `preprocessor_config.json` object that builds this processor again.
    fn to_json(&self) -> Value {
        let mut obj = Map::new();
        obj.insert("image_processor_type".into(), self.class.name().into());
        obj.insert("do_resize".into(), self.resize.is_some().into());
        if let Some(r) = self.resize {
            let size = match r.target {
                ResizeTarget::ShortestEdge(n) => serde_json::json!({ "shortest_edge": n }),
                ResizeTarget::Exact { height, width } => {
                    serde_json::json!({ "height": height, "width": width })
                }
            };
            obj.insert("size".into(), size);
            obj.insert("resample".into(), r.filter.pil_code().into());
        }
        obj.insert("do_center_crop".into(), self.crop.is_some().into());
        if let Some((height, width)) = self.crop {
            obj.insert("crop_size".into(), serde_json::json!({ "height": height, "width": width }));
        }
        obj.insert("do_rescale".into(), self.rescale.is_some().into());
        if let Some(factor) = self.rescale {
            obj.insert("rescale_factor".into(), factor.into());
        }
        obj.insert("do_normalize".into(), self.normalize.is_some().into());
        if let Some(n) = self.normalize {
            obj.insert("image_mean".into(), n.mean.to_vec().into());
            obj.insert("image_std".into(), n.std.to_vec().into());
        }
        obj.insert("do_convert_rgb".into(), self.do_convert_rgb.into());
        Value::Object(obj)
    }
}

impl<'de> Deserialize<'de> for ImageProcessor {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let obj = Map::<String, Value>::deserialize(deserializer)?;
        Self::from_map(&obj).map_err(serde::de::Error::custom)
    }
}

impl Serialize for ImageProcessor {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.to_json().serialize(serializer)
    }
}

/// transformers' `get_resize_output_image_size(image, size, default_to_square=False)`:
/// the shorter side becomes `edge`, the longer `int(edge * long / short)` (a `float64`
/// division, then truncation). Returns `(height, width)`.
fn shortest_edge_size(height: u32, width: u32, edge: u32) -> (u32, u32) {
    let (short, long) = if width <= height { (width, height) } else { (height, width) };
    // Python multiplies the ints exactly, divides to the nearest double, then truncates.
    let new_long = ((u64::from(edge) * u64::from(long)) as f64 / f64::from(short)) as u32;
    if width <= height { (new_long, edge) } else { (edge, new_long) }
}

/// transformers' `image_transforms.center_crop` to `height` x `width`: the crop starts at
/// `(size - crop) // 2`; along an axis where the image is smaller than the crop, the image
/// is placed at `ceil((crop - size) / 2)` on zeros.
fn center_crop(image: &RgbImage, height: u32, width: u32) -> RgbImage {
    // (first source index, first destination index, count) along one axis.
    let axis = |size: u32, crop: u32| {
        if size >= crop { ((size - crop) / 2, 0, crop) } else { (0, (crop - size).div_ceil(2), size) }
    };
    let (sy, dy, ny) = axis(image.height(), height);
    let (sx, dx, nx) = axis(image.width(), width);
    let mut out = RgbImage::new(width, height);
    for y in 0..ny {
        for x in 0..nx {
            out.put_pixel(dx + x, dy + y, *image.get_pixel(sx + x, sy + y));
        }
    }
    out
}

// Pillow's resampler, reimplemented.
//
// No crate reproduces it bit for bit: fast_image_resize 5.5.0 (`FilterType::CatmullRom`
// and `Bilinear` on `U8x3`) differs from Pillow 13 on 101 of the 123 fixture resizes, by
// up to 18 grey levels (its fixed-point coefficients and pass order are its own). What
// follows follows Pillow's `ImagingResample` (`src/libImaging/Resample.c`): two separable
// passes, each skipped when that side keeps its size; per output pixel, filter weights
// computed in `f64` with the support widened by the downscale factor (antialiasing),
// normalised to sum 1, converted to fixed point with `PRECISION_BITS` fraction bits,
// accumulated in `i32` from a rounding offset of one half, and clipped to `u8` after each
// pass. The pass order matters because of that clipping: Pillow 13 runs the vertical pass
// first when the height shrinks by more than twice as many pixels as the width
// (python-pillow/Pillow#9549), else the horizontal pass first, on only the rows the
// vertical pass reads. That rule was measured, not read: Pillow 13.0.0 matches it on 696
// random size pairs and on every fixture, including the ties (which go horizontal first).

/// Fraction bits of Pillow's fixed-point 8-bit coefficients (`PRECISION_BITS`).
const PRECISION_BITS: u32 = 32 - 8 - 2;

/// The accumulator's starting value: one half, so the shift in [`clip8`] rounds.
const HALF: i32 = 1 << (PRECISION_BITS - 1);

/// Pillow's `clip8`: drops the fraction bits of an accumulator and clamps to `u8`.
fn clip8(acc: i32) -> u8 {
    (acc >> PRECISION_BITS).clamp(0, 255) as u8
}

/// The weights of one resampling pass along one axis.
struct AxisWeights {
    /// Coefficients per output index (Pillow's `ksize`), zero-padded.
    ksize: usize,
    /// First input index of each output index.
    first: Vec<usize>,
    /// Number of input indices of each output index.
    count: Vec<usize>,
    /// `ksize` fixed-point weights per output index.
    weights: Vec<i32>,
}

impl AxisWeights {
    /// Pillow's `precompute_coeffs` followed by `normalize_coeffs_8bpc`, for the whole axis.
    fn new(in_size: usize, out_size: usize, filter: Resample) -> Self {
        let scale = in_size as f64 / out_size as f64;
        let filter_scale = scale.max(1.0);
        let support = filter.support() * filter_scale;
        let ksize = support.ceil() as usize * 2 + 1;
        let inv_scale = 1.0 / filter_scale;
        let mut first = Vec::with_capacity(out_size);
        let mut count = Vec::with_capacity(out_size);
        let mut weights = vec![0i32; out_size * ksize];
        let mut w = vec![0f64; ksize];
        for (i, fixed) in weights.chunks_exact_mut(ksize).enumerate() {
            let center = (i as f64 + 0.5) * scale;
            // `as i64` truncates toward zero like C's `(int)`.
            let lo = ((center - support + 0.5) as i64).max(0) as usize;
            let hi = ((center + support + 0.5) as i64).min(in_size as i64) as usize;
            let n = hi - lo;
            let mut total = 0.0;
            for (j, wj) in w[..n].iter_mut().enumerate() {
                *wj = filter.weight(((lo + j) as f64 - center + 0.5) * inv_scale);
                total += *wj;
            }
            for (f, &wj) in fixed.iter_mut().zip(&w[..n]) {
                let wj = if total != 0.0 { wj / total } else { wj };
                let scaled = wj * f64::from(1u32 << PRECISION_BITS);
                *f = if wj < 0.0 { (scaled - 0.5) as i32 } else { (scaled + 0.5) as i32 };
            }
            first.push(lo);
            count.push(n);
        }
        Self { ksize, first, count, weights }
    }

    /// The first input index and the fixed-point weights of output index `i`.
    fn taps(&self, i: usize) -> (usize, &[i32]) {
        (self.first[i], &self.weights[i * self.ksize..i * self.ksize + self.count[i]])
    }

    /// One past the last input index any output index reads.
    fn end(&self) -> usize {
        let last = self.first.len() - 1;
        self.first[last] + self.count[last]
    }
}

/// Resamples rows `rows` of an interleaved RGB buffer `width` pixels wide along x.
fn horizontal_pass(src: &[u8], width: usize, rows: std::ops::Range<usize>, weights: &AxisWeights) -> Vec<u8> {
    let out_w = weights.first.len();
    let mut out = vec![0u8; rows.len() * out_w * 3];
    for (dst_row, y) in out.chunks_exact_mut(out_w * 3).zip(rows) {
        let src_row = &src[y * width * 3..(y + 1) * width * 3];
        for (x, dst) in dst_row.chunks_exact_mut(3).enumerate() {
            let (lo, k) = weights.taps(x);
            let mut acc = [HALF; 3];
            for (px, &kj) in src_row[lo * 3..].chunks_exact(3).zip(k) {
                for c in 0..3 {
                    acc[c] = acc[c].wrapping_add(i32::from(px[c]).wrapping_mul(kj));
                }
            }
            for c in 0..3 {
                dst[c] = clip8(acc[c]);
            }
        }
    }
    out
}

/// Resamples an interleaved RGB buffer `width` pixels wide along y; its first row is input
/// row `row0`.
fn vertical_pass(src: &[u8], width: usize, row0: usize, weights: &AxisWeights) -> Vec<u8> {
    let stride = width * 3;
    let mut out = vec![0u8; weights.first.len() * stride];
    for (y, dst_row) in out.chunks_exact_mut(stride).enumerate() {
        let (lo, k) = weights.taps(y);
        let base = (lo - row0) * stride;
        for (i, dst) in dst_row.iter_mut().enumerate() {
            let mut acc = HALF;
            for (j, &kj) in k.iter().enumerate() {
                acc = acc.wrapping_add(i32::from(src[base + j * stride + i]).wrapping_mul(kj));
            }
            *dst = clip8(acc);
        }
    }
    out
}

/// Resizes an RGB image to `width` x `height` exactly as Pillow 13's
/// `Image.resize((width, height), resample)` does (no `box`, no `reducing_gap`).
///
/// # Panics
/// If the input or the requested size has zero width or height.
pub fn pil_resize(image: &RgbImage, width: u32, height: u32, filter: Resample) -> RgbImage {
    let (in_w, in_h) = (image.width() as usize, image.height() as usize);
    let (out_w, out_h) = (width as usize, height as usize);
    assert!(
        in_w > 0 && in_h > 0 && out_w > 0 && out_h > 0,
        "pil_resize: cannot resize {in_w}x{in_h} to {out_w}x{out_h}; both need at least one pixel"
    );
    let src = image.as_raw();
    let horizontal = (out_w != in_w).then(|| AxisWeights::new(in_w, out_w, filter));
    let vertical = (out_h != in_h).then(|| AxisWeights::new(in_h, out_h, filter));
    let vertical_first = out_h < in_h && 2 * (in_w as i64 - out_w as i64) < (in_h - out_h) as i64;
    let out = match (&horizontal, &vertical) {
        (None, None) => src.clone(),
        (Some(h), None) => horizontal_pass(src, in_w, 0..in_h, h),
        (None, Some(v)) => vertical_pass(src, in_w, 0, v),
        (Some(h), Some(v)) if vertical_first => horizontal_pass(&vertical_pass(src, in_w, 0, v), in_w, 0..out_h, h),
        (Some(h), Some(v)) => {
            // Only the rows the vertical pass reads go through the horizontal one.
            let rows = v.first[0]..v.end();
            let row0 = rows.start;
            vertical_pass(&horizontal_pass(src, in_w, rows, h), out_w, row0, v)
        }
    };
    RgbImage::from_raw(width, height, out).expect("buffer sized for width x height x 3")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> Result<ImageProcessor, PreprocessError> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("preprocessor_config.json");
        std::fs::write(&path, json).unwrap();
        ImageProcessor::from_file(&path)
    }

    fn field_error(json: &str) -> (String, String) {
        match parse(json) {
            Err(e @ PreprocessError::Field { .. }) => {
                let PreprocessError::Field { ref field, .. } = e else { unreachable!() };
                (field.clone(), e.to_string())
            }
            other => panic!("expected a field error for {json}, got {other:?}"),
        }
    }

    #[test]
    fn empty_config_takes_clip_defaults() {
        let p = parse("{}").unwrap();
        assert_eq!(p, ImageProcessor::default());
        assert_eq!(p.output_size(), (224, 224));
        assert_eq!(p.resize.unwrap().target, ResizeTarget::ShortestEdge(224));
        assert_eq!(p.resize.unwrap().filter, Resample::Bicubic);
        assert_eq!(p.rescale, Some(1.0 / 255.0));
        assert_eq!(p.normalize.unwrap().mean, OPENAI_CLIP_MEAN);
        assert_eq!(p.normalize.unwrap().std, OPENAI_CLIP_STD);
    }

    #[test]
    fn each_class_fills_absent_fields_with_its_own_defaults() {
        let vit = parse(r#"{"image_processor_type": "ViTImageProcessor"}"#).unwrap();
        assert_eq!(vit.resize.unwrap().target, ResizeTarget::Exact { height: 224, width: 224 });
        assert_eq!(vit.resize.unwrap().filter, Resample::Bilinear);
        assert_eq!(vit.crop, None);
        assert_eq!(vit.normalize.unwrap().mean, IMAGENET_STANDARD);
        // An old ViT config: its feature extractor's name, an int size meaning a square.
        let old = parse(r#"{"feature_extractor_type": "ViTFeatureExtractor", "size": 224}"#).unwrap();
        assert_eq!(old.resize.unwrap().target, ResizeTarget::Exact { height: 224, width: 224 });
        assert_eq!(old.crop, None);
        let bit = parse(r#"{"image_processor_type": "BitImageProcessor"}"#).unwrap();
        assert_eq!(ImageProcessor { class: Class::Clip, ..bit }, ImageProcessor::default());
    }

    #[test]
    fn clip_vit_l14_config_parses() {
        let p = parse(
            r#"{"crop_size": 224, "do_center_crop": true, "do_normalize": true, "do_resize": true,
                "feature_extractor_type": "CLIPFeatureExtractor",
                "image_mean": [0.48145466, 0.4578275, 0.40821073],
                "image_std": [0.26862954, 0.26130258, 0.27577711], "resample": 3, "size": 224}"#,
        )
        .unwrap();
        assert_eq!(p, ImageProcessor::default());
    }

    #[test]
    fn size_forms() {
        let target = |json: &str| parse(json).unwrap().resize.unwrap().target;
        assert_eq!(target(r#"{"size": 40}"#), ResizeTarget::ShortestEdge(40));
        assert_eq!(target(r#"{"size": 40, "default_to_square": true}"#), ResizeTarget::Exact { height: 40, width: 40 });
        assert_eq!(target(r#"{"size": [30, 20]}"#), ResizeTarget::Exact { height: 30, width: 20 });
        assert_eq!(
            target(r#"{"size": {"height": 30, "width": 20, "shortest_edge": null}}"#),
            ResizeTarget::Exact { height: 30, width: 20 }
        );
        let p = parse(r#"{"crop_size": [30, 20], "resample": 2}"#).unwrap();
        assert_eq!(p.output_size(), (30, 20));
        assert_eq!(p.resize.unwrap().filter, Resample::Bilinear);
        let p = parse(r#"{"crop_size": {"height": 7, "width": 9}}"#).unwrap();
        assert_eq!(p.output_size(), (7, 9));
        let p = parse(r#"{"do_center_crop": false, "size": {"height": 5, "width": 6}}"#).unwrap();
        assert_eq!(p.output_size(), (5, 6));
    }

    #[test]
    fn nulls_and_scalars_follow_transformers() {
        // A null flag skips its step.
        let p = parse(r#"{"do_resize": null, "do_normalize": null}"#).unwrap();
        assert!(p.resize.is_none() && p.normalize.is_none());
        // One number applies to every channel.
        let p = parse(r#"{"image_mean": 0.5, "image_std": 0.25}"#).unwrap();
        assert_eq!(p.normalize.unwrap().mean, [0.5; 3]);
        assert_eq!(p.normalize.unwrap().std, [0.25; 3]);
        // A null value for a step that is on is an error, as in transformers.
        assert_eq!(field_error(r#"{"crop_size": null}"#).0, "crop_size");
        assert_eq!(field_error(r#"{"resample": null}"#).0, "resample");
        assert_eq!(field_error(r#"{"rescale_factor": null}"#).0, "rescale_factor");
        // ... but not for a step that is off.
        assert!(parse(r#"{"rescale_factor": null, "do_rescale": false}"#).is_ok());
    }

    #[test]
    fn serialises_back_to_the_same_processor() {
        for json in [
            "{}",
            r#"{"size": {"height": 20, "width": 28}, "do_center_crop": false, "do_normalize": false}"#,
            r#"{"size": 36, "crop_size": 33, "do_rescale": false, "image_mean": 0.5, "resample": 2}"#,
            r#"{"image_processor_type": "ViTImageProcessor"}"#,
            r#"{"image_processor_type": "BitImageProcessorFast", "size": {"shortest_edge": 256}}"#,
        ] {
            let p = parse(json).unwrap();
            let text = serde_json::to_string(&p).unwrap();
            let back: ImageProcessor = serde_json::from_str(&text).unwrap();
            assert_eq!(back, p, "{text}");
        }
    }

    #[test]
    fn bad_configs_name_the_field_and_the_fix() {
        let cases = [
            (r#"{"resample": 1}"#, "resample", "LANCZOS"),
            (r#"{"resample": "bicubic"}"#, "resample", "integer"),
            (r#"{"do_resize": "yes"}"#, "do_resize", "true or false"),
            (r#"{"size": {"longest_edge": 300}}"#, "size", "shortest_edge"),
            (r#"{"size": {"shortest_edge": 224, "longest_edge": 300}}"#, "size", "shortest_edge"),
            (r#"{"size": {"foo": 3}}"#, "size", "foo"),
            (r#"{"size": [1, 2, 3]}"#, "size", "[height, width]"),
            (r#"{"size": 0}"#, "size", "positive"),
            (r#"{"size": {"shortest_edge": -4}}"#, "size.shortest_edge", "positive"),
            (r#"{"crop_size": {"shortest_edge": 3}}"#, "crop_size", "height"),
            (r#"{"image_mean": [0.1, 0.2]}"#, "image_mean", "three numbers"),
            (r#"{"image_std": [0.1, 0.0, 0.2]}"#, "image_std", "zero"),
            (r#"{"do_center_crop": false}"#, "do_center_crop", "crop_size"),
            (r#"{"do_resize": false, "do_center_crop": false}"#, "do_center_crop", "height"),
            (r#"{"do_pad": true}"#, "do_pad", "false"),
            (r#"{"image_processor_type": "SiglipImageProcessor"}"#, "image_processor_type", "BitImageProcessor"),
        ];
        for (json, field, hint) in cases {
            let (got, message) = field_error(json);
            assert_eq!(got, field, "{json}: {message}");
            assert!(message.contains("Fix:") && message.contains(hint), "{json}: {message}");
            assert!(message.contains("preprocessor_config.json"), "{message}");
        }
    }

    #[test]
    fn unreadable_or_malformed_files_name_the_file() {
        let missing = ImageProcessor::from_file("/nonexistent/preprocessor_config.json");
        let message = missing.unwrap_err().to_string();
        assert!(message.contains("/nonexistent/preprocessor_config.json") && message.contains("Fix:"));
        for json in ["{\"size\": ", "[1, 2]"] {
            let err = parse(json).unwrap_err();
            assert!(matches!(err, PreprocessError::Json { .. }), "{err}");
            assert!(err.to_string().contains("preprocessor_config.json"), "{err}");
        }
    }

    #[test]
    fn shortest_edge_truncates_like_transformers() {
        // int(224 * 300 / 20) = 3360; int(4 * 5 / 3) = int(6.67) = 6, not 7.
        assert_eq!(shortest_edge_size(20, 300, 224), (224, 3360));
        assert_eq!(shortest_edge_size(300, 20, 224), (3360, 224));
        assert_eq!(shortest_edge_size(3, 5, 4), (4, 6));
        assert_eq!(shortest_edge_size(5, 3, 4), (6, 4));
        // A square, and an image already at the target.
        assert_eq!(shortest_edge_size(64, 64, 224), (224, 224));
        assert_eq!(shortest_edge_size(40, 57, 40), (40, 57));
        // int(224 * 333 / 500) = int(149.184) = 149.
        assert_eq!(shortest_edge_size(500, 333, 224), (336, 224));
        assert_eq!(shortest_edge_size(333, 500, 224), (224, 336));
    }

    #[test]
    fn center_crop_offsets_and_padding() {
        // 5x4 image whose pixel (x, y) holds (x, y, 1).
        let image = RgbImage::from_fn(5, 4, |x, y| image::Rgb([x as u8, y as u8, 1]));
        // Cropping 3x2 starts at ((4 - 2) // 2, (5 - 3) // 2) = (1, 1).
        let c = center_crop(&image, 2, 3);
        assert_eq!(c.get_pixel(0, 0).0, [1, 1, 1]);
        assert_eq!(c.get_pixel(2, 1).0, [3, 2, 1]);
        // Taller and narrower crop: rows padded ceil((7 - 4) / 2) = 2 on top, columns start at
        // (5 - 2) // 2 = 1.
        let c = center_crop(&image, 7, 2);
        assert_eq!((c.width(), c.height()), (2, 7));
        assert_eq!(c.get_pixel(0, 1).0, [0, 0, 0]);
        assert_eq!(c.get_pixel(0, 2).0, [1, 0, 1]);
        assert_eq!(c.get_pixel(1, 5).0, [2, 3, 1]);
        assert_eq!(c.get_pixel(1, 6).0, [0, 0, 0]);
    }

    #[test]
    fn resize_identity_and_constant_images() {
        let image = RgbImage::from_fn(9, 7, |x, y| image::Rgb([x as u8 * 20, y as u8 * 30, 200]));
        assert_eq!(pil_resize(&image, 9, 7, Resample::Bicubic), image);
        // A constant image stays constant under any resize (weights sum to one).
        let flat = RgbImage::from_pixel(13, 5, image::Rgb([17, 128, 255]));
        for (w, h) in [(3, 2), (40, 1), (13, 30), (1, 1)] {
            let out = pil_resize(&flat, w, h, Resample::Bicubic);
            assert!(out.pixels().all(|p| p.0 == [17, 128, 255]), "{w}x{h}");
        }
    }

    #[test]
    fn normalisation_order_matches_numpy() {
        let p = ImageProcessor::default();
        let lut = p.value_table();
        // float32((float64(200) / 255)) then (x - float32(mean)) / float32(std) in float32.
        let x = (200.0f64 * (1.0 / 255.0)) as f32;
        let want = (x - 0.48145466f64 as f32) / 0.26862954f64 as f32;
        assert_eq!(lut[0][200].to_bits(), want.to_bits());
        let batch = p.preprocess(&[RgbImage::from_pixel(3, 2, image::Rgb([200, 0, 255]))]);
        assert_eq!(batch.shape(), &[1, 3, 224, 224]);
        assert_eq!(batch[[0, 0, 100, 100]].to_bits(), want.to_bits());
    }
}
