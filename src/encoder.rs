//! Encoders: images and texts to embedding vectors, for measuring output change (images)
//! and weighting perturbed instructions (texts).

use image::RgbImage;
use ndarray::{Array2, Array3, ArrayView4, Axis, s};

use crate::bundle::{Bundle, BundleKind, Description, ImageSpec};
use crate::imaging;
use crate::preprocess::ImageProcessor;
use crate::runtime::{Dim, Lazy, ModelSession, RuntimeOptions, TensorContract, read_f32};
use crate::tokenizer::InstructionTokenizer;
use crate::{Error, Result};

/// Something that turns images into embedding vectors.
pub trait ImageEncoder: Send + Sync {
    /// Embedding width.
    fn dim(&self) -> usize;
    /// Embeds `[B,3,H,W]` images in `[0,1]` of any size into `[B,D]`.
    fn embed_images(&self, images: ArrayView4<f32>) -> Result<Array2<f32>>;
    /// Loads the image graph now, if it loads on first use, so a broken model is reported
    /// before long work starts.
    fn prepare_images(&self) -> Result<()> {
        Ok(())
    }
}

/// Something that turns texts into embedding vectors.
pub trait TextEncoder: Send + Sync {
    /// Embedding width.
    fn dim(&self) -> usize;
    /// Embeds texts into `[B,D]`.
    fn embed_texts(&self, texts: &[&str]) -> Result<Array2<f32>>;
    /// Loads the text graph now, if it loads on first use.
    fn prepare_texts(&self) -> Result<()> {
        Ok(())
    }
}

/// How a CLIP bundle turns pictures into `pixel_values`.
#[derive(Debug, Clone)]
enum Preprocessing {
    /// Stretch to the bundle's `[image]` size, then map and normalise (gsmile's own bundles).
    Resize(ImageSpec),
    /// transformers' CLIPImageProcessor: shortest-edge bicubic resize, centre crop, rescale, normalise (real exports).
    Processor(ImageProcessor),
}

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
        let preprocessing = match &c.preprocessor {
            Some(p) => Preprocessing::Processor(ImageProcessor::from_file(bundle.file(p))?),
            None => Preprocessing::Resize(bundle.image_spec("a clip bundle")?.clone()),
        };
        let (h, w) = match &preprocessing {
            Preprocessing::Resize(spec) => (spec.height, spec.width),
            Preprocessing::Processor(p) => p.output_size(),
        };
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
        match &self.preprocessing {
            Preprocessing::Resize(i) => i.summary(),
            Preprocessing::Processor(p) => {
                let (h, w) = p.output_size();
                format!("CLIPImageProcessor to {h}x{w}")
            }
        }
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
        let spec = match &self.preprocessing {
            Preprocessing::Resize(spec) => spec,
            Preprocessing::Processor(_) => {
                // The processor works on 8-bit pictures, as the reference does on saved images.
                let pictures: Vec<RgbImage> = images.axis_iter(Axis(0)).map(imaging::from_tensor).collect();
                return self.embed_pictures(&pictures);
            }
        };
        let (h, w) = (spec.height, spec.width);
        let mut out = Array2::zeros((b, self.dim));
        for start in (0..b).step_by(self.max_batch) {
            let end = (start + self.max_batch).min(b);
            let chunk = images.slice(s![start..end, .., .., ..]);
            let pixels = if chunk.dim().2 == h as usize && chunk.dim().3 == w as usize {
                imaging::normalize(chunk, spec)
            } else {
                let mut resized = ndarray::Array4::zeros((end - start, 3, h as usize, w as usize));
                for (k, img) in chunk.axis_iter(Axis(0)).enumerate() {
                    resized.index_axis_mut(Axis(0), k).assign(&imaging::resize_tensor(img, h, w));
                }
                imaging::normalize(resized.view(), spec)
            };
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
