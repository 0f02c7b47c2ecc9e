//! Instruction-based image editors: the [`Editor`] trait and the one-step ONNX editor.
//!
//! An editor takes a batch of images and one instruction per image and returns the edited
//! images. Images cross this boundary as `[B,3,H,W]` float arrays in `[0,1]` at the
//! editor's own resolution ([`Editor::size`]); [`edit_image`] handles resizing for callers
//! that start from an arbitrary picture.

pub mod pix2pix;
pub mod scheduler;

use image::RgbImage;
use ndarray::{Array4, ArrayView3, ArrayView4, Axis, s};

use crate::bundle::{Bundle, BundleKind, ImageSpec};
use crate::imaging;
use crate::runtime::{Dim, Lazy, ModelSession, RuntimeOptions, TensorContract, read_f32};
use crate::tokenizer::InstructionTokenizer;
use crate::{Error, Result};

/// Something that edits images according to text instructions.
pub trait Editor: Send + Sync {
    /// Short name for reports.
    fn name(&self) -> &str;
    /// `(height, width)` the editor works at.
    fn size(&self) -> (u32, u32);
    /// Parameters beyond the bundle that change outputs (steps, guidance…), as text for cache keys.
    fn params(&self) -> String {
        String::new()
    }
    /// Checks an instruction can be fed to the editor (e.g. fits its token limit).
    fn check_instruction(&self, instruction: &str) -> Result<()>;
    /// Loads the editor's graphs now, if they load on first use, so a broken model is
    /// reported before long work starts rather than in the middle of it.
    fn prepare(&self) -> Result<()> {
        Ok(())
    }
    /// Edits `images[i]` with `instructions[i]`; images are `[B,3,H,W]` in `[0,1]` at [`Editor::size`].
    fn edit(&self, images: ArrayView4<f32>, instructions: &[&str]) -> Result<Array4<f32>>;

    /// Edits one image with many instructions, the gSMILE workload, in batches of at most `max_batch`.
    fn edit_shared(&self, image: ArrayView3<f32>, instructions: &[&str], max_batch: usize) -> Result<Array4<f32>> {
        let (c, h, w) = image.dim();
        let step = max_batch.max(1);
        let edit_chunk = |chunk: &[&str]| {
            let batch = image.insert_axis(Axis(0)).broadcast((chunk.len(), c, h, w)).map(|b| b.to_owned());
            let batch = batch.ok_or_else(|| Error::InvalidInput("image must be [3,H,W]".into()))?;
            self.edit(batch.view(), chunk)
        };
        if instructions.is_empty() {
            return Ok(Array4::zeros((0, c, h, w)));
        }
        if instructions.len() <= step {
            // One call: its output is the result, with no copy into a second array.
            return edit_chunk(instructions);
        }
        let mut out = Array4::zeros((instructions.len(), c, h, w));
        for (k, chunk) in instructions.chunks(step).enumerate() {
            let start = k * step;
            out.slice_mut(s![start..start + chunk.len(), .., .., ..]).assign(&edit_chunk(chunk)?);
        }
        Ok(out)
    }
}

/// Fails unless a `[B,3,H,W]` batch of dimensions `dim` fits `editor`'s size and has one instruction per image.
fn check_batch(editor: &dyn Editor, dim: (usize, usize, usize, usize), instructions: usize) -> Result<()> {
    let (b, c, h, w) = dim;
    let (eh, ew) = editor.size();
    if b != instructions {
        return Err(Error::InvalidInput(format!("{b} images but {instructions} instructions")));
    }
    if (c, h, w) != (3, eh as usize, ew as usize) {
        return Err(Error::InvalidInput(format!(
            "editor {} takes [B,3,{eh},{ew}] images, got [B,{c},{h},{w}]",
            editor.name()
        )));
    }
    Ok(())
}

/// Loads the editor a bundle holds, whatever its kind: a one-step ONNX editor or an InstructPix2Pix pipeline.
///
/// `max_batch` caps the images (one-step) or UNet rows (diffusion) of one graph call; `diffusion`
/// overrides an InstructPix2Pix bundle's sampling defaults and is ignored by one-step editors.
pub fn load(
    bundle: &Bundle,
    options: &RuntimeOptions,
    diffusion: pix2pix::Pix2PixOverrides,
    max_batch: usize,
) -> Result<Box<dyn Editor>> {
    match bundle.manifest().kind {
        BundleKind::Editor => {
            let set = [
                ("--steps", diffusion.steps.is_some()),
                ("--guidance-scale", diffusion.guidance_scale.is_some()),
                ("--image-guidance-scale", diffusion.image_guidance_scale.is_some()),
                ("--size", diffusion.width.is_some() || diffusion.height.is_some()),
            ];
            if let Some((flag, _)) = set.iter().find(|(_, on)| *on) {
                return Err(Error::InvalidInput(format!(
                    "{flag} applies to diffusion editors, but {} is a one-step editor. Fix: drop {flag}",
                    bundle.dir().display()
                )));
            }
            Ok(Box::new(OnnxEditor::load(bundle, options)?.with_max_batch(max_batch)))
        }
        BundleKind::InstructPix2Pix => {
            Ok(Box::new(pix2pix::InstructPix2Pix::load(bundle, options, diffusion)?.with_max_batch(max_batch)))
        }
        BundleKind::Clip => Err(bundle
            .expect_kind(BundleKind::Editor, "--editor")
            .err()
            .map(Error::from)
            .unwrap_or_else(|| Error::InvalidInput("not an editor".into()))),
    }
}

/// Edits an arbitrary-size picture: resizes to the editor's size, edits, and resizes back.
pub fn edit_image(editor: &dyn Editor, image: &RgbImage, instruction: &str) -> Result<RgbImage> {
    editor.check_instruction(instruction)?;
    let (h, w) = editor.size();
    let input = imaging::resize_tensor(imaging::to_tensor(image).view(), h, w);
    let edited = editor.edit(input.insert_axis(Axis(0)).view(), &[instruction])?;
    let back = imaging::resize_tensor(edited.index_axis(Axis(0), 0), image.height(), image.width());
    Ok(imaging::from_tensor(back.view()))
}

/// A one-step editor exported as a single ONNX graph (`kind = "editor"` bundles).
#[derive(Debug)]
pub struct OnnxEditor {
    name: String,
    spec: ImageSpec,
    tokenizer: InstructionTokenizer,
    session: Lazy<ModelSession>,
    image_input: String,
    ids_input: String,
    mask_input: String,
    output: String,
    max_batch: usize,
}

impl OnnxEditor {
    /// Opens an editor bundle; its graph is loaded and checked against the manifest on first
    /// use (or by [`Editor::prepare`]).
    pub fn load(bundle: &Bundle, options: &RuntimeOptions) -> Result<Self> {
        bundle.expect_kind(BundleKind::Editor, "--editor")?;
        let m = bundle.manifest();
        let sec = m.editor.as_ref().ok_or_else(|| Error::InvalidInput("editor section missing".into()))?;
        let spec = bundle.image_spec("an editor bundle")?.clone();
        let (h, w) = (i64::from(spec.height), i64::from(spec.width));
        let l = m.tokenizer.max_length as i64;
        let image_dims = [Dim::Any, Dim::Fixed(3), Dim::Fixed(h), Dim::Fixed(w)];
        let token_dims = [Dim::Any, Dim::Fixed(l)];
        let inputs = [
            TensorContract::float("editor.image_input", &sec.image_input, &image_dims),
            TensorContract::ids("editor.ids_input", &sec.ids_input, &token_dims),
            TensorContract::ids("editor.mask_input", &sec.mask_input, &token_dims),
        ];
        let outputs = [TensorContract::float("editor.output", &sec.output, &image_dims)];
        let tokenizer = InstructionTokenizer::from_bundle(bundle)?;
        let session =
            ModelSession::deferred(bundle.dir(), &bundle.file(&sec.file), inputs.into(), outputs.into(), options);
        Ok(OnnxEditor {
            name: m.name.clone(),
            spec,
            tokenizer,
            session,
            image_input: sec.image_input.clone(),
            ids_input: sec.ids_input.clone(),
            mask_input: sec.mask_input.clone(),
            output: sec.output.clone(),
            max_batch: 32,
        })
    }

    /// Caps how many images go through the graph in one call (memory bound); default 32.
    pub fn with_max_batch(mut self, max_batch: usize) -> Self {
        self.max_batch = max_batch.max(1);
        self
    }

    /// The graph's real signature, for listings (loads the graph).
    pub fn signature(&self) -> Result<&[String]> {
        Ok(self.session.get()?.signature())
    }

    /// The tokenizer the editor uses.
    pub fn tokenizer(&self) -> &InstructionTokenizer {
        &self.tokenizer
    }

    fn run_batch(&self, images: ArrayView4<f32>, instructions: &[&str]) -> Result<Array4<f32>> {
        let pixels = imaging::normalize(images, &self.spec);
        let enc = self.tokenizer.encode(instructions)?;
        let s = self.session.get()?;
        let inputs = ort::inputs![
            self.image_input.as_str() => s.float_input(&self.image_input, &pixels)?,
            self.ids_input.as_str() => s.ids_input(&self.ids_input, &enc.input_ids)?,
            self.mask_input.as_str() => s.ids_input(&self.mask_input, &enc.attention_mask)?,
        ];
        let want = ndarray::Dim(pixels.dim());
        let out = s.run(inputs, |outputs| read_f32(outputs, &self.output, want))?;
        Ok(imaging::denormalize_range(out, &self.spec))
    }
}

impl Editor for OnnxEditor {
    fn name(&self) -> &str {
        &self.name
    }

    fn size(&self) -> (u32, u32) {
        (self.spec.height, self.spec.width)
    }

    fn check_instruction(&self, instruction: &str) -> Result<()> {
        self.tokenizer.encode(&[instruction])?;
        Ok(())
    }

    fn prepare(&self) -> Result<()> {
        self.session.get().map(|_| ())
    }

    fn edit(&self, images: ArrayView4<f32>, instructions: &[&str]) -> Result<Array4<f32>> {
        check_batch(self, images.dim(), instructions.len())?;
        let (b, c, h, w) = images.dim();
        if b == 0 {
            return Ok(Array4::zeros((0, c, h, w)));
        }
        if b <= self.max_batch {
            return self.run_batch(images, instructions);
        }
        let mut out = Array4::zeros((b, c, h, w));
        for start in (0..b).step_by(self.max_batch) {
            let end = (start + self.max_batch).min(b);
            let edited = self.run_batch(images.slice(s![start..end, .., .., ..]), &instructions[start..end])?;
            out.slice_mut(s![start..end, .., .., ..]).assign(&edited);
        }
        Ok(out)
    }
}
