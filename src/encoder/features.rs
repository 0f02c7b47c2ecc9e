//! Image feature models (`kind = "features"`): DINOv2 or ViT in transformers' layout
//! (`pixel_values` → `last_hidden_state`), or a CNN's feature map. gsmile pools the tokens
//! itself (`pooling = "mean" | "cls"`) and keeps the patch tokens for distances between sets.

use ndarray::{Array2, Array3, ArrayView4, Axis, s};

use super::{ImageEncoder, Preprocessing};
use crate::bundle::{Bundle, BundleKind, Description, FeatureLayout, FeaturesSection, Pooling};
use crate::runtime::{Dim, Lazy, ModelSession, RuntimeOptions, TensorContract, read_f32_dyn};
use crate::{Error, Result};

/// Images per graph call.
const BATCH: usize = 16;

/// Most tokens an image may have for patch-OT: its `T×T` cost matrix is 128 MB at this size.
pub const MAX_PATCH_TOKENS: usize = 4096;

/// A loaded feature model.
#[derive(Debug)]
pub struct FeatureEncoder {
    name: String,
    preprocessing: Preprocessing,
    section: FeaturesSection,
    session: Lazy<ModelSession>,
}

impl FeatureEncoder {
    /// Opens a features bundle; its graph loads, and is checked against the manifest, on first use.
    pub fn load(bundle: &Bundle, options: &RuntimeOptions) -> Result<Self> {
        bundle.expect_kind(BundleKind::Features, "--encoder")?;
        let section =
            bundle.manifest().features.clone().ok_or_else(|| Error::InvalidInput("features section missing".into()))?;
        let preprocessing = Preprocessing::from_bundle(bundle, section.preprocessor.as_ref(), "a features bundle")?;
        let (h, w) = preprocessing.output_size();
        let pixels = [Dim::Any, Dim::Fixed(3), Dim::Fixed(i64::from(h)), Dim::Fixed(i64::from(w))];
        let d = Dim::Fixed(section.dim as i64);
        let output: Vec<Dim> = match section.layout {
            FeatureLayout::Tokens => vec![Dim::Any, Dim::Any, d],
            FeatureLayout::Channels => vec![Dim::Any, d, Dim::Any, Dim::Any],
        };
        let session = ModelSession::deferred(
            bundle.dir(),
            &bundle.file(&section.file),
            vec![TensorContract::float("features.pixel_input", &section.pixel_input, &pixels)],
            vec![TensorContract::float("features.output", &section.output, &output)],
            options,
        );
        Ok(FeatureEncoder { name: bundle.manifest().name.clone(), preprocessing, section, session })
    }

    /// The bundle's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// What `gsmile models` shows: preprocessing, pooling and the graph's signature (loads it).
    pub fn describe(&self) -> Result<Description> {
        let pooling = match self.section.pooling {
            Pooling::Mean => "mean-pooled",
            Pooling::Cls => "CLS token",
        };
        Ok(Description {
            image: format!("{}; {}-d, {pooling}", self.preprocessing.summary(), self.section.dim),
            signature: self.session.get()?.signature().to_vec(),
        })
    }

    /// Every token of each image, `[B,T,D]` (a feature map's positions in row-major order).
    fn all_tokens(&self, images: ArrayView4<f32>) -> Result<Array3<f32>> {
        let (b, c, _, _) = images.dim();
        if c != 3 {
            return Err(Error::InvalidInput(format!("encoder {} takes RGB images, got {c} channels", self.name)));
        }
        let s = self.session.get()?;
        let name = &self.section.output;
        let mut chunks = Vec::new();
        for start in (0..b).step_by(BATCH) {
            let end = (start + BATCH).min(b);
            let pixels = self.preprocessing.pixel_values(images.slice(s![start..end, .., .., ..]));
            let input = pixels.as_standard_layout();
            let inputs =
                ort::inputs![self.section.pixel_input.as_str() => s.float_input(&self.section.pixel_input, &input)?];
            let layout = self.section.layout;
            let n = end - start;
            let dim = self.section.dim;
            let tokens = s.run(inputs, |o| {
                let (shape, data) = read_f32_dyn(o, name)?;
                let bad = || {
                    format!("output `{name}` is {shape:?}; the bundle says {layout:?} with dim {dim} for {n} images")
                };
                match (layout, shape.as_slice()) {
                    (FeatureLayout::Tokens, &[bb, t, dd]) if bb == n && dd == dim && t > 0 => {
                        Array3::from_shape_vec((n, t, dim), data).map_err(|_| bad())
                    }
                    (FeatureLayout::Channels, &[bb, dd, fh, fw]) if bb == n && dd == dim && fh * fw > 0 => {
                        let map = ndarray::Array4::from_shape_vec((n, dim, fh, fw), data).map_err(|_| bad())?;
                        let flat = map.into_shape_with_order((n, dim, fh * fw)).map_err(|_| bad())?;
                        Ok(flat.permuted_axes([0, 2, 1]).as_standard_layout().to_owned())
                    }
                    _ => Err(bad()),
                }
            })?;
            chunks.push(tokens);
        }
        if chunks.is_empty() {
            return Ok(Array3::zeros((0, 1, self.section.dim)));
        }
        let views: Vec<_> = chunks.iter().map(|c| c.view()).collect();
        ndarray::concatenate(Axis(0), &views).map_err(|e| Error::InvalidInput(e.to_string()))
    }
}

impl ImageEncoder for FeatureEncoder {
    fn dim(&self) -> usize {
        self.section.dim
    }

    fn prepare_images(&self) -> Result<()> {
        self.session.get().map(|_| ())
    }

    fn embed_images(&self, images: ArrayView4<f32>) -> Result<Array2<f32>> {
        let tokens = self.all_tokens(images)?;
        Ok(match self.section.pooling {
            Pooling::Mean => tokens.mean_axis(Axis(1)).expect("at least one token"),
            Pooling::Cls => tokens.index_axis(Axis(1), 0).to_owned(),
        })
    }

    fn has_tokens(&self) -> bool {
        true
    }

    fn embed_tokens(&self, images: ArrayView4<f32>) -> Result<Array3<f32>> {
        let tokens = self.all_tokens(images)?;
        if tokens.dim().1 > MAX_PATCH_TOKENS {
            return Err(Error::InvalidInput(format!(
                "encoder {} gives {} tokens an image; patch-OT solves at most {MAX_PATCH_TOKENS} (its cost matrix grows with the square). Fix: a smaller crop_size in the preprocessor, or `distance = cosine`",
                self.name,
                tokens.dim().1
            )));
        }
        let prefix = self.section.prefix_tokens;
        if prefix >= tokens.dim().1 {
            return Err(Error::InvalidInput(format!(
                "encoder {}: prefix_tokens = {prefix} leaves none of its {} tokens as patches. Fix: lower features.prefix_tokens",
                self.name,
                tokens.dim().1
            )));
        }
        Ok(tokens.slice(s![.., prefix.., ..]).to_owned())
    }
}
