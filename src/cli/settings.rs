//! Resolves parsed arguments into the library's settings (configs, run and open options),
//! and maps the library's config field names back to flags in error messages.

use gsmile::cache::ArrayCache;
use gsmile::editor::DiffusionSettings;
use gsmile::evaluate::{EvalConfig, EvalError};
use gsmile::explain::{ExplainConfig, RunOptions};
use gsmile::models::OpenOptions;
use gsmile::runtime::RuntimeOptions;
use gsmile::surrogate::SurrogateConfig;

use gsmile::explain::Method;

use super::args::{MethodArgs, QualityArgs, RunArgs, Samples};

impl MethodArgs {
    /// The library configuration for `method` at budget `samples`.
    pub fn config_for(&self, method: Method, samples: Samples) -> ExplainConfig {
        let (samples, auto) = match samples {
            Samples::Fixed(n) => (n, false),
            Samples::Auto => (self.max_samples, true),
        };
        ExplainConfig {
            method,
            samples,
            auto,
            smile_target: self.smile_target,
            seed: self.seed,
            strategy: self.strategy,
            replacement: self.replace.clone(),
            reference: self.reference,
            space: self.space,
            distance: self.distance,
            weighting: self.weighting,
            kernel_width: self.kernel_width,
            surrogate: SurrogateConfig {
                ridge_alpha: self.ridge,
                bootstrap: self.bootstrap,
                confidence: self.confidence,
                seed: self.seed,
                top_k: self.top_k,
            },
            spatial: !self.no_spatial,
            spatial_reference: self.spatial_reference,
            spatial_space: self.spatial_space,
            patch: self.patch,
            editor_seed: self.editor_seed,
        }
    }

    /// The one configuration these options describe; more than one method or budget is an
    /// error naming the flag (only `evaluate` sweeps).
    pub fn config(&self) -> anyhow::Result<ExplainConfig> {
        if self.methods.len() != 1 {
            anyhow::bail!(
                "--method was given {} times; this command explains with one method. Fix: pass one --method (gsmile evaluate compares several)",
                self.methods.len()
            );
        }
        if self.samples.len() != 1 {
            anyhow::bail!(
                "--samples lists {} budgets; this command runs one. Fix: pass one number or `auto` (gsmile evaluate sweeps lists)",
                self.samples.len()
            );
        }
        Ok(self.config_for(self.methods[0], self.samples[0]))
    }

    /// Every (method, budget) configuration, budgets outermost, methods in the order given.
    pub fn configs(&self) -> Vec<ExplainConfig> {
        self.samples.iter().flat_map(|&s| self.methods.iter().map(move |&m| self.config_for(m, s))).collect()
    }
}

impl QualityArgs {
    /// The library's evaluation configuration.
    pub fn config(&self) -> anyhow::Result<EvalConfig> {
        Ok(self.with(self.method.config()?))
    }

    /// The evaluation configuration around one explanation configuration.
    pub fn with(&self, explain: ExplainConfig) -> EvalConfig {
        EvalConfig {
            explain,
            repeats: self.repeats,
            held_out: self.held_out,
            random_curves: self.random_curves,
            neutral_insertions: self.neutral_insertions,
        }
    }
}

impl RunArgs {
    /// The library's run options, reading images of at most `max_pixels` pixels.
    pub fn options(&self, max_pixels: u64) -> RunOptions {
        RunOptions {
            max_batch: self.max_batch,
            cache: if self.no_cache { None } else { Some(ArrayCache::new(&self.cache)) },
            max_pixels,
        }
    }

    /// How models are opened for a run with these options.
    pub fn open_options(&self, runtime: RuntimeOptions, diffusion: &DiffusionSettings) -> OpenOptions {
        OpenOptions {
            runtime,
            diffusion: *diffusion,
            max_batch: self.max_batch,
            hash_memo: if self.no_cache { None } else { Some(self.cache.clone()) },
            concurrency: self.concurrency,
            lpips: None,
        }
    }
}

/// Config fields ([`ExplainConfig`], [`EvalConfig`], [`DiffusionSettings`], the models) and
/// the flags that set them.
const FLAGS: [(&str, &str); 30] = [
    ("method", "--method"),
    ("samples", "--samples"),
    ("auto", "--samples auto"),
    ("smile_target", "--smile-target"),
    ("seed", "--seed"),
    ("strategy", "--strategy"),
    ("replacement", "--replace"),
    ("reference", "--reference"),
    ("space", "--space"),
    ("distance", "--distance"),
    ("weighting", "--weighting"),
    ("kernel_width", "--kernel-width"),
    ("surrogate.ridge_alpha", "--ridge"),
    ("surrogate.bootstrap", "--bootstrap"),
    ("surrogate.confidence", "--confidence"),
    ("surrogate.top_k", "--top-k"),
    ("spatial_reference", "--spatial-reference"),
    ("spatial_space", "--spatial-space"),
    ("patch", "--patch"),
    ("editor_seed", "--editor-seed"),
    ("encoder", "--encoder"),
    ("editor", "--editor"),
    ("repeats", "--repeats"),
    ("held_out", "--held-out"),
    ("random_curves", "--random-curves"),
    ("neutral_insertions", "--neutral-insertions"),
    ("steps", "--steps"),
    ("guidance_scale", "--guidance-scale"),
    ("image_guidance_scale", "--image-guidance-scale"),
    ("size", "--size"),
];

/// The flag that sets config field `field`, if the CLI has one.
pub fn flag(field: &str) -> Option<&'static str> {
    FLAGS.iter().find(|(f, _)| *f == field).map(|(_, flag)| *flag)
}

/// Rewrites the config fields a library message names in backticks into flags:
/// `` `kernel_width` `` becomes `--kernel-width`, `` `space = pixels` `` becomes `--space pixels`.
/// Spans that name no known field are left as they are.
pub fn fields_to_flags(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut rest = message;
    while let Some(open) = rest.find('`') {
        let Some(len) = rest[open + 1..].find('`') else { break };
        let span = &rest[open + 1..open + 1 + len];
        let (field, value) = match span.split_once('=') {
            Some((f, v)) => (f.trim(), Some(v.trim())),
            None => (span.trim(), None),
        };
        out.push_str(&rest[..open]);
        match (flag(field), value) {
            (Some(flag), Some(value)) => out.push_str(&format!("{flag} {value}")),
            (Some(flag), None) => out.push_str(flag),
            (None, _) => out.push_str(&rest[open..open + len + 2]),
        }
        rest = &rest[open + len + 2..];
    }
    out.push_str(rest);
    out
}

/// The message to print for `error`: its whole chain, with config fields named as flags
/// when the library blamed a config value.
pub fn error_message(error: &anyhow::Error) -> String {
    let text = chain_text(error);
    let blames_config = |e: &gsmile::Error| matches!(e, gsmile::Error::Config(_) | gsmile::Error::Perturb(_));
    // Transparent variants forward `source()` past the error they wrap, so the wrapper itself
    // is asked what it holds.
    let about_config = error.chain().any(|cause| {
        cause.downcast_ref::<gsmile::Error>().is_some_and(blames_config)
            || match cause.downcast_ref::<EvalError>() {
                Some(EvalError::Explain(e)) | Some(EvalError::Scenario { source: e, .. }) => blames_config(e),
                _ => false,
            }
            || cause.is::<gsmile::error::ConfigError>()
            || cause.is::<gsmile::perturb::PerturbError>()
    });
    if about_config { fields_to_flags(&text) } else { text }
}

/// The error and its causes joined by ": ", leaving out a cause whose text the message
/// already holds: library errors quote the system's reason in their own sentence (before
/// their "Fix:"), and anyhow's `{:#}` would repeat it after the fix.
fn chain_text(error: &anyhow::Error) -> String {
    let mut text = error.to_string();
    for cause in error.chain().skip(1) {
        let cause = cause.to_string();
        if !text.contains(&cause) {
            text.push_str(": ");
            text.push_str(&cause);
        }
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cause_already_in_the_message_is_not_repeated() {
        let busy = std::io::Error::other("Device or resource busy");
        let e = anyhow::Error::new(gsmile::io::OutputError { path: "out/x.png".into(), source: busy });
        let text = error_message(&e);
        assert_eq!(text.matches("Device or resource busy").count(), 1, "{text}");
        // A cause the message does not quote is still shown.
        let e = anyhow::Error::new(std::io::Error::other("disk on fire")).context("cannot write out/x.png");
        assert_eq!(error_message(&e), "cannot write out/x.png: disk on fire");
    }

    #[test]
    fn known_fields_become_flags_and_other_spans_stay() {
        assert_eq!(
            fields_to_flags(
                "`space = embedding` needs an image encoder. Fix: give an `encoder` or set `space = pixels`"
            ),
            "--space embedding needs an image encoder. Fix: give an --encoder or set --space pixels"
        );
        assert_eq!(fields_to_flags("`surrogate.ridge_alpha` must be ≥ 0"), "--ridge must be ≥ 0");
        assert_eq!(fields_to_flags("bundle.toml `name` is empty; `x"), "bundle.toml `name` is empty; `x");
    }

    #[test]
    fn config_errors_name_flags_even_inside_an_evaluation_scenario() {
        let perturb = || gsmile::Error::Perturb(gsmile::perturb::PerturbError::TooFewSamples(1));
        let direct = anyhow::Error::from(perturb());
        assert_eq!(error_message(&direct), "--samples must be at least 2 (got 1)");
        let scenario = EvalError::Scenario { id: "s1".into(), file: "s1.toml".into(), source: Box::new(perturb()) };
        let message = error_message(&anyhow::Error::from(scenario));
        assert!(message.contains("--samples must be at least 2"), "{message}");
        let other = anyhow::anyhow!("bundle.toml `samples` is not a field");
        assert_eq!(error_message(&other), "bundle.toml `samples` is not a field", "only config errors are rewritten");
    }

    #[test]
    fn every_field_has_one_flag() {
        let mut fields: Vec<&str> = FLAGS.iter().map(|(f, _)| *f).collect();
        fields.sort_unstable();
        fields.dedup();
        assert_eq!(fields.len(), FLAGS.len());
        assert!(FLAGS.iter().all(|(_, flag)| flag.starts_with("--")));
    }
}
