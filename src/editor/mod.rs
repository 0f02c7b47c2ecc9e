//! Instruction-based image editors: the [`Editor`] trait, [`load`] (a bundle's editor, whatever
//! its kind), the one-step ONNX editor, and InstructPix2Pix ([`pix2pix`]).
//!
//! An editor takes a batch of images and one instruction per image and returns the edited
//! images. Images cross this boundary as `[B,3,H,W]` float arrays in `[0,1]` at the
//! editor's own resolution ([`Editor::size`]); [`edit_image`] handles resizing for callers
//! that start from an arbitrary picture. [`edit_in_batches`] is the one place a long list of
//! instructions is split into editor calls of at most `max_batch`.
//!
//! Editors outside gsmile (a worker process, an HTTP endpoint) are [`worker`]'s.
//!
//! Adding an editor kind: a [`BundleKind`] variant, a module implementing [`Editor`] (with
//! [`Editor::describe`] for `gsmile models`), and one arm in [`load`].

pub mod pix2pix;
pub mod scheduler;
pub mod worker;

use image::RgbImage;
use ndarray::{Array4, ArrayView3, ArrayView4, Axis, s};

pub use crate::bundle::DiffusionSettings;
use crate::bundle::{Bundle, BundleKind, Description, ImageSpec};
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
    /// Which of `words` the editor's tokenizer cannot represent (maps to its unknown token);
    /// editors without a tokenizer of their own say none.
    fn unknown_words(&self, words: &[&str]) -> Vec<bool> {
        vec![false; words.len()]
    }
    /// Loads the editor's graphs now, if they load on first use, so a broken model is
    /// reported before long work starts rather than in the middle of it.
    fn prepare(&self) -> Result<()> {
        Ok(())
    }
    /// The most instructions one [`Editor::edit_shared`] call should carry, for editors whose
    /// calls are slow (a worker, an endpoint): callers keep their batches this small so the
    /// cache and the progress bar advance after each round of requests. `None`: no preference.
    fn batch_hint(&self) -> Option<usize> {
        None
    }
    /// Edits `images[i]` with `instructions[i]`; images are `[B,3,H,W]` in `[0,1]` at [`Editor::size`].
    fn edit(&self, images: ArrayView4<f32>, instructions: &[&str]) -> Result<Array4<f32>>;

    /// Edits one image with every instruction, as one batch (the gSMILE workload); long lists
    /// go through [`edit_in_batches`]. Editors that can share work across the instructions
    /// (InstructPix2Pix: the image latents) override it.
    fn edit_shared(&self, image: ArrayView3<f32>, instructions: &[&str]) -> Result<Array4<f32>> {
        let (c, h, w) = image.dim();
        if instructions.is_empty() {
            return Ok(Array4::zeros((0, c, h, w)));
        }
        let batch = image.insert_axis(Axis(0)).broadcast((instructions.len(), c, h, w)).map(|b| b.to_owned());
        let batch = batch.ok_or_else(|| Error::InvalidInput("image must be [3,H,W]".into()))?;
        self.edit(batch.view(), instructions)
    }

    /// What `gsmile models` shows of the loaded editor: how it takes images and its graphs'
    /// signatures (loads the graphs). Editors without graphs of their own show their size.
    fn describe(&self) -> Result<Description> {
        let (h, w) = self.size();
        Ok(Description { image: format!("{h}x{w}"), signature: Vec::new() })
    }
}

/// Edits one image with many instructions in editor calls of at most `max_batch`
/// instructions, handing each edited batch to `done` with the index of its first instruction.
///
/// This is the one place edits are split by `max_batch`, so a caller can cache and report
/// each batch as it finishes. A diffusion editor also caps the UNet rows of its own graph
/// calls, a different quantity ([`pix2pix::InstructPix2Pix::with_max_batch`]).
pub fn edit_in_batches(
    editor: &dyn Editor,
    image: ArrayView3<f32>,
    instructions: &[&str],
    max_batch: usize,
    mut done: impl FnMut(usize, Array4<f32>) -> Result<()>,
) -> Result<()> {
    let step = max_batch.max(1);
    for (k, chunk) in instructions.chunks(step).enumerate() {
        done(k * step, editor.edit_shared(image, chunk)?)?;
    }
    Ok(())
}

/// Edits one image with many instructions through [`edit_in_batches`], into one `[N,3,H,W]` array.
pub fn edit_many(
    editor: &dyn Editor,
    image: ArrayView3<f32>,
    instructions: &[&str],
    max_batch: usize,
) -> Result<Array4<f32>> {
    if instructions.len() <= max_batch.max(1) {
        // One call: its output is the result, with no copy into a second array.
        return editor.edit_shared(image, instructions);
    }
    let (c, h, w) = image.dim();
    let mut out = Array4::zeros((instructions.len(), c, h, w));
    edit_in_batches(editor, image, instructions, max_batch, |start, edited| {
        out.slice_mut(s![start..start + edited.dim().0, .., .., ..]).assign(&edited);
        Ok(())
    })?;
    Ok(out)
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
/// `diffusion` is layered over a diffusion editor's defaults; a one-step editor refuses any
/// setting but the seed. `max_batch` caps the UNet rows of one diffusion graph call (a one-step
/// editor runs each batch it is given in one call; callers split batches with [`edit_in_batches`]).
/// `concurrency` overrides the requests an endpoint may have in flight at once.
pub fn load(
    bundle: &Bundle,
    options: &RuntimeOptions,
    diffusion: DiffusionSettings,
    max_batch: usize,
    concurrency: Option<usize>,
) -> Result<Box<dyn Editor>> {
    match bundle.manifest().kind {
        BundleKind::Editor => {
            if let Some(field) = diffusion.first_field() {
                let message = format!(
                    "`{field}` applies to diffusion editors, but {} is a one-step editor. Fix: drop `{field}`",
                    bundle.dir().display()
                );
                return Err(crate::error::ConfigError::new(field, message).into());
            }
            Ok(Box::new(OnnxEditor::load(bundle, options)?))
        }
        BundleKind::InstructPix2Pix => {
            Ok(Box::new(pix2pix::InstructPix2Pix::load(bundle, options, diffusion)?.with_max_batch(max_batch)))
        }
        BundleKind::Command | BundleKind::Http => worker::load(bundle, diffusion, concurrency),
        BundleKind::Clip | BundleKind::Lpips | BundleKind::Features => Err(bundle
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
        let l = bundle.tokenizer_spec()?.max_length as i64;
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
        })
    }

    /// The graph's real signature, for listings (loads the graph).
    pub fn signature(&self) -> Result<&[String]> {
        Ok(self.session.get()?.signature())
    }

    /// The tokenizer the editor uses.
    pub fn tokenizer(&self) -> &InstructionTokenizer {
        &self.tokenizer
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

    fn unknown_words(&self, words: &[&str]) -> Vec<bool> {
        self.tokenizer.unknown_words(words)
    }

    fn prepare(&self) -> Result<()> {
        self.session.get().map(|_| ())
    }

    /// Runs the whole batch in one graph call.
    fn edit(&self, images: ArrayView4<f32>, instructions: &[&str]) -> Result<Array4<f32>> {
        check_batch(self, images.dim(), instructions.len())?;
        let (b, c, h, w) = images.dim();
        if b == 0 {
            return Ok(Array4::zeros((0, c, h, w)));
        }
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

    fn describe(&self) -> Result<Description> {
        Ok(Description { image: self.spec.summary(), signature: self.signature()?.to_vec() })
    }
}
