//! Progress reporting on the terminal: indicatif bars for the library's progress hooks,
//! and the CUDA-fallback warnings printed as soon as models have loaded.

use std::sync::Mutex;

use gsmile::evaluate::{EvalProgress, ScenarioResult};
use gsmile::explain::Progress;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Prints why sessions fell back from an accelerator to the CPU, once, as soon as models have loaded.
pub fn warn_fallbacks(quiet: bool) {
    for warning in gsmile::runtime::take_fallback_warnings() {
        if !quiet {
            eprintln!("warning: {warning}");
        }
    }
}

/// Prints what went wrong with the run's cache (damaged entries recomputed, writes that
/// stopped), once each, at the end of a command.
pub fn warn_cache(run: &gsmile::explain::RunOptions, quiet: bool) {
    for warning in run.cache.as_ref().map(|c| c.warnings()).unwrap_or_default() {
        if !quiet {
            eprintln!("warning: {warning}");
        }
    }
}

/// A bar style from an indicatif template, falling back to the default bar.
fn style(template: &str) -> ProgressStyle {
    ProgressStyle::with_template(template).unwrap_or_else(|_| ProgressStyle::default_bar()).progress_chars("=> ")
}

/// indicatif bars for the library's progress stages; hidden when stderr is not a terminal.
pub struct Bars {
    bar: Mutex<Option<ProgressBar>>,
    quiet: bool,
}

impl Bars {
    /// Bars that draw nothing when `quiet`.
    pub fn new(quiet: bool) -> Self {
        Bars { bar: Mutex::new(None), quiet }
    }
}

impl Progress for Bars {
    fn stage(&self, name: &str, total: u64) {
        // Models load just before the first stage that needs them: say now if one fell back to the CPU.
        warn_fallbacks(self.quiet);
        if self.quiet {
            return;
        }
        let bar = ProgressBar::new(total).with_message(name.to_string());
        bar.set_style(style("{msg:>10} [{bar:40}] {pos}/{len} {per_sec} {elapsed_precise} eta {eta}"));
        if let Ok(mut slot) = self.bar.lock() {
            *slot = Some(bar);
        }
    }

    fn advance(&self, n: u64) {
        if let Ok(slot) = self.bar.lock()
            && let Some(bar) = slot.as_ref()
        {
            bar.inc(n);
        }
    }

    fn finish(&self) {
        if let Ok(mut slot) = self.bar.lock()
            && let Some(bar) = slot.take()
        {
            bar.finish_and_clear();
        }
    }
}

/// indicatif bars for a suite evaluation: one for the suite (with ETA), one for the scenario's steps.
pub struct EvalBars {
    overall: ProgressBar,
    current: ProgressBar,
}

impl EvalBars {
    /// Bars that draw nothing when `quiet`.
    pub fn new(quiet: bool) -> Self {
        let multi = MultiProgress::new();
        if quiet {
            multi.set_draw_target(ProgressDrawTarget::hidden());
        }
        let overall = multi.add(ProgressBar::new(0));
        overall.set_style(style("suite      [{bar:40}] {pos}/{len} scenarios {elapsed_precise} eta {eta}"));
        let current = multi.add(ProgressBar::new(0));
        current.set_style(style("{msg:>10} [{bar:40}] {pos}/{len} steps"));
        EvalBars { overall, current }
    }
}

impl EvalProgress for EvalBars {
    fn run_started(&self, total: usize, _already_done: usize) {
        self.overall.set_length(total as u64);
        self.overall.set_position(0);
        self.overall.reset_eta();
    }
    fn skipped(&self, _id: &str, _index: usize, _total: usize) {
        self.overall.inc(1);
        self.overall.reset_eta();
    }
    fn scenario_started(&self, id: &str, _index: usize, _total: usize, steps: usize) {
        self.current.set_message(id.to_string());
        self.current.set_length(steps as u64);
        self.current.set_position(0);
    }
    fn scenario_step(&self, _id: &str, _what: &str, done: usize, _steps: usize) {
        self.current.set_position(done as u64);
    }
    fn scenario_finished(&self, _result: &ScenarioResult, _index: usize, _total: usize) {
        self.overall.inc(1);
    }
    fn writing_tables(&self) {
        self.current.finish_and_clear();
        self.overall.finish_and_clear();
    }
}
