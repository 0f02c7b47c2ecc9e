//! `gsmile cache`: stats, verify and prune for a cache folder kept across runs.

use std::time::Duration;

use anyhow::{Context, Result, bail};
use gsmile::cache;

use crate::cli::args::{CacheAction, CacheArgs};
use crate::cli::stdout::print;

/// Runs one cache action and prints what it found or did.
pub fn run(a: &CacheArgs) -> Result<()> {
    let dir = &a.cache;
    if !dir.is_dir() {
        bail!("{}: no cache folder here. Fix: pass the --cache your runs used", dir.display());
    }
    let context = || format!("cannot read the cache in {}", dir.display());
    match &a.action {
        CacheAction::Stats => {
            let s = cache::stats(dir).with_context(context)?;
            let age = |d: Option<Duration>| d.map_or("-".to_string(), human_age);
            print(&format!(
                "{}: {} entries, {}; least recently used {} ago, most recently {} ago\n",
                dir.display(),
                s.entries,
                human_bytes(s.bytes),
                age(s.oldest),
                age(s.newest)
            ))
        }
        CacheAction::Verify { remove } => {
            let r = cache::verify(dir, *remove).with_context(context)?;
            let mut text = String::new();
            for p in &r.bad {
                text.push_str(&format!("damaged: {}\n", p.display()));
            }
            text.push_str(&format!(
                "{}: {} entries checked, {} damaged{}\n",
                dir.display(),
                r.checked,
                r.bad.len(),
                if *remove && !r.bad.is_empty() { " and removed" } else { "" }
            ));
            print(&text)?;
            if !r.bad.is_empty() && !remove {
                bail!(
                    "{} damaged cache entries (runs recompute them). Fix: `gsmile cache verify --remove --cache {}`",
                    r.bad.len(),
                    dir.display()
                );
            }
            Ok(())
        }
        CacheAction::Prune { older_than } => {
            let r = cache::prune(dir, *older_than).with_context(context)?;
            print(&format!(
                "{}: removed {} entries ({}) unused for over {}, kept {}\n",
                dir.display(),
                r.removed,
                human_bytes(r.bytes),
                human_age(*older_than),
                r.kept
            ))
        }
    }
}

fn human_bytes(b: u64) -> String {
    match b {
        b if b >= 1 << 30 => format!("{:.1} GiB", b as f64 / f64::from(1u32 << 30)),
        b if b >= 1 << 20 => format!("{:.1} MiB", b as f64 / f64::from(1u32 << 20)),
        b if b >= 1 << 10 => format!("{:.1} KiB", b as f64 / 1024.0),
        b => format!("{b} bytes"),
    }
}

fn human_age(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        s if s >= 86_400 => format!("{:.1} days", s as f64 / 86_400.0),
        s if s >= 3600 => format!("{:.1} hours", s as f64 / 3600.0),
        s if s >= 60 => format!("{} minutes", s / 60),
        s => format!("{s} seconds"),
    }
}
