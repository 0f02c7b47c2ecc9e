//! CLIP-style dual encoders (`kind = "clip"`): image and text towers as two graphs.

use image::RgbImage;
use ndarray::{Array2, Array3, ArrayView4, Axis, s};

use super::{ImageEncoder, Preprocessing, TextEncoder};
use crate::bundle::{Bundle, BundleKind, Description};
use crate::imaging;
use crate::runtime::{Dim, Lazy, ModelSession, RuntimeOptions, TensorContract, read_f32};
use crate::tokenizer::InstructionTokenizer;
use crate::{Error, Result};

/// A CLIP-style dual encoder from a `kind = "clip"` bundle: image and text towers as two graphs.
#[derive(Debug)]
pub struct ClipEncoder {
    name: String,
    preprocessing: Preprocessing,
    dim: usize,
    normalized: bool,
    tokenizer: InstructionTokenizer,
    image: Lazy<ModelSession>,
    text: Lazy<ModelSession>,
    pixel_input: String,
    image_output: String,
    ids_input: String,
    mask_input: String,
    text_output: String,
    max_batch: usize,
}

impl ClipEncoder {
    /// Opens a clip bundle; each graph is loaded and checked against the manifest on first use.
    pub fn load(bundle: &Bundle, options: &RuntimeOptions) -> Result<Self> {
        bundle.expect_kind(BundleKind::Clip, "--encoder")?;
        let m = bundle.manifest();
        let c = m.clip.as_ref().ok_or_else(|| Error::InvalidInput("clip section missing".into()))?;
        let preprocessing = Preprocessing::from_bundle(bundle, c.preprocessor.as_ref(), "a clip bundle")?;
        let (h, w) = preprocessing.output_size();
        let l = bundle.tokenizer_spec()?.max_length as i64;
        let d = c.embed_dim as i64;
        let emb = [Dim::Any, Dim::Fixed(d)];
        let tok = [Dim::Any, Dim::Fixed(l)];
        let pixels = [Dim::Any, Dim::Fixed(3), Dim::Fixed(i64::from(h)), Dim::Fixed(i64::from(w))];
        let image = ModelSession::deferred(
            bundle.dir(),
            &bundle.file(&c.image_file),
            vec![TensorContract::float("clip.pixel_input", &c.pixel_input, &pixels)],
            vec![TensorContract::float("clip.image_output", &c.image_output, &emb)],
            options,
        );
        let text = ModelSession::deferred(
            bundle.dir(),
            &bundle.file(&c.text_file),
            vec![
                TensorContract::ids("clip.ids_input", &c.ids_input, &tok),
                TensorContract::ids("clip.mask_input", &c.mask_input, &tok),
            ],
            vec![TensorContract::float("clip.text_output", &c.text_output, &emb)],
            options,
        );
        Ok(ClipEncoder {
            name: m.name.clone(),
            preprocessing,
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

    /// Both graphs' real signatures, for listings (loads both graphs).
    pub fn signature(&self) -> Result<Vec<String>> {
        Ok(self.image.get()?.signature().iter().chain(self.text.get()?.signature()).cloned().collect())
    }

    /// What `gsmile models` shows of the loaded encoder: its preprocessing and both graphs'
    /// signatures (loads both graphs).
    pub fn describe(&self) -> Result<Description> {
        Ok(Description { image: self.preprocessing(), signature: self.signature()? })
    }

    /// How pictures are prepared, in words, for listings.
    pub fn preprocessing(&self) -> String {
        self.preprocessing.summary()
    }

    /// Whether the graphs return unit-length embeddings.
    pub fn normalized(&self) -> bool {
        self.normalized
    }

    /// The tokenizer of the text tower.
    pub fn tokenizer(&self) -> &InstructionTokenizer {
        &self.tokenizer
    }

    /// Embeds images already at the encoder's size, normalised, `[B,3,H,W]`.
    pub fn embed_pixel_values(&self, pixels: ArrayView4<f32>) -> Result<Array2<f32>> {
        let s = self.image.get()?;
        let input = pixels.as_standard_layout();
        let inputs = ort::inputs![self.pixel_input.as_str() => s.float_input(&self.pixel_input, &input)?];
        Ok(s.run(inputs, |o| read_f32(o, &self.image_output, ndarray::Dim((pixels.dim().0, self.dim))))?)
    }

    /// Embeds 8-bit pictures of any size, prepared as the bundle says.
    pub fn embed_pictures(&self, pictures: &[RgbImage]) -> Result<Array2<f32>> {
        let processor = match &self.preprocessing {
            Preprocessing::Processor(p) => p,
            Preprocessing::Resize(spec) => {
                // Bring every picture to the encoder's size so they stack, then take the float path edits take.
                let resized: Vec<Array3<f32>> = pictures
                    .iter()
                    .map(|p| imaging::resize_tensor(imaging::to_tensor(p).view(), spec.height, spec.width))
                    .collect();
                if resized.is_empty() {
                    return Ok(Array2::zeros((0, self.dim)));
                }
                let views: Vec<_> = resized.iter().map(|t| t.view()).collect();
                let stacked = ndarray::stack(Axis(0), &views).map_err(|e| Error::InvalidInput(e.to_string()))?;
                return self.embed_images(stacked.view());
            }
        };
        let mut out = Array2::zeros((pictures.len(), self.dim));
        for (k, chunk) in pictures.chunks(self.max_batch).enumerate() {
            let start = k * self.max_batch;
            let pixels = processor.preprocess(chunk);
            out.slice_mut(s![start..start + chunk.len(), ..]).assign(&self.embed_pixel_values(pixels.view())?);
        }
        Ok(out)
    }
}

impl ImageEncoder for ClipEncoder {
    fn dim(&self) -> usize {
        self.dim
    }

    fn prepare_images(&self) -> Result<()> {
        self.image.get().map(|_| ())
    }

    fn embed_images(&self, images: ArrayView4<f32>) -> Result<Array2<f32>> {
        let (b, c, _, _) = images.dim();
        if c != 3 {
            return Err(Error::InvalidInput(format!("encoder {} takes RGB images, got {c} channels", self.name)));
        }
        let mut out = Array2::zeros((b, self.dim));
        for start in (0..b).step_by(self.max_batch) {
            let end = (start + self.max_batch).min(b);
            let pixels = self.preprocessing.pixel_values(images.slice(s![start..end, .., .., ..]));
            out.slice_mut(s![start..end, ..]).assign(&self.embed_pixel_values(pixels.view())?);
        }
        Ok(out)
    }
}

impl TextEncoder for ClipEncoder {
    fn dim(&self) -> usize {
        self.dim
    }

    fn prepare_texts(&self) -> Result<()> {
        self.text.get().map(|_| ())
    }

    fn embed_texts(&self, texts: &[&str]) -> Result<Array2<f32>> {
        let mut out = Array2::zeros((texts.len(), self.dim));
        for start in (0..texts.len()).step_by(self.max_batch) {
            let end = (start + self.max_batch).min(texts.len());
            let enc = self.tokenizer.encode(&texts[start..end])?;
            let s = self.text.get()?;
            let inputs = ort::inputs![
                self.ids_input.as_str() => s.ids_input(&self.ids_input, &enc.input_ids)?,
                self.mask_input.as_str() => s.ids_input(&self.mask_input, &enc.attention_mask)?,
            ];
            let emb = s.run(inputs, |o| read_f32(o, &self.text_output, ndarray::Dim((end - start, self.dim))))?;
            out.slice_mut(s![start..end, ..]).assign(&emb);
        }
        Ok(out)
    }
}
