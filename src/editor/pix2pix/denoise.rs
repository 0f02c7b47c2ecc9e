//! The denoising loop: every step runs the UNet on all samples × guidance branches in calls
//! under the row cap, combines the branches as diffusers does, and lets the sampler step.

use ndarray::{Array3, Array4, ArrayView3, ArrayView4, Axis, s};
use rand::SeedableRng;
use rand_distr::{Distribution, StandardNormal};

use super::InstructPix2Pix;
use crate::runtime::read_f32_dyn;
use crate::{Error, Result};

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

impl InstructPix2Pix {
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
}
