//! InstructPix2Pix from its diffusers ONNX export: CLIP text encoder, VAE encoder, an 8-channel
//! UNet driven by the Euler ancestral sampler with three-branch classifier-free guidance, and
//! the VAE decoder — diffusers' `StableDiffusionInstructPix2PixPipeline`, batched for gSMILE.
//!
//! gSMILE edits one image with many perturbed instructions, so the image latents are computed
//! once, every step runs the UNet on all samples × 3 guidance branches in batches under a
//! row cap, and all samples share the same seeded noise: a sample's edit depends only on its
//! instruction, not on which batch it landed in.

// Errors here carry the paths, fields and fixes a user needs; they are returned on cold
// load paths only, so their size does not matter.
#![allow(clippy::result_large_err)]

use std::path::{Path, PathBuf};

use ndarray::{Array2, Array3, Array4, ArrayView3, ArrayView4, Axis, s};
use rand::SeedableRng;
use rand_distr::{Distribution, StandardNormal};
use serde::Deserialize;

use super::Editor;
use super::scheduler::{EulerAncestral, Scheduler, SchedulerConfig};
use crate::bundle::{Bundle, BundleError, BundleKind};
use crate::runtime::{Dim, Lazy, ModelSession, RuntimeOptions, TensorContract, read_f32_dyn};
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

/// Optional overrides of a bundle's default settings, as the command line gives them.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Pix2PixOverrides {
    /// Denoising steps.
    pub steps: Option<usize>,
    /// Text guidance scale.
    pub guidance_scale: Option<f32>,
    /// Image guidance scale.
    pub image_guidance_scale: Option<f32>,
    /// Noise seed.
    pub seed: Option<u64>,
    /// Working height.
    pub height: Option<u32>,
    /// Working width.
    pub width: Option<u32>,
}

/// The initial latents and per-step noise of a run; the leading axis is 1 (shared by all samples) or the batch size.
#[derive(Debug, Clone)]
pub struct NoisePlan {
    /// Standard normal initial latents `[1|B, C, h, w]`, before scaling by the scheduler's `init_noise_sigma`.
    pub initial: Array4<f32>,
    /// Standard normal noise added at each step, `[1|B, C, h, w]` each.
    pub steps: Vec<Array4<f32>>,
}

impl NoisePlan {
    /// Seeded standard normal noise for `steps` steps of latents `[1, c, h, w]` (ChaCha8, so it is the same on every machine).
    pub fn seeded(seed: u64, steps: usize, c: usize, h: usize, w: usize) -> Self {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let mut draw = || Array4::from_shape_simple_fn((1, c, h, w), || StandardNormal.sample(&mut rng));
        let initial = draw();
        let steps = (0..steps).map(|_| draw()).collect();
        NoisePlan { initial, steps }
    }
}

#[derive(Debug, Deserialize)]
struct VaeConfig {
    #[serde(default = "default_scaling")]
    scaling_factor: f32,
    #[serde(default = "default_vae_blocks")]
    block_out_channels: Vec<usize>,
    #[serde(default = "default_latent_channels")]
    latent_channels: usize,
}

fn default_scaling() -> f32 {
    0.18215
}
fn default_latent_channels() -> usize {
    4
}
/// Stable Diffusion's VAE: four blocks, a downsampling factor of 8 (diffusers' default when the config is silent).
fn default_vae_blocks() -> Vec<usize> {
    vec![128, 256, 512, 512]
}

#[derive(Debug, Deserialize)]
struct UnetConfig {
    #[serde(default)]
    sample_size: Option<u32>,
    #[serde(default)]
    block_out_channels: Vec<usize>,
}

/// `2^(blocks − 1)`, the downsampling of a diffusers encoder with `blocks` resolution levels, if sane.
fn downsampling(blocks: usize) -> Option<u32> {
    (1..=8).contains(&blocks).then(|| 1u32 << (blocks - 1))
}

/// An InstructPix2Pix pipeline loaded from a `kind = "instruct-pix2pix"` bundle (diffusers ONNX layout).
#[derive(Debug)]
pub struct InstructPix2Pix {
    name: String,
    tokenizer: InstructionTokenizer,
    /// The four graphs, loaded and checked on first use: a re-run served from the cache never loads them.
    graphs: Lazy<Graphs>,
    scheduler: SchedulerConfig,
    scaling_factor: f32,
    latent_channels: usize,
    vae_factor: u32,
    settings: Pix2PixSettings,
    max_batch: usize,
}

/// The pipeline's ONNX graphs and the tensor names read from their signatures.
#[derive(Debug)]
struct Graphs {
    text_encoder: ModelSession,
    unet: ModelSession,
    vae_encoder: ModelSession,
    vae_decoder: ModelSession,
    vae_encoder_output: String,
    text_output: String,
    text_mask: Option<String>,
}

/// What loading the graphs needs from the bundle's configs.
struct GraphSpec {
    dir: PathBuf,
    options: RuntimeOptions,
    latent_channels: usize,
    max_length: usize,
    /// Side of the probe image of the VAE-encoder check: the smallest size the pipeline takes.
    probe_size: u32,
    vae_factor: u32,
}

fn read_json<T: for<'de> Deserialize<'de>>(bundle: &Bundle, rel: &str) -> std::result::Result<Option<T>, BundleError> {
    let path = bundle.dir().join(rel);
    if !path.is_file() {
        return Ok(None);
    }
    let text = std::fs::read_to_string(&path)
        .map_err(|e| BundleError::Manifest { path: path.clone(), message: e.to_string() })?;
    serde_json::from_str(&text)
        .map(Some)
        .map_err(|e| BundleError::Manifest { path, message: format!("not a diffusers config: {e}") })
}

impl InstructPix2Pix {
    /// Opens the pipeline: reads and checks its configs and applies `overrides` to the bundle's
    /// defaults. The graphs load, and are checked, on first use (or by [`Editor::prepare`]).
    pub fn load(bundle: &Bundle, options: &RuntimeOptions, overrides: Pix2PixOverrides) -> Result<Self> {
        bundle.expect_kind(BundleKind::InstructPix2Pix, "--editor")?;
        let dir = bundle.dir();
        let m = bundle.manifest();
        let field = |rel: &str, field: &str, message: String| {
            Error::from(BundleError::Field { path: dir.join(rel), field: field.to_string(), message })
        };
        let vae_rel = if dir.join("vae_decoder/config.json").is_file() {
            "vae_decoder/config.json"
        } else {
            "vae_encoder/config.json"
        };
        let vae: VaeConfig = read_json(bundle, vae_rel)?.unwrap_or(VaeConfig {
            scaling_factor: default_scaling(),
            block_out_channels: default_vae_blocks(),
            latent_channels: default_latent_channels(),
        });
        let vae_factor = downsampling(vae.block_out_channels.len()).ok_or_else(|| {
            field(vae_rel, "block_out_channels", "must list 1 to 8 blocks (Stable Diffusion's VAE has 4)".into())
        })?;
        if !(vae.scaling_factor.is_finite() && vae.scaling_factor > 0.0) {
            return Err(field(
                vae_rel,
                "scaling_factor",
                format!("is {}, but must be a positive number (Stable Diffusion: 0.18215)", vae.scaling_factor),
            ));
        }
        if !(1..=64).contains(&vae.latent_channels) {
            return Err(field(
                vae_rel,
                "latent_channels",
                format!("is {}, expected 1 to 64 (Stable Diffusion: 4)", vae.latent_channels),
            ));
        }
        let unet_config: Option<UnetConfig> = read_json(bundle, "unet/config.json")?;
        let unet_factor = match unet_config.as_ref().map(|u| u.block_out_channels.len()) {
            None | Some(0) => 8,
            Some(n) => downsampling(n)
                .ok_or_else(|| field("unet/config.json", "block_out_channels", "must list 1 to 8 blocks".into()))?,
        };
        // The UNet halves its input at every level but the last, so sizes must divide by both factors.
        let multiple = vae_factor * unet_factor;
        let default_size = match unet_config.as_ref().and_then(|u| u.sample_size) {
            Some(s) => s.checked_mul(vae_factor).filter(|&px| px <= 16_384).ok_or_else(|| {
                field("unet/config.json", "sample_size", format!("{s} latents is not a usable image size"))
            })?,
            None => 512,
        };
        let scheduler = SchedulerConfig::from_file(&dir.join("scheduler/scheduler_config.json"))?;
        let defaults = m.pix2pix.clone().unwrap_or_default();
        let settings = Pix2PixSettings {
            steps: overrides.steps.or(defaults.steps).unwrap_or(20),
            guidance_scale: overrides.guidance_scale.or(defaults.guidance_scale).unwrap_or(7.5),
            image_guidance_scale: overrides.image_guidance_scale.or(defaults.image_guidance_scale).unwrap_or(1.5),
            seed: overrides.seed.unwrap_or(0),
            height: overrides.height.or(defaults.height).unwrap_or(default_size),
            width: overrides.width.or(defaults.width).unwrap_or(default_size),
        };
        check_settings(&settings, multiple, scheduler.num_train_timesteps)?;

        let tokenizer = InstructionTokenizer::load(dir, &bundle.file(&m.tokenizer.file), m.tokenizer.max_length)?;
        let spec = GraphSpec {
            dir: dir.to_path_buf(),
            options: *options,
            latent_channels: vae.latent_channels,
            max_length: m.tokenizer.max_length,
            probe_size: multiple,
            vae_factor,
        };
        Ok(InstructPix2Pix {
            name: m.name.clone(),
            tokenizer,
            graphs: Lazy::new(dir.join("unet/model.onnx"), move || load_graphs(&spec)),
            scheduler,
            scaling_factor: vae.scaling_factor,
            latent_channels: vae.latent_channels,
            vae_factor,
            settings,
            max_batch: 24,
        })
    }

    /// The graphs, loaded and checked now if this is their first use.
    fn graphs(&self) -> Result<&Graphs> {
        self.graphs.get()
    }

    /// Caps the rows of one UNet call (samples × guidance branches); default 24.
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

    /// The sampler for the configured number of steps.
    pub fn scheduler(&self) -> EulerAncestral {
        self.scheduler.euler_ancestral(self.settings.steps)
    }

    /// Latent shape `(channels, height, width)` at the working size.
    pub fn latent_shape(&self) -> (usize, usize, usize) {
        let f = self.vae_factor;
        (self.latent_channels, (self.settings.height / f) as usize, (self.settings.width / f) as usize)
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
        encode_latents(self.graphs()?, images, self.latent_channels, rows, self.vae_factor)
    }

    /// Decodes latents `[B, C, h, w]` into images `[B,3,H,W]` in `[0,1]`.
    pub fn decode(&self, latents: ArrayView4<f32>) -> Result<Array4<f32>> {
        let (b, _, h, w) = latents.dim();
        let f = self.vae_factor as usize;
        let mut out = Array4::zeros((b, 3, h * f, w * f));
        let s = &self.graphs()?.vae_decoder;
        let rows = (self.max_batch / 3).max(1);
        for start in (0..b).step_by(rows) {
            let end = (start + rows).min(b);
            let scaled = latents.slice(s![start..end, .., .., ..]).mapv(|x| x / self.scaling_factor);
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

    /// Runs the denoising loop for `B` prompts and returns the final latents `[B, C, h, w]`.
    ///
    /// `image_latents` is `[1|B, C, h, w]`, `prompt_embeds` `[B, L, D]`, `uncond` the embedding
    /// of the empty prompt `[L, D]`. Per step, rows are (text+image, image only, unconditional)
    /// per sample, combined as diffusers does:
    /// `uncond + g_text * (text - image) + g_image * (image - uncond)`.
    pub fn denoise<'a>(
        &self,
        image_latents: ArrayView4<f32>,
        prompt_embeds: ArrayView3<'a, f32>,
        uncond: ndarray::ArrayView2<'a, f32>,
        noise: &NoisePlan,
        mut on_step: impl FnMut(usize),
    ) -> Result<Array4<f32>> {
        let b = prompt_embeds.dim().0;
        let (ib, c, h, w) = image_latents.dim();
        let (l, d) = uncond.dim();
        if (ib != 1 && ib != b) || prompt_embeds.dim() != (b, l, d) {
            return Err(Error::InvalidInput(format!(
                "denoise: image latents {:?}, prompt embeddings {:?} and unconditional embedding {:?} do not fit together",
                image_latents.dim(),
                prompt_embeds.dim(),
                uncond.dim()
            )));
        }
        let scheduler = self.scheduler();
        if noise.steps.len() < scheduler.timesteps().len() {
            return Err(Error::InvalidInput(format!(
                "noise plan has {} steps, the sampler {}",
                noise.steps.len(),
                scheduler.timesteps().len()
            )));
        }
        let initial = noise.initial.broadcast((b, c, h, w)).ok_or_else(|| {
            Error::InvalidInput(format!(
                "initial noise {:?} does not fit latents [{b}, {c}, {h}, {w}]",
                noise.initial.dim()
            ))
        })?;
        if let Some(k) = noise.steps.iter().position(|n| n.broadcast((b, c, h, w)).is_none()) {
            return Err(Error::InvalidInput(format!(
                "step {k} noise {:?} does not fit latents [{b}, {c}, {h}, {w}]",
                noise.steps[k].dim()
            )));
        }
        let sigma0 = scheduler.init_noise_sigma();
        let mut latents = initial.mapv(|x| x * sigma0);
        let branches = if self.settings.guided() { 3 } else { 1 };
        let rows = b * branches;
        // The batch split, the text half of every row and the image-latent half of the UNet
        // input are the same at every step: build them once, refresh only the latents.
        let mut chunks = Vec::new();
        for start in (0..rows).step_by(self.max_batch) {
            let end = (start + self.max_batch).min(rows);
            let mut sample = Array4::<f32>::zeros((end - start, 2 * c, h, w));
            let mut states = Array3::<f32>::zeros((end - start, l, d));
            for r in start..end {
                let (i, branch) = (r / branches, r % branches);
                // Branch 2 is unconditional on the image too: its image latents stay zero.
                if branch != 2 {
                    let image = image_latents.index_axis(Axis(0), if ib == 1 { 0 } else { i });
                    sample.slice_mut(s![r - start, c.., .., ..]).assign(&image);
                }
                let text = if branch == 0 { prompt_embeds.index_axis_move(Axis(0), i) } else { uncond };
                states.index_axis_mut(Axis(0), r - start).assign(&text);
            }
            let states = self.graphs()?.unet.float_value("encoder_hidden_states", &states)?;
            chunks.push((start, end, sample, states));
        }
        for (k, &t) in scheduler.timesteps().iter().enumerate() {
            let scaled = scheduler.scale_model_input(latents.view(), k);
            let mut pred = Array4::<f32>::zeros((rows, c, h, w));
            for (start, end, sample, states) in &mut chunks {
                for r in *start..*end {
                    sample.slice_mut(s![r - *start, ..c, .., ..]).assign(&scaled.index_axis(Axis(0), r / branches));
                }
                self.unet_call(sample, t, states, pred.slice_mut(s![*start..*end, .., .., ..]))?;
            }
            let guided = if branches == 3 {
                let (gt, gi) = (self.settings.guidance_scale, self.settings.image_guidance_scale);
                let mut out = Array4::<f32>::zeros((b, c, h, w));
                for i in 0..b {
                    let (text, image, none) = (
                        pred.index_axis(Axis(0), 3 * i),
                        pred.index_axis(Axis(0), 3 * i + 1),
                        pred.index_axis(Axis(0), 3 * i + 2),
                    );
                    ndarray::Zip::from(out.index_axis_mut(Axis(0), i)).and(&text).and(&image).and(&none).for_each(
                        |o, &t, &im, &u| {
                            *o = u + gt * (t - im) + gi * (im - u);
                        },
                    );
                }
                out
            } else {
                pred
            };
            latents = scheduler.step(guided.view(), k, latents.view(), noise.steps[k].view());
            on_step(k);
        }
        Ok(latents)
    }

    /// One UNet call on `sample` rows at timestep `t`, writing the predicted noise into `out`.
    fn unet_call(
        &self,
        sample: &Array4<f32>,
        t: f32,
        states: &ort::value::DynValue,
        mut out: ndarray::ArrayViewMut4<f32>,
    ) -> Result<()> {
        let s = &self.graphs()?.unet;
        let n = sample.dim().0;
        // A graph that fixes the timestep's length at 1 broadcasts it; otherwise one per row.
        let count = if s.declared_shape("timestep") == Some(&[1]) { 1 } else { n };
        let shape = vec![count as i64];
        let timestep: ort::session::SessionInputValue<'_> = match s.element_type("timestep") {
            // diffusers' ONNX pipelines cast with numpy, which truncates.
            Some(ort::value::TensorElementType::Int64) => {
                ort::value::Tensor::from_array((shape, vec![t as i64; count])).map_err(|e| s.error(e))?.into()
            }
            Some(ort::value::TensorElementType::Float16) => {
                ort::value::Tensor::from_array((shape, vec![half::f16::from_f32(t); count]))
                    .map_err(|e| s.error(e))?
                    .into()
            }
            _ => ort::value::Tensor::from_array((shape, vec![t; count])).map_err(|e| s.error(e))?.into(),
        };
        let inputs = ort::inputs![
            "sample" => s.float_input("sample", sample)?,
            "timestep" => timestep,
            "encoder_hidden_states" => states,
        ];
        let want = out.dim();
        s.run(inputs, |o| {
            let (shape, data) = read_f32_dyn(o, "out_sample")?;
            if shape != [want.0, want.1, want.2, want.3] {
                return Err(format!("`out_sample` has shape {shape:?}, expected {want:?}"));
            }
            out.iter_mut().zip(data).for_each(|(o, v)| *o = v);
            Ok(())
        })?;
        Ok(())
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

    fn prepare(&self) -> Result<()> {
        self.graphs().map(|_| ())
    }

    fn edit(&self, images: ArrayView4<f32>, instructions: &[&str]) -> Result<Array4<f32>> {
        super::check_batch(self, images.dim(), instructions.len())?;
        let latents = self.encode_images(images)?;
        self.edit_latents(latents.view(), instructions)
    }

    /// Shares the image latents across all instructions; batching follows the pipeline's own
    /// UNet row cap ([`InstructPix2Pix::with_max_batch`]), so `_max_batch` is not used here.
    fn edit_shared(&self, image: ArrayView3<f32>, instructions: &[&str], _max_batch: usize) -> Result<Array4<f32>> {
        let (c, h, w) = image.dim();
        super::check_batch(self, (1, c, h, w), 1)?;
        let latents = self.encode_images(image.insert_axis(Axis(0)))?;
        self.edit_latents(latents.view(), instructions)
    }
}

/// Loads the pipeline's four graphs and checks them: contracts, the text encoder's length
/// against the tokenizer, the UNet's timestep shape, and a VAE encoder that returns the mode.
fn load_graphs(spec: &GraphSpec) -> Result<Graphs> {
    let dir = spec.dir.as_path();
    let field = |rel: &str, field: &str, message: String| {
        Error::from(BundleError::Field { path: dir.join(rel), field: field.to_string(), message })
    };
    let c = spec.latent_channels as i64;
    let l = spec.max_length as i64;
    let any4 = [Dim::Any, Dim::Any, Dim::Any, Dim::Any];
    let session = |rel: &str, inputs: &[TensorContract], outputs: &[TensorContract]| {
        ModelSession::load(dir, &dir.join(rel), inputs, outputs, &spec.options)
    };
    let text_encoder = session(
        "text_encoder/model.onnx",
        &[TensorContract::ids("text_encoder.input_ids", "input_ids", &[Dim::Any, Dim::Any])],
        &[],
    )?;
    if let Some(&[_, n]) = text_encoder.declared_shape("input_ids")
        && n > 0
        && n != l
    {
        return Err(field(
            "tokenizer/tokenizer_config.json",
            "model_max_length",
            format!("is {l}, but text_encoder/model.onnx takes {n} tokens. Fix: set model_max_length to {n}"),
        ));
    }
    let text_output = first_output(&text_encoder, "last_hidden_state");
    let text_mask = text_encoder_mask(&text_encoder);
    let unet = session(
        "unet/model.onnx",
        &[
            TensorContract::float("unet.sample", "sample", &[Dim::Any, Dim::Fixed(2 * c), Dim::Any, Dim::Any]),
            TensorContract::float("unet.timestep", "timestep", &[Dim::Any]).or(ort::value::TensorElementType::Int64),
            TensorContract::float(
                "unet.encoder_hidden_states",
                "encoder_hidden_states",
                &[Dim::Any, Dim::Fixed(l), Dim::Any],
            ),
        ],
        &[TensorContract::float("unet.out_sample", "out_sample", &[Dim::Any, Dim::Fixed(c), Dim::Any, Dim::Any])],
    )?;
    if let Some(&[n]) = unet.declared_shape("timestep")
        && n > 1
    {
        return Err(field(
            "unet/model.onnx",
            "timestep",
            format!(
                "has a fixed length {n}; gsmile feeds one timestep per row or a single one. Fix: re-export the UNet with a dynamic or length-1 timestep"
            ),
        ));
    }
    let vae_encoder =
        session("vae_encoder/model.onnx", &[TensorContract::float("vae_encoder.sample", "sample", &any4)], &[])?;
    let vae_encoder_output = first_output(&vae_encoder, "latent_sample");
    let vae_decoder = session(
        "vae_decoder/model.onnx",
        &[TensorContract::float(
            "vae_decoder.latent_sample",
            "latent_sample",
            &[Dim::Any, Dim::Fixed(c), Dim::Any, Dim::Any],
        )],
        &[TensorContract::float("vae_decoder.sample", "sample", &[Dim::Any, Dim::Fixed(3), Dim::Any, Dim::Any])],
    )?;
    let graphs = Graphs { text_encoder, unet, vae_encoder, vae_decoder, vae_encoder_output, text_output, text_mask };
    check_deterministic_encoder(&graphs, spec)?;
    Ok(graphs)
}

/// Image latents of `images` through `g`'s VAE encoder, `rows` images per call (see [`InstructPix2Pix::encode_images`]).
fn encode_latents(g: &Graphs, images: ArrayView4<f32>, c: usize, rows: usize, vae_factor: u32) -> Result<Array4<f32>> {
    let s = &g.vae_encoder;
    let mut parts = Vec::new();
    for start in (0..images.dim().0).step_by(rows) {
        let end = (start + rows).min(images.dim().0);
        let pixels = images.slice(s![start..end, .., .., ..]).mapv(|x| 2.0 * x - 1.0);
        let inputs = ort::inputs!["sample" => s.float_input("sample", &pixels)?];
        let (shape, data) = s.run(inputs, |o| read_f32_dyn(o, &g.vae_encoder_output))?;
        if shape.len() != 4 || shape[0] != end - start || !(shape[1] == c || shape[1] == 2 * c) {
            return Err(s
                .error(format!(
                    "`{}` has shape {shape:?}, expected [{}, {c} or {}, h, w]",
                    g.vae_encoder_output,
                    end - start,
                    2 * c
                ))
                .into());
        }
        let all = Array4::from_shape_vec((shape[0], shape[1], shape[2], shape[3]), data).map_err(|e| s.error(e))?;
        // A `latent_parameters` output holds mean and log-variance; the mode is the mean.
        parts.push(all.slice_move(s![.., ..c, .., ..]));
    }
    let views: Vec<_> = parts.iter().map(|p| p.view()).collect();
    if views.is_empty() {
        let (_, _, h, w) = images.dim();
        let f = vae_factor as usize;
        return Ok(Array4::zeros((0, c, h / f, w / f)));
    }
    Ok(ndarray::concatenate(Axis(0), &views).map_err(|e| s.error(e))?)
}

/// Refuses VAE encoders that sample the latent distribution (older optimum exports put a
/// `RandomNormalLike` node there): InstructPix2Pix conditions on the mode, and random image
/// latents would make every edit differ from run to run.
fn check_deterministic_encoder(g: &Graphs, spec: &GraphSpec) -> Result<()> {
    let size = spec.probe_size as usize;
    let probe = Array4::from_shape_fn((1, 3, size, size), |(_, c, y, x)| ((c * 7 + y * 3 + x) % 11) as f32 / 10.0);
    let encode = || encode_latents(g, probe.view(), spec.latent_channels, 1, spec.vae_factor);
    let (a, b) = (encode()?, encode()?);
    if a != b {
        return Err(BundleError::Graph {
            bundle: g.vae_encoder.file().parent().and_then(Path::parent).map(Path::to_path_buf).unwrap_or_default(),
            file: g.vae_encoder.file().to_path_buf(),
            message: "gives different latents for the same image: it samples the latent distribution instead of returning its mode. Fix: re-export with onnx/export_ip2p.py, or with an optimum version whose vae_encoder returns `latent_parameters`".into(),
        }
        .into());
    }
    Ok(())
}

fn check_settings(s: &Pix2PixSettings, multiple: u32, train_steps: usize) -> Result<()> {
    let from = "(the command line, or `[pix2pix]` in the bundle's bundle.toml)";
    if s.steps == 0 || s.steps > train_steps {
        return Err(Error::InvalidInput(format!(
            "{} denoising steps {from}: the sampler takes 1 to {train_steps} (the scheduler's num_train_timesteps). Fix: pass e.g. --steps 20",
            s.steps
        )));
    }
    if !(s.guidance_scale.is_finite() && s.image_guidance_scale.is_finite()) {
        return Err(Error::InvalidInput(format!(
            "guidance scales {} and {} {from} must be finite numbers. Fix: pass e.g. --guidance-scale 7.5 --image-guidance-scale 1.5",
            s.guidance_scale, s.image_guidance_scale
        )));
    }
    if s.height == 0
        || s.width == 0
        || !s.height.is_multiple_of(multiple)
        || !s.width.is_multiple_of(multiple)
        || s.height.max(s.width) > 16_384
    {
        return Err(Error::InvalidInput(format!(
            "working size {}x{} {from} must be positive multiples of {multiple} (the VAE's and the UNet's downsampling), at most 16384. Fix: pass --size as a multiple of {multiple}, e.g. --size {}",
            s.width,
            s.height,
            (s.width.max(multiple) / multiple * multiple).min(16_384 / multiple * multiple)
        )));
    }
    Ok(())
}

/// The graph's output named `preferred`, else its first output.
fn first_output(session: &ModelSession, preferred: &str) -> String {
    let names = session.output_names();
    if names.iter().any(|n| n == preferred) {
        preferred.to_string()
    } else {
        names.first().cloned().unwrap_or_else(|| preferred.to_string())
    }
}

/// The text encoder's attention-mask input, when its export has one.
fn text_encoder_mask(session: &ModelSession) -> Option<String> {
    session.element_type("attention_mask").map(|_| "attention_mask".to_string())
}
