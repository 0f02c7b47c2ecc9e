//! `gsmile models`: lists bundles with their contracts, checking each against its graphs.

use std::path::Path;

use anyhow::{Result, bail};
use gsmile::bundle::{self, Bundle, BundleKind};
use gsmile::editor::OnnxEditor;
use gsmile::encoder::ClipEncoder;
use gsmile::runtime::RuntimeOptions;

use crate::cli::args::ModelsArgs;

/// Describes every bundle found under the given folders; fails if any is broken.
pub fn run(a: &ModelsArgs, runtime: RuntimeOptions) -> Result<()> {
    let mut dirs = Vec::new();
    for p in &a.paths {
        let found = bundle::discover(p);
        if found.is_empty() {
            bail!(
                "{}: no bundle here (no {} in it or its subfolders). Fix: pass a bundle folder such as onnx/tiny-editor",
                p.display(),
                bundle::MANIFEST
            );
        }
        dirs.extend(found);
    }
    let mut broken = 0;
    for dir in &dirs {
        match describe_bundle(dir, &runtime) {
            Ok(text) => println!("{text}"),
            Err(e) => {
                broken += 1;
                println!("{}\n  BROKEN: {e:#}\n", dir.display());
            }
        }
    }
    if broken > 0 {
        bail!("{broken} of {} bundles failed their checks (see above)", dirs.len());
    }
    Ok(())
}

fn describe_bundle(dir: &Path, options: &RuntimeOptions) -> Result<String> {
    let b = Bundle::open(dir)?;
    let m = b.manifest();
    let (signature, image) = match m.kind {
        BundleKind::Editor => (OnnxEditor::load(&b, options)?.signature()?.to_vec(), None),
        BundleKind::Clip => {
            let enc = ClipEncoder::load(&b, options)?;
            (enc.signature()?, Some(enc.preprocessing()))
        }
        BundleKind::InstructPix2Pix => {
            let p = gsmile::editor::pix2pix::InstructPix2Pix::load(&b, options, Default::default())?;
            let s = p.settings();
            let line = format!(
                "{}x{}, {} steps, guidance {} / image {}",
                s.width, s.height, s.steps, s.guidance_scale, s.image_guidance_scale
            );
            (p.signature()?, Some(line))
        }
    };
    let image = image.unwrap_or_else(|| match &m.image {
        Some(i) => format!("{}x{} range {:?} mean {:?} std {:?}", i.height, i.width, i.range, i.mean, i.std),
        None => "-".into(),
    });
    let mut out = format!(
        "{} ({})\n  kind: {}\n  {}\n  image: {image}\n  tokens: {} (tokenizer {})\n  size: {:.2} MB\n",
        m.name,
        dir.display(),
        m.kind,
        m.description,
        m.tokenizer.max_length,
        m.tokenizer.file.display(),
        b.size_bytes() as f64 / 1e6
    );
    for line in signature {
        out += &format!("  {line}\n");
    }
    if !m.provenance.made_by.is_empty() {
        out += &format!("  made by: {}\n", m.provenance.made_by);
    }
    if !m.provenance.licence.is_empty() {
        out += &format!("  licence: {}\n", m.provenance.licence);
    }
    Ok(out)
}
