//! Diffusion samplers: diffusers' `EulerAncestralDiscreteScheduler`, the default sampler of
//! `StableDiffusionInstructPix2PixPipeline`, configured from a checkpoint's
//! `scheduler/scheduler_config.json`.
//!
//! The arithmetic follows diffusers 0.42 step by step, including where it works in float32
//! and where in float64, so a Rust loop fed the same noise reproduces diffusers' latents.

use std::path::{Path, PathBuf};

use ndarray::{Array4, ArrayView4, Zip};
use serde::Deserialize;

/// A scheduler config gsmile cannot run.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {message}")]
pub struct SchedulerError {
    /// The `scheduler_config.json` file.
    pub path: PathBuf,
    /// What is wrong, with the field and the fix.
    pub message: String,
}

/// How the training noise levels (betas) are spread over the training timesteps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BetaSchedule {
    /// Betas linearly spaced from `beta_start` to `beta_end`.
    Linear,
    /// Linear interpolation of the square root of beta (Stable Diffusion's schedule).
    ScaledLinear,
    /// The cosine schedule of Nichol & Dhariwal (GLIDE), capped at 0.999.
    SquaredcosCapV2,
}

/// What the denoising network predicts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PredictionType {
    /// The noise added to the sample.
    Epsilon,
    /// The velocity `alpha * noise - sigma * sample` (Salimans & Ho, 2022).
    VPrediction,
}

/// How inference timesteps are picked among the training timesteps (Lin et al. 2023, table 2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TimestepSpacing {
    /// Evenly spaced over `[0, T-1]`, fractional values allowed.
    Linspace,
    /// Integer multiples of `T / steps` from 0, shifted by `steps_offset`.
    Leading,
    /// Integer steps counted back from `T`.
    Trailing,
}

fn default_train_timesteps() -> usize {
    1000
}
fn default_beta_start() -> f64 {
    0.0001
}
fn default_beta_end() -> f64 {
    0.02
}
fn default_beta_schedule() -> BetaSchedule {
    BetaSchedule::Linear
}
fn default_prediction() -> PredictionType {
    PredictionType::Epsilon
}
fn default_spacing() -> TimestepSpacing {
    TimestepSpacing::Linspace
}

/// The fields of a diffusers `scheduler_config.json` the Euler ancestral sampler reads; defaults are diffusers'.
#[derive(Debug, Clone, Deserialize)]
pub struct SchedulerConfig {
    /// The diffusers class the checkpoint was saved with.
    #[serde(rename = "_class_name", default)]
    pub class_name: String,
    /// Number of training timesteps `T`.
    #[serde(default = "default_train_timesteps")]
    pub num_train_timesteps: usize,
    /// First beta.
    #[serde(default = "default_beta_start")]
    pub beta_start: f64,
    /// Last beta.
    #[serde(default = "default_beta_end")]
    pub beta_end: f64,
    /// How betas go from `beta_start` to `beta_end`.
    #[serde(default = "default_beta_schedule")]
    pub beta_schedule: BetaSchedule,
    /// Explicit betas, overriding the schedule.
    #[serde(default)]
    pub trained_betas: Option<Vec<f32>>,
    /// What the UNet predicts.
    #[serde(default = "default_prediction")]
    pub prediction_type: PredictionType,
    /// How inference timesteps are chosen.
    #[serde(default = "default_spacing")]
    pub timestep_spacing: TimestepSpacing,
    /// Added to `leading` timesteps.
    #[serde(default)]
    pub steps_offset: usize,
    /// Rescales betas to zero terminal SNR (Lin et al. 2023).
    #[serde(default)]
    pub rescale_betas_zero_snr: bool,
}

/// The scheduler class this module implements.
pub const EULER_ANCESTRAL: &str = "EulerAncestralDiscreteScheduler";

impl SchedulerConfig {
    /// Reads a `scheduler_config.json`; other scheduler classes are refused with the fix.
    pub fn from_file(path: &Path) -> Result<Self, SchedulerError> {
        let err = |message: String| SchedulerError { path: path.to_path_buf(), message };
        let text = std::fs::read_to_string(path).map_err(|e| err(format!("cannot read it: {e}")))?;
        let config: SchedulerConfig =
            serde_json::from_str(&text).map_err(|e| err(format!("not a diffusers scheduler config: {e}")))?;
        if !config.class_name.is_empty() && config.class_name != EULER_ANCESTRAL {
            return Err(err(format!(
                "field `_class_name` is {:?}, but gsmile runs InstructPix2Pix with {EULER_ANCESTRAL} (the pipeline's default). Fix: set `_class_name` to {EULER_ANCESTRAL:?}; the beta schedule is kept",
                config.class_name
            )));
        }
        config.validate().map_err(err)?;
        Ok(config)
    }

    fn validate(&self) -> Result<(), String> {
        if !(2..=100_000).contains(&self.num_train_timesteps) {
            return Err("field `num_train_timesteps` must be between 2 and 100000 (Stable Diffusion: 1000)".into());
        }
        if let Some(b) = &self.trained_betas {
            if b.len() != self.num_train_timesteps || b.iter().any(|x| !(*x > 0.0 && *x < 1.0)) {
                return Err("field `trained_betas` must hold `num_train_timesteps` values in (0, 1)".into());
            }
        } else if self.beta_schedule != BetaSchedule::SquaredcosCapV2
            && !(self.beta_start > 0.0 && self.beta_end < 1.0 && self.beta_start <= self.beta_end)
        {
            return Err("fields `beta_start`/`beta_end` must satisfy 0 < beta_start <= beta_end < 1".into());
        }
        Ok(())
    }

    /// Training betas in float32, as diffusers builds them with `torch.linspace(…, dtype=float32)`.
    fn betas(&self) -> Vec<f32> {
        let n = self.num_train_timesteps;
        if let Some(b) = &self.trained_betas {
            return b.clone();
        }
        match self.beta_schedule {
            BetaSchedule::Linear => linspace_f32(self.beta_start as f32, self.beta_end as f32, n),
            BetaSchedule::ScaledLinear => linspace_f32(self.beta_start.sqrt() as f32, self.beta_end.sqrt() as f32, n)
                .into_iter()
                .map(|b| b * b)
                .collect(),
            BetaSchedule::SquaredcosCapV2 => {
                let alpha_bar = |t: f64| ((t + 0.008) / 1.008 * std::f64::consts::FRAC_PI_2).cos().powi(2);
                (0..n)
                    .map(|i| {
                        let (t1, t2) = (i as f64 / n as f64, (i + 1) as f64 / n as f64);
                        (1.0 - alpha_bar(t2) / alpha_bar(t1)).min(0.999) as f32
                    })
                    .collect()
            }
        }
    }

    /// Cumulative products of `1 - beta` over training timesteps (float32 values, float64 accumulation as torch's CPU `cumprod`).
    fn alphas_cumprod(&self) -> Vec<f32> {
        let mut betas = self.betas();
        if self.rescale_betas_zero_snr {
            betas = rescale_zero_terminal_snr(&betas);
        }
        let mut acc = 1.0f64;
        let mut out: Vec<f32> = betas
            .iter()
            .map(|b| {
                acc *= f64::from(1.0f32 - b);
                acc as f32
            })
            .collect();
        if self.rescale_betas_zero_snr
            && let Some(last) = out.last_mut()
        {
            *last = 2f32.powi(-24);
        }
        out
    }

    /// Builds the Euler ancestral sampler for `steps` inference steps.
    pub fn euler_ancestral(&self, steps: usize) -> EulerAncestral {
        EulerAncestral::new(self, steps)
    }
}

/// `torch.linspace` in float32: the first half counts up from `start`, the second down from `end`.
fn linspace_f32(start: f32, end: f32, n: usize) -> Vec<f32> {
    if n == 1 {
        return vec![start];
    }
    let step = (end - start) / (n - 1) as f32;
    let half = n / 2;
    (0..n).map(|i| if i < half { start + step * i as f32 } else { end - step * (n - 1 - i) as f32 }).collect()
}

/// diffusers' `rescale_zero_terminal_snr`, in float32.
fn rescale_zero_terminal_snr(betas: &[f32]) -> Vec<f32> {
    let mut acc = 1.0f64;
    let mut sqrt_bar: Vec<f32> = betas
        .iter()
        .map(|b| {
            acc *= f64::from(1.0 - b);
            (acc as f32).sqrt()
        })
        .collect();
    let (first, last) = (sqrt_bar[0], sqrt_bar[sqrt_bar.len() - 1]);
    for a in &mut sqrt_bar {
        *a = (*a - last) * (first / (first - last));
    }
    let bar: Vec<f32> = sqrt_bar.iter().map(|a| a * a).collect();
    let mut out = Vec::with_capacity(bar.len());
    out.push(1.0 - bar[0]);
    for w in bar.windows(2) {
        out.push(1.0 - w[1] / w[0]);
    }
    out
}

/// A sampler over a fixed list of inference timesteps (candle's `Scheduler` seam).
pub trait Scheduler {
    /// The timesteps fed to the UNet, one per step, as the UNet takes them.
    fn timesteps(&self) -> &[f32];
    /// Standard deviation of the initial noise: latents start as `noise * init_noise_sigma`.
    fn init_noise_sigma(&self) -> f32;
    /// Scales the UNet input at step `index`.
    ///
    /// # Panics
    /// If `index` is not below the number of timesteps.
    fn scale_model_input(&self, sample: ArrayView4<f32>, index: usize) -> Array4<f32>;
    /// One step from `sample` given the UNet output and fresh standard normal `noise` (broadcast over the batch).
    ///
    /// # Panics
    /// If `index` is not below the number of timesteps, `model_output` and `sample` differ in
    /// shape, or `noise` does not broadcast to it; the pipeline checks all three first.
    fn step(
        &self,
        model_output: ArrayView4<f32>,
        index: usize,
        sample: ArrayView4<f32>,
        noise: ArrayView4<f32>,
    ) -> Array4<f32>;
}

/// diffusers' `EulerAncestralDiscreteScheduler` after `set_timesteps(steps)`.
#[derive(Debug, Clone)]
pub struct EulerAncestral {
    timesteps: Vec<f32>,
    sigmas: Vec<f32>,
    init_noise_sigma: f32,
    prediction: PredictionType,
}

impl EulerAncestral {
    fn new(config: &SchedulerConfig, steps: usize) -> Self {
        let steps = steps.max(1);
        let t = config.num_train_timesteps;
        let timesteps: Vec<f32> = match config.timestep_spacing {
            TimestepSpacing::Linspace => {
                // np.linspace(0, T-1, steps, dtype=float32)[::-1]: computed in float64, then cast.
                let last = (t - 1) as f64;
                let mut v: Vec<f32> = (0..steps)
                    .map(|i| {
                        if steps == 1 {
                            0.0
                        } else if i == steps - 1 {
                            last as f32
                        } else {
                            (i as f64 * (last / (steps - 1) as f64)) as f32
                        }
                    })
                    .collect();
                v.reverse();
                v
            }
            TimestepSpacing::Leading => {
                let ratio = t / steps;
                (0..steps).rev().map(|i| ((i * ratio) as f32) + config.steps_offset as f32).collect()
            }
            TimestepSpacing::Trailing => {
                // np.arange(T, 0, -T/steps).round() - 1; arange's length is ceil(T / (T/steps)),
                // which floating point makes steps + 1 for some step counts, as in diffusers.
                let ratio = t as f64 / steps as f64;
                let len = ((0.0 - t as f64) / -ratio).ceil() as usize;
                (0..len).map(|i| round_half_even(t as f64 - i as f64 * ratio) as f32 - 1.0).collect()
            }
        };
        let ac = config.alphas_cumprod();
        let train_sigmas: Vec<f32> = ac.iter().map(|a| ((1.0 - a) / a).sqrt()).collect();
        let mut sigmas: Vec<f32> = timesteps.iter().map(|&ts| interp(f64::from(ts), &train_sigmas) as f32).collect();
        sigmas.push(0.0);
        let max = sigmas.iter().copied().fold(0.0f32, f32::max);
        let init_noise_sigma = match config.timestep_spacing {
            TimestepSpacing::Linspace | TimestepSpacing::Trailing => max,
            TimestepSpacing::Leading => (max * max + 1.0).sqrt(),
        };
        EulerAncestral { timesteps, sigmas, init_noise_sigma, prediction: config.prediction_type }
    }

    /// Noise levels per step, with a final 0.
    pub fn sigmas(&self) -> &[f32] {
        &self.sigmas
    }
}

/// numpy's `round` (half to even).
fn round_half_even(x: f64) -> f64 {
    let r = x.round();
    if (x - x.trunc()).abs() == 0.5 && r % 2.0 != 0.0 { r - x.signum() } else { r }
}

/// `np.interp(x, arange(len(ys)), ys)` in float64.
fn interp(x: f64, ys: &[f32]) -> f64 {
    let n = ys.len();
    if x <= 0.0 {
        return f64::from(ys[0]);
    }
    if x >= (n - 1) as f64 {
        return f64::from(ys[n - 1]);
    }
    let i = x.floor() as usize;
    let frac = x - i as f64;
    let (a, b) = (f64::from(ys[i]), f64::from(ys[i + 1]));
    // numpy computes slope * (x - xp[i]) + fp[i].
    (b - a) * frac + a
}

impl Scheduler for EulerAncestral {
    fn timesteps(&self) -> &[f32] {
        &self.timesteps
    }

    fn init_noise_sigma(&self) -> f32 {
        self.init_noise_sigma
    }

    fn scale_model_input(&self, sample: ArrayView4<f32>, index: usize) -> Array4<f32> {
        let sigma = self.sigmas[index];
        let scale = (sigma * sigma + 1.0).sqrt();
        sample.mapv(|x| x / scale)
    }

    fn step(
        &self,
        model_output: ArrayView4<f32>,
        index: usize,
        sample: ArrayView4<f32>,
        noise: ArrayView4<f32>,
    ) -> Array4<f32> {
        let (from, to) = (self.sigmas[index], self.sigmas[index + 1]);
        let up = (to * to * (from * from - to * to) / (from * from)).sqrt();
        let down = (to * to - up * up).sqrt();
        let dt = down - from;
        let prediction = self.prediction;
        let mut out = Array4::zeros(sample.dim());
        Zip::from(&mut out).and(&sample).and(&model_output).and_broadcast(&noise).for_each(|o, &x, &m, &z| {
            let original = match prediction {
                PredictionType::Epsilon => x - from * m,
                PredictionType::VPrediction => m * (-from / (from * from + 1.0).sqrt()) + x / (from * from + 1.0),
            };
            let derivative = (x - original) / from;
            *o = (x + derivative * dt) + z * up;
        });
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(json: &str) -> SchedulerConfig {
        let c: SchedulerConfig = serde_json::from_str(json).unwrap();
        c.validate().unwrap();
        c
    }

    #[test]
    fn linspace_matches_endpoints_and_midpoint() {
        let v = linspace_f32(1.0, 2.0, 5);
        assert_eq!(v, vec![1.0, 1.25, 1.5, 1.75, 2.0]);
    }

    #[test]
    fn last_step_removes_all_noise() {
        let c = config(r#"{"beta_schedule": "scaled_linear", "beta_start": 0.00085, "beta_end": 0.012}"#);
        let s = c.euler_ancestral(4);
        assert_eq!(s.sigmas().len(), 5);
        assert_eq!(*s.sigmas().last().unwrap(), 0.0);
        // With sigma_to = 0 the step is deterministic: x0 = x - sigma * eps whatever the noise.
        let x = Array4::from_elem((1, 1, 2, 2), 3.0f32);
        let eps = Array4::from_elem((1, 1, 2, 2), 0.5f32);
        let noise = Array4::from_elem((1, 1, 2, 2), 100.0f32);
        let out = s.step(eps.view(), 3, x.view(), noise.view());
        let expected = 3.0 - s.sigmas()[3] * 0.5;
        assert!(out.iter().all(|v| (v - expected).abs() < 1e-5), "{out:?} vs {expected}");
    }

    #[test]
    fn trailing_spacing_keeps_numpys_extra_step() {
        // diffusers 0.42: set_timesteps(61) with trailing spacing gives 62 timesteps, the last -1
        // (np.arange's float length); values from diffusers itself.
        let c = config(
            r#"{"beta_schedule": "scaled_linear", "beta_start": 0.00085, "beta_end": 0.012, "timestep_spacing": "trailing"}"#,
        );
        let s = c.euler_ancestral(61);
        let t = s.timesteps();
        assert_eq!(t.len(), 62);
        assert_eq!(&t[..3], &[999.0, 983.0, 966.0]);
        assert_eq!(&t[59..], &[32.0, 15.0, -1.0]);
        assert!((s.sigmas()[1] - 13.276_786).abs() < 1e-4, "{}", s.sigmas()[1]);
        assert!((s.init_noise_sigma() - 14.614_647).abs() < 1e-4);
    }

    #[test]
    fn other_scheduler_classes_are_refused_with_the_fix() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("scheduler_config.json");
        std::fs::write(&p, r#"{"_class_name": "DDIMScheduler"}"#).unwrap();
        let e = SchedulerConfig::from_file(&p).unwrap_err().to_string();
        assert!(e.contains("_class_name") && e.contains("Fix") && e.contains("scheduler_config.json"), "{e}");
    }

    #[test]
    fn bad_betas_are_refused() {
        let c: SchedulerConfig = serde_json::from_str(r#"{"beta_start": 0.5, "beta_end": 0.1}"#).unwrap();
        assert!(c.validate().unwrap_err().contains("beta_start"));
    }
}
