//! InstructPix2Pix from its diffusers ONNX export: CLIP text encoder, VAE encoder, an 8-channel
//! UNet driven by the sampler its scheduler config names (Euler ancestral) with three-branch
//! classifier-free guidance, and the VAE decoder — diffusers'
//! `StableDiffusionInstructPix2PixPipeline`, batched for gSMILE.
//!
//! This file opens the pipeline and runs its stages; `graphs.rs` reads the component configs
//! and loads and checks the four graphs; `denoise.rs` holds the denoising loop.
//!
//! gSMILE edits one image with many perturbed instructions, so the image latents are computed
//! once, every step runs the UNet on all samples × 3 guidance branches in batches under a
//! row cap, and all samples share the same seeded noise: a sample's edit depends only on its
//! instruction, not on which batch it landed in.

// Errors here carry the paths, fields and fixes a user needs; they are returned on cold
// load paths only, so their size does not matter.
#![allow(clippy::result_large_err)]

mod denoise;
mod graphs;

use std::path::Path;

use ndarray::{Array2, Array3, Array4, ArrayView3, ArrayView4, Axis, s};

pub use self::denoise::NoisePlan;
use self::graphs::{GraphSpec, Graphs, Layout, encode_latents, load_graphs, read_layout};
use super::Editor;
use super::scheduler::{self, Scheduler, SchedulerConfig};
use crate::bundle::{Bundle, BundleKind, Description, DiffusionSettings};
use crate::error::ConfigError;
use crate::runtime::{Lazy, RuntimeOptions, read_f32_dyn};
use crate::tokenizer::InstructionTokenizer;
use crate::{Error, Result};

/// Sampling settings of one InstructPix2Pix run; they change outputs, so they enter cache keys.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Pix2PixSettings {
    /// Denoising steps.
    pub steps: usize,
    /// Text guidance scale (diffusers' `guidance_scale`).
    pub guidance_scale: f32,
    /// Image guidance scale (diffusers' `image_guidance_scale`).
    pub image_guidance_scale: f32,
    /// Seed of the initial latents and of every step's noise.
    pub seed: u64,
    /// Working height in pixels.
    pub height: u32,
    /// Working width in pixels.
    pub width: u32,
}

impl Pix2PixSettings {
    /// Whether the three-branch guidance runs (diffusers: `guidance_scale > 1 and image_guidance_scale >= 1`).
    pub fn guided(&self) -> bool {
        self.guidance_scale > 1.0 && self.image_guidance_scale >= 1.0
    }
}

/// An InstructPix2Pix pipeline loaded from a `kind = "instruct-pix2pix"` bundle (diffusers ONNX layout).
#[derive(Debug)]
pub struct InstructPix2Pix {
    name: String,
    tokenizer: InstructionTokenizer,
    /// The four graphs, loaded and checked on first use: a re-run served from the cache never loads them.
    graphs: Lazy<Graphs>,
    /// The sampler the scheduler config names, for the configured number of steps.
    scheduler: Box<dyn Scheduler>,
    layout: Layout,
    settings: Pix2PixSettings,
    max_batch: usize,
}

impl InstructPix2Pix {
    /// Opens the pipeline: reads and checks its configs and layers `overrides` over the bundle's
    /// defaults (`[pix2pix]`). The graphs load, and are checked, on first use (or by [`Editor::prepare`]).
    pub fn load(bundle: &Bundle, options: &RuntimeOptions, overrides: DiffusionSettings) -> Result<Self> {
        bundle.expect_kind(BundleKind::InstructPix2Pix, "--editor")?;
        let dir = bundle.dir();
        let m = bundle.manifest();
        let layout = read_layout(bundle)?;
        let scheduler_config = SchedulerConfig::from_file(&dir.join("scheduler/scheduler_config.json"))?;
        let given = overrides.or(m.pix2pix.unwrap_or_default());
        let size = given.size.unwrap_or_default();
        let settings = Pix2PixSettings {
            steps: given.steps.unwrap_or(20),
            guidance_scale: given.guidance_scale.unwrap_or(7.5),
            image_guidance_scale: given.image_guidance_scale.unwrap_or(1.5),
            seed: given.seed.unwrap_or(0),
            height: size.height.unwrap_or(layout.default_size),
            width: size.width.unwrap_or(layout.default_size),
        };
        check_settings(&settings, layout.multiple, scheduler_config.num_train_timesteps)?;
        let scheduler = scheduler::build(&scheduler_config, settings.steps)?;

        let spec = bundle.tokenizer_spec()?;
        let tokenizer = InstructionTokenizer::load(dir, &bundle.file(&spec.file), spec.max_length)?;
        let spec = GraphSpec {
            dir: dir.to_path_buf(),
            options: *options,
            latent_channels: layout.latent_channels,
            max_length: spec.max_length,
            probe_size: layout.multiple,
            vae_factor: layout.vae_factor,
        };
        Ok(InstructPix2Pix {
            name: m.name.clone(),
            tokenizer,
            graphs: Lazy::new(dir.join("unet/model.onnx"), move || load_graphs(&spec)),
            scheduler,
            layout,
            settings,
            max_batch: 24,
        })
    }

    /// The graphs, loaded and checked now if this is their first use.
    fn graphs(&self) -> Result<&Graphs> {
        self.graphs.get()
    }

    /// Caps the rows of one UNet call (samples × guidance branches); default 24. The text
    /// encoder takes at most as many prompts per call, the VAE a third as many images. These
    /// caps bound one graph call's memory; how many instructions one edit takes is the
    /// caller's choice ([`super::edit_in_batches`]).
    pub fn with_max_batch(mut self, max_batch: usize) -> Self {
        self.max_batch = max_batch.max(1);
        self
    }

    /// The settings this pipeline runs with.
    pub fn settings(&self) -> &Pix2PixSettings {
        &self.settings
    }

    /// All graphs' real signatures, for listings (loads the graphs).
    pub fn signature(&self) -> Result<Vec<String>> {
        let g = self.graphs()?;
        Ok([&g.text_encoder, &g.unet, &g.vae_encoder, &g.vae_decoder]
            .iter()
            .flat_map(|s| {
                let name = s
                    .file()
                    .parent()
                    .and_then(Path::file_name)
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                s.signature().iter().map(move |line| format!("{name}: {line}"))
            })
            .collect())
    }

    /// The execution provider the UNet runs on (loads the graphs).
    pub fn provider(&self) -> Result<&'static str> {
        Ok(self.graphs()?.unet.provider())
    }

    /// The sampler for the configured number of steps, of the class the scheduler config names.
    pub fn scheduler(&self) -> &dyn Scheduler {
        self.scheduler.as_ref()
    }

    /// Latent shape `(channels, height, width)` at the working size.
    pub fn latent_shape(&self) -> (usize, usize, usize) {
        let f = self.layout.vae_factor;
        (self.layout.latent_channels, (self.settings.height / f) as usize, (self.settings.width / f) as usize)
    }

    /// The seeded noise of this pipeline's settings, one draw per sampler step.
    pub fn noise(&self) -> NoisePlan {
        let (c, h, w) = self.latent_shape();
        NoisePlan::seeded(self.settings.seed, self.scheduler().timesteps().len(), c, h, w)
    }

    /// CLIP text embeddings `[B, L, D]` of the texts, padded as the checkpoint's tokenizer says.
    pub fn encode_prompts(&self, texts: &[&str]) -> Result<Array3<f32>> {
        let enc = self.tokenizer.encode(texts)?;
        let g = self.graphs()?;
        let s = &g.text_encoder;
        let ones = Array2::<i64>::ones(enc.input_ids.dim());
        let mut inputs = ort::inputs!["input_ids" => s.ids_input("input_ids", &enc.input_ids)?];
        if let Some(mask) = &g.text_mask {
            // diffusers calls the text encoder without a mask (every position attends).
            inputs.push((mask.clone().into(), s.ids_input(mask, &ones)?));
        }
        let (shape, data) = s.run(inputs, |o| read_f32_dyn(o, &g.text_output))?;
        if shape.len() != 3 || shape[0] != texts.len() {
            return Err(s
                .error(format!("`{}` has shape {shape:?}, expected [batch, tokens, width]", g.text_output))
                .into());
        }
        Ok(Array3::from_shape_vec((shape[0], shape[1], shape[2]), data).map_err(|e| s.error(e))?)
    }

    /// Image latents `[B, C, h, w]` of `[B,3,H,W]` images in `[0,1]`: the VAE posterior's mode, unscaled, as InstructPix2Pix conditions on.
    pub fn encode_images(&self, images: ArrayView4<f32>) -> Result<Array4<f32>> {
        let rows = (self.max_batch / 3).max(1);
        encode_latents(self.graphs()?, images, self.layout.latent_channels, rows, self.layout.vae_factor)
    }

    /// Decodes latents `[B, C, h, w]` into images `[B,3,H,W]` in `[0,1]`.
    pub fn decode(&self, latents: ArrayView4<f32>) -> Result<Array4<f32>> {
        let (b, _, h, w) = latents.dim();
        let f = self.layout.vae_factor as usize;
        let mut out = Array4::zeros((b, 3, h * f, w * f));
        let s = &self.graphs()?.vae_decoder;
        let rows = (self.max_batch / 3).max(1);
        for start in (0..b).step_by(rows) {
            let end = (start + rows).min(b);
            let scaled = latents.slice(s![start..end, .., .., ..]).mapv(|x| x / self.layout.scaling_factor);
            let inputs = ort::inputs!["latent_sample" => s.float_input("latent_sample", &scaled)?];
            let (shape, data) = s.run(inputs, |o| read_f32_dyn(o, "sample"))?;
            if shape != [end - start, 3, h * f, w * f] {
                return Err(s
                    .error(format!("`sample` has shape {shape:?}, expected [{}, 3, {}, {}]", end - start, h * f, w * f))
                    .into());
            }
            let img = Array4::from_shape_vec((end - start, 3, h * f, w * f), data).map_err(|e| s.error(e))?;
            out.slice_mut(s![start..end, .., .., ..]).assign(&img.mapv(|x| (x * 0.5 + 0.5).clamp(0.0, 1.0)));
        }
        Ok(out)
    }

    /// Edits with precomputed image latents `[1|B, C, h, w]`: encodes the prompts, denoises with the seeded noise, decodes.
    pub fn edit_latents(&self, image_latents: ArrayView4<f32>, instructions: &[&str]) -> Result<Array4<f32>> {
        if instructions.is_empty() {
            return Ok(Array4::zeros((0, 3, self.settings.height as usize, self.settings.width as usize)));
        }
        let mut embeds = Vec::new();
        for chunk in instructions.chunks(self.max_batch) {
            embeds.push(self.encode_prompts(chunk)?);
        }
        let views: Vec<_> = embeds.iter().map(|e| e.view()).collect();
        let embeds = ndarray::concatenate(Axis(0), &views).map_err(|e| Error::InvalidInput(e.to_string()))?;
        let uncond = self.encode_prompts(&[""])?;
        let latents =
            self.denoise(image_latents, embeds.view(), uncond.index_axis(Axis(0), 0), &self.noise(), |_| {})?;
        self.decode(latents.view())
    }
}

impl Editor for InstructPix2Pix {
    fn name(&self) -> &str {
        &self.name
    }

    fn size(&self) -> (u32, u32) {
        (self.settings.height, self.settings.width)
    }

    fn params(&self) -> String {
        serde_json::to_string(&self.settings).unwrap_or_default()
    }

    fn check_instruction(&self, instruction: &str) -> Result<()> {
        self.tokenizer.encode(&[instruction])?;
        Ok(())
    }

    fn unknown_words(&self, words: &[&str]) -> Vec<bool> {
        self.tokenizer.unknown_words(words)
    }

    fn prepare(&self) -> Result<()> {
        self.graphs().map(|_| ())
    }

    fn describe(&self) -> Result<Description> {
        let s = &self.settings;
        Ok(Description {
            image: format!(
                "{}x{}, {} steps, guidance {} / image {}",
                s.width, s.height, s.steps, s.guidance_scale, s.image_guidance_scale
            ),
            signature: self.signature()?,
        })
    }

    fn edit(&self, images: ArrayView4<f32>, instructions: &[&str]) -> Result<Array4<f32>> {
        super::check_batch(self, images.dim(), instructions.len())?;
        let latents = self.encode_images(images)?;
        self.edit_latents(latents.view(), instructions)
    }

    /// Shares the image latents across all instructions; the UNet runs them in calls under the
    /// pipeline's row cap ([`InstructPix2Pix::with_max_batch`]).
    fn edit_shared(&self, image: ArrayView3<f32>, instructions: &[&str]) -> Result<Array4<f32>> {
        let (c, h, w) = image.dim();
        super::check_batch(self, (1, c, h, w), 1)?;
        let latents = self.encode_images(image.insert_axis(Axis(0)))?;
        self.edit_latents(latents.view(), instructions)
    }
}

/// Refuses settings the sampler or the graphs cannot take, naming where they came from.
fn check_settings(s: &Pix2PixSettings, multiple: u32, train_steps: usize) -> Result<()> {
    let from = "(the command line, or `[pix2pix]` in the bundle's bundle.toml)";
    if s.steps == 0 || s.steps > train_steps {
        let message = format!(
            "{} denoising steps {from}: the sampler takes 1 to {train_steps} (the scheduler's num_train_timesteps). Fix: set e.g. `steps = 20`",
            s.steps
        );
        return Err(ConfigError::new("steps", message).into());
    }
    if !(s.guidance_scale.is_finite() && s.image_guidance_scale.is_finite()) {
        let message = format!(
            "guidance scales {} and {} {from} must be finite numbers. Fix: set e.g. `guidance_scale = 7.5` `image_guidance_scale = 1.5`",
            s.guidance_scale, s.image_guidance_scale
        );
        return Err(ConfigError::new("guidance_scale", message).into());
    }
    if s.height == 0
        || s.width == 0
        || !s.height.is_multiple_of(multiple)
        || !s.width.is_multiple_of(multiple)
        || s.height.max(s.width) > 16_384
    {
        let message = format!(
            "working size {}x{} {from} must be positive multiples of {multiple} (the VAE's and the UNet's downsampling), at most 16384. Fix: set `size` to a multiple of {multiple}, e.g. `size = {}`",
            s.width,
            s.height,
            (s.width.max(multiple) / multiple * multiple).min(16_384 / multiple * multiple)
        );
        return Err(ConfigError::new("size", message).into());
    }
    Ok(())
}
