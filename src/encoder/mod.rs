//! Encoders: images and texts to embedding vectors, for measuring output change (images)
//! and weighting perturbed instructions (texts). One file per bundle kind: `clip.rs` (CLIP-style
//! dual encoders) and `features.rs` (image feature models: DINOv2, ViT, CNN feature maps).

mod clip;
mod features;

use image::RgbImage;
use ndarray::{Array2, Array3, Array4, ArrayView4, Axis};

pub use clip::ClipEncoder;
pub use features::FeatureEncoder;

use crate::bundle::{Bundle, ImageSpec};
use crate::imaging;
use crate::preprocess::ImageProcessor;
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
    /// Whether [`ImageEncoder::embed_tokens`] gives local features (a feature model's patch
    /// tokens) rather than failing (a CLIP-style encoder's one pooled vector).
    fn has_tokens(&self) -> bool {
        false
    }
    /// Each image's set of local features, `[B,T,D]`: a transformer's patch tokens or a
    /// feature map's positions, for distances between sets ([`crate::distance::patch_ot`]).
    fn embed_tokens(&self, images: ArrayView4<f32>) -> Result<Array3<f32>> {
        let _ = images;
        Err(Error::InvalidInput(
            "this encoder gives one pooled vector per image, no patch tokens. Fix: use a features bundle (e.g. onnx/tiny-dinov2) or another distance".into(),
        ))
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

/// How an encoder bundle turns pictures into `pixel_values`.
#[derive(Debug, Clone)]
enum Preprocessing {
    /// Stretch to the bundle's `[image]` size, then map and normalise (gsmile's own bundles).
    Resize(ImageSpec),
    /// A transformers image processor: shortest-edge bicubic resize, centre crop, rescale, normalise (real exports).
    Processor(ImageProcessor),
}

impl Preprocessing {
    /// The bundle's `preprocessor` file when it names one, else its `[image]` section.
    fn from_bundle(bundle: &Bundle, preprocessor: Option<&std::path::PathBuf>, what: &str) -> Result<Self> {
        Ok(match preprocessor {
            Some(p) => Preprocessing::Processor(ImageProcessor::from_file(bundle.file(p))?),
            None => Preprocessing::Resize(bundle.image_spec(what)?.clone()),
        })
    }

    /// `(height, width)` of the `pixel_values` it makes.
    fn output_size(&self) -> (u32, u32) {
        match self {
            Preprocessing::Resize(spec) => (spec.height, spec.width),
            Preprocessing::Processor(p) => p.output_size(),
        }
    }

    /// How pictures are prepared, in words, for listings.
    fn summary(&self) -> String {
        match self {
            Preprocessing::Resize(i) => i.summary(),
            Preprocessing::Processor(p) => {
                let (h, w) = p.output_size();
                format!("{} to {h}x{w}", p.class_name())
            }
        }
    }

    /// `pixel_values` of `[B,3,H,W]` images in `[0,1]` of any size. A processor works on
    /// 8-bit pictures, as its reference does on saved images.
    fn pixel_values(&self, images: ArrayView4<f32>) -> Array4<f32> {
        match self {
            Preprocessing::Processor(p) => {
                let pictures: Vec<RgbImage> = images.axis_iter(Axis(0)).map(imaging::from_tensor).collect();
                p.preprocess(&pictures)
            }
            Preprocessing::Resize(spec) => {
                let (h, w) = (spec.height, spec.width);
                if images.dim().2 == h as usize && images.dim().3 == w as usize {
                    return imaging::normalize(images, spec);
                }
                let mut resized = Array4::zeros((images.dim().0, 3, h as usize, w as usize));
                for (k, img) in images.axis_iter(Axis(0)).enumerate() {
                    resized.index_axis_mut(Axis(0), k).assign(&imaging::resize_tensor(img, h, w));
                }
                imaging::normalize(resized.view(), spec)
            }
        }
    }
}
