//! Diffusion samplers, configured from a checkpoint's `scheduler/scheduler_config.json`: the
//! config and its training noise schedule, the [`Scheduler`] trait the denoising loop drives,
//! and [`build`], which picks the sampler the config's `_class_name` names.
//!
//! One file per sampler: [`euler_ancestral`] (diffusers' `EulerAncestralDiscreteScheduler`, the
//! default of `StableDiffusionInstructPix2PixPipeline`). Adding another (DDIM, Euler) is one
//! new file implementing [`Scheduler`] plus one arm in the match of `constructor` below.
//!
//! The arithmetic follows diffusers 0.42 step by step, including where it works in float32
//! and where in float64, so a Rust loop fed the same noise reproduces diffusers' latents.

pub mod euler_ancestral;

use std::path::{Path, PathBuf};

use ndarray::{Array4, ArrayView4};
use serde::Deserialize;

pub use euler_ancestral::EulerAncestral;

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

/// The fields of a diffusers `scheduler_config.json` the samplers read; defaults are diffusers'.
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
    /// The file the config was read from, for errors; empty for a config built in memory.
    #[serde(skip)]
    file: PathBuf,
}

impl SchedulerConfig {
    /// Reads a `scheduler_config.json`; classes [`build`] has no sampler for are refused with the fix.
    pub fn from_file(path: &Path) -> Result<Self, SchedulerError> {
        let err = |message: String| SchedulerError { path: path.to_path_buf(), message };
        let text = std::fs::read_to_string(path).map_err(|e| err(format!("cannot read it: {e}")))?;
        let mut config: SchedulerConfig =
            serde_json::from_str(&text).map_err(|e| err(format!("not a diffusers scheduler config: {e}")))?;
        config.file = path.to_path_buf();
        if constructor(&config.class_name).is_none() {
            return Err(config.unknown_class());
        }
        config.validate().map_err(err)?;
        Ok(config)
    }

    /// The error for a `_class_name` no sampler here implements.
    fn unknown_class(&self) -> SchedulerError {
        let default = euler_ancestral::CLASS_NAME;
        let path =
            if self.file.as_os_str().is_empty() { PathBuf::from("scheduler_config.json") } else { self.file.clone() };
        SchedulerError {
            path,
            message: format!(
                "field `_class_name` is {:?}, but gsmile runs InstructPix2Pix with {default} (the pipeline's default). Fix: set `_class_name` to {default:?}; the beta schedule is kept",
                self.class_name
            ),
        }
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
pub trait Scheduler: Send + Sync + std::fmt::Debug {
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

/// Makes a sampler for a number of steps from a config.
type Constructor = fn(&SchedulerConfig, usize) -> Box<dyn Scheduler>;

/// The sampler of each diffusers class implemented here: one arm per sampler file.
fn constructor(class_name: &str) -> Option<Constructor> {
    match class_name {
        // A config without a class is taken to be the pipeline's default.
        "" | euler_ancestral::CLASS_NAME => Some(|config, steps| Box::new(EulerAncestral::new(config, steps))),
        _ => None,
    }
}

/// Builds the sampler the config's `_class_name` names, for `steps` inference steps.
pub fn build(config: &SchedulerConfig, steps: usize) -> Result<Box<dyn Scheduler>, SchedulerError> {
    let make = constructor(&config.class_name).ok_or_else(|| config.unknown_class())?;
    Ok(make(config, steps))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn linspace_matches_endpoints_and_midpoint() {
        let v = linspace_f32(1.0, 2.0, 5);
        assert_eq!(v, vec![1.0, 1.25, 1.5, 1.75, 2.0]);
    }

    #[test]
    fn other_scheduler_classes_are_refused_with_the_fix() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("scheduler_config.json");
        std::fs::write(&p, r#"{"_class_name": "DDIMScheduler"}"#).unwrap();
        let e = SchedulerConfig::from_file(&p).unwrap_err().to_string();
        assert!(e.contains("_class_name") && e.contains("Fix") && e.contains("scheduler_config.json"), "{e}");
        let c: SchedulerConfig = serde_json::from_str(r#"{"_class_name": "DDIMScheduler"}"#).unwrap();
        let e = build(&c, 4).unwrap_err().to_string();
        assert!(e.contains("_class_name") && e.contains("Fix") && e.contains("scheduler_config.json"), "{e}");
    }

    #[test]
    fn the_class_name_picks_the_sampler() {
        let named: SchedulerConfig =
            serde_json::from_str(r#"{"_class_name": "EulerAncestralDiscreteScheduler"}"#).unwrap();
        let unnamed: SchedulerConfig = serde_json::from_str("{}").unwrap();
        let (a, b) = (build(&named, 5).unwrap(), build(&unnamed, 5).unwrap());
        assert_eq!(a.timesteps(), EulerAncestral::new(&named, 5).timesteps());
        assert_eq!(a.timesteps(), b.timesteps());
    }

    #[test]
    fn bad_betas_are_refused() {
        let c: SchedulerConfig = serde_json::from_str(r#"{"beta_start": 0.5, "beta_end": 0.1}"#).unwrap();
        assert!(c.validate().unwrap_err().contains("beta_start"));
    }
}
