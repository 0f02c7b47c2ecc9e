//! Encoders: images and texts to embedding vectors, for measuring output change (images)
//! and weighting perturbed instructions (texts).

use ndarray::{Array2, ArrayView4, Axis, s};
use ort::value::TensorElementType;

use crate::bundle::{Bundle, BundleKind, ImageSpec};
use crate::imaging;
use crate::runtime::{Dim, ModelSession, RuntimeOptions, TensorContract, read_f32};
use crate::tokenizer::InstructionTokenizer;
use crate::{Error, Result};

/// Something that turns images into embedding vectors.
pub trait ImageEncoder: Send + Sync {
    /// Embedding width.
    fn dim(&self) -> usize;
    /// Embeds `[B,3,H,W]` images in `[0,1]` of any size into `[B,D]`.
    fn embed_images(&self, images: ArrayView4<f32>) -> Result<Array2<f32>>;
}

/// Something that turns texts into embedding vectors.
pub trait TextEncoder: Send + Sync {
    /// Embedding width.
    fn dim(&self) -> usize;
    /// Embeds texts into `[B,D]`.
    fn embed_texts(&self, texts: &[&str]) -> Result<Array2<f32>>;
}

/// A CLIP-style dual encoder from a `kind = "clip"` bundle: image and text towers as two graphs.
#[derive(Debug)]
pub struct ClipEncoder {
    name: String,
    spec: ImageSpec,
    dim: usize,
    normalized: bool,
    tokenizer: InstructionTokenizer,
    image: ModelSession,
    text: ModelSession,
    pixel_input: String,
    image_output: String,
    ids_input: String,
    mask_input: String,
    text_output: String,
    max_batch: usize,
}

impl ClipEncoder {
    /// Loads a clip bundle and checks both graphs against the manifest.
    pub fn load(bundle: &Bundle, options: &RuntimeOptions) -> Result<Self> {
        bundle.expect_kind(BundleKind::Clip, "--encoder")?;
        let m = bundle.manifest();
        let c = m.clip.as_ref().ok_or_else(|| Error::InvalidInput("clip section missing".into()))?;
        let (h, w) = (i64::from(m.image.height), i64::from(m.image.width));
        let l = m.tokenizer.max_length as i64;
        let d = c.embed_dim as i64;
        let f32t = TensorElementType::Float32;
        let i64t = TensorElementType::Int64;
        let emb = [Dim::Any, Dim::Fixed(d)];
        let tok = [Dim::Any, Dim::Fixed(l)];
        let image = ModelSession::load(
            bundle.dir(),
            &bundle.file(&c.image_file),
            &[TensorContract::new("clip.pixel_input", &c.pixel_input, f32t, &[Dim::Any, Dim::Fixed(3), Dim::Fixed(h), Dim::Fixed(w)])],
            &[TensorContract::new("clip.image_output", &c.image_output, f32t, &emb)],
            options,
        )?;
        let text = ModelSession::load(
            bundle.dir(),
            &bundle.file(&c.text_file),
            &[
                TensorContract::new("clip.ids_input", &c.ids_input, i64t, &tok),
                TensorContract::new("clip.mask_input", &c.mask_input, i64t, &tok),
            ],
            &[TensorContract::new("clip.text_output", &c.text_output, f32t, &emb)],
            options,
        )?;
        Ok(ClipEncoder {
            name: m.name.clone(),
            spec: m.image.clone(),
            dim: c.embed_dim,
            normalized: c.normalized,
            tokenizer: InstructionTokenizer::from_bundle(bundle)?,
            image,
            text,
            pixel_input: c.pixel_input.clone(),
            image_output: c.image_output.clone(),
            ids_input: c.ids_input.clone(),
            mask_input: c.mask_input.clone(),
            text_output: c.text_output.clone(),
            max_batch: 64,
        })
    }

    /// Short name for reports.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Both graphs' real signatures, for listings.
    pub fn signature(&self) -> Vec<String> {
        self.image.signature().iter().chain(self.text.signature()).cloned().collect()
    }

    /// Whether the graphs return unit-length embeddings.
    pub fn normalized(&self) -> bool {
        self.normalized
    }

    /// Embeds images already at the encoder's size, normalised, `[B,3,H,W]`.
    pub fn embed_pixel_values(&self, pixels: ArrayView4<f32>) -> Result<Array2<f32>> {
        let s = &self.image;
        let input = pixels.as_standard_layout().into_owned();
        let inputs = ort::inputs![self.pixel_input.as_str() => s.tensor(&input)?];
        Ok(s.run(inputs, |o| read_f32(o, &self.image_output, ndarray::Dim((pixels.dim().0, self.dim))))?)
    }
}

impl ImageEncoder for ClipEncoder {
    fn dim(&self) -> usize {
        self.dim
    }

    fn embed_images(&self, images: ArrayView4<f32>) -> Result<Array2<f32>> {
        let (b, c, _, _) = images.dim();
        if c != 3 {
            return Err(Error::InvalidInput(format!("encoder {} takes RGB images, got {c} channels", self.name)));
        }
        let (h, w) = (self.spec.height, self.spec.width);
        let mut out = Array2::zeros((b, self.dim));
        for start in (0..b).step_by(self.max_batch) {
            let end = (start + self.max_batch).min(b);
            let mut resized = ndarray::Array4::zeros((end - start, 3, h as usize, w as usize));
            for (k, img) in images.slice(s![start..end, .., .., ..]).axis_iter(Axis(0)).enumerate() {
                resized.index_axis_mut(Axis(0), k).assign(&imaging::resize_tensor(img, h, w));
            }
            let pixels = imaging::normalize(resized.view(), &self.spec);
            out.slice_mut(s![start..end, ..]).assign(&self.embed_pixel_values(pixels.view())?);
        }
        Ok(out)
    }
}

impl TextEncoder for ClipEncoder {
    fn dim(&self) -> usize {
        self.dim
    }

    fn embed_texts(&self, texts: &[&str]) -> Result<Array2<f32>> {
        let mut out = Array2::zeros((texts.len(), self.dim));
        for start in (0..texts.len()).step_by(self.max_batch) {
            let end = (start + self.max_batch).min(texts.len());
            let enc = self.tokenizer.encode(&texts[start..end])?;
            let s = &self.text;
            let inputs = ort::inputs![
                self.ids_input.as_str() => s.tensor(&enc.input_ids)?,
                self.mask_input.as_str() => s.tensor(&enc.attention_mask)?,
            ];
            let emb = s.run(inputs, |o| read_f32(o, &self.text_output, ndarray::Dim((end - start, self.dim))))?;
            out.slice_mut(s![start..end, ..]).assign(&emb);
        }
        Ok(out)
    }
}
