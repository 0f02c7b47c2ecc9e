//! diffusers' `EulerAncestralDiscreteScheduler`: Euler steps in noise level with fresh noise
//! added at each step (ancestral sampling, ported from k-diffusion's `sample_euler_ancestral`),
//! the default sampler of `StableDiffusionInstructPix2PixPipeline`.

use ndarray::{Array4, ArrayView4, Zip};

use super::{PredictionType, Scheduler, SchedulerConfig, TimestepSpacing};

/// The diffusers class this file implements, as `_class_name` names it.
pub const CLASS_NAME: &str = "EulerAncestralDiscreteScheduler";

/// diffusers' `EulerAncestralDiscreteScheduler` after `set_timesteps(steps)`.
#[derive(Debug, Clone)]
pub struct EulerAncestral {
    timesteps: Vec<f32>,
    sigmas: Vec<f32>,
    init_noise_sigma: f32,
    prediction: PredictionType,
}

impl EulerAncestral {
    /// The sampler for `steps` inference steps (at least 1), as diffusers' `set_timesteps(steps)` leaves it.
    pub fn new(config: &SchedulerConfig, steps: usize) -> Self {
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
    fn last_step_removes_all_noise() {
        let c = config(r#"{"beta_schedule": "scaled_linear", "beta_start": 0.00085, "beta_end": 0.012}"#);
        let s = EulerAncestral::new(&c, 4);
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
        let s = EulerAncestral::new(&c, 61);
        let t = s.timesteps();
        assert_eq!(t.len(), 62);
        assert_eq!(&t[..3], &[999.0, 983.0, 966.0]);
        assert_eq!(&t[59..], &[32.0, 15.0, -1.0]);
        assert!((s.sigmas()[1] - 13.276_786).abs() < 1e-4, "{}", s.sigmas()[1]);
        assert!((s.init_noise_sigma() - 14.614_647).abs() < 1e-4);
    }
}
