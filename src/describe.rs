//! Bundle listings (`gsmile models`): each bundle opened, the model of its kind loaded and
//! checked against its graphs, and its [`Description`] laid out with the manifest's fields.
//!
//! Editors and encoders describe themselves ([`crate::editor::Editor::describe`],
//! [`ClipEncoder::describe`]); this module only picks which to load, so it sits above both.

use std::path::Path;

use crate::Result;
use crate::bundle::{Bundle, BundleKind, Description, DiffusionSettings};
use crate::editor;
use crate::encoder::{ClipEncoder, FeatureEncoder};
use crate::runtime::RuntimeOptions;

/// Opens the bundle in `dir`, loads its model (with a diffusion editor's default settings),
/// and returns its listing: name, kind, image settings, tokens, size, graph signatures, provenance.
pub fn describe_bundle(dir: &Path, options: &RuntimeOptions) -> Result<String> {
    let bundle = Bundle::open(dir)?;
    let description = match bundle.manifest().kind {
        BundleKind::Clip => ClipEncoder::load(&bundle, options)?.describe()?,
        BundleKind::Lpips => crate::lpips::Lpips::load(&bundle, options)?.describe()?,
        BundleKind::Features => FeatureEncoder::load(&bundle, options)?.describe()?,
        BundleKind::Editor | BundleKind::InstructPix2Pix | BundleKind::Command | BundleKind::Http => {
            editor::load(&bundle, options, DiffusionSettings::default(), 32, None)?.describe()?
        }
    };
    Ok(listing(&bundle, &description))
}

/// The listing text of `bundle` described by `description`.
fn listing(bundle: &Bundle, description: &Description) -> String {
    let m = bundle.manifest();
    let mut out = format!(
        "{} ({})\n  kind: {}\n  {}\n  image: {}\n  tokens: {}\n  size: {:.2} MB\n",
        m.name,
        bundle.dir().display(),
        m.kind,
        m.description,
        description.image,
        m.tokenizer.as_ref().map_or(
            match m.kind {
                BundleKind::Lpips => "none (compares images)",
                BundleKind::Features => "none (image features only)",
                _ => "the worker's own tokenizer",
            }
            .to_string(),
            |t| format!("{} (tokenizer {})", t.max_length, t.file.display())
        ),
        bundle.size_bytes() as f64 / 1e6
    );
    for line in &description.signature {
        out += &format!("  {line}\n");
    }
    if !m.provenance.made_by.is_empty() {
        out += &format!("  made by: {}\n", m.provenance.made_by);
    }
    if !m.provenance.licence.is_empty() {
        out += &format!("  licence: {}\n", m.provenance.licence);
    }
    out
}
