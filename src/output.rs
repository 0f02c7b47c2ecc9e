//! Writes an explanation's folder: `explanation.json`, `words.png`, per-word overlays,
//! `overlays.png`, `samples.png` and a self-contained `report.html`.
//!
//! Everything is written into a hidden sibling folder first and renamed into place at the
//! end, so a failed run leaves no partial output folder.

use std::path::{Path, PathBuf};

use image::RgbImage;
use ndarray::Axis;
use rayon::prelude::*;

use crate::explain::ExplainRun;
use crate::io::{OutputError, write_bytes_atomic};
use crate::render::{self, ReportImages};
use crate::{Error, Result, imaging, spatial};

/// Most samples shown on the contact sheet.
pub const CONTACT_SHEET_MAX: usize = 48;

/// A file name for word `k`: `NN-word.png` with anything but letters and digits replaced.
pub fn overlay_name(k: usize, word: &str) -> String {
    let clean: String = word.chars().map(|c| if c.is_alphanumeric() { c } else { '_' }).collect();
    format!("{:02}-{clean}.png", k + 1)
}

/// Fails if `out` exists and `force` is not set, before any work is done.
pub fn check_target(out: &Path, force: bool) -> Result<()> {
    if out.exists() && !force {
        return Err(Error::InvalidInput(format!(
            "{} already exists. Fix: pass --force to replace it or choose another --out",
            out.display()
        )));
    }
    Ok(())
}

fn io_err(path: &Path) -> impl Fn(std::io::Error) -> Error + '_ {
    move |source| OutputError { path: path.to_path_buf(), source }.into()
}

/// Renders and writes every output of `run` into the folder `out`, replacing it atomically.
///
/// `image` is the original input picture; heatmaps are upsampled to its size.
pub fn write_explanation(run: &ExplainRun, image: &RgbImage, out: &Path, force: bool) -> Result<()> {
    check_target(out, force)?;
    let parent = match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    std::fs::create_dir_all(&parent).map_err(io_err(&parent))?;
    let name = out.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "explanation".into());
    let staging =
        tempfile::Builder::new().prefix(&format!(".{name}.partial-")).tempdir_in(&parent).map_err(io_err(&parent))?;
    fill(run, image, staging.path())?;
    if out.exists() {
        let old = parent.join(format!(".{name}.old-{}", std::process::id()));
        std::fs::rename(out, &old).map_err(io_err(out))?;
        std::fs::rename(staging.path(), out).map_err(io_err(out))?;
        let _ = std::fs::remove_dir_all(old);
    } else {
        std::fs::rename(staging.path(), out).map_err(io_err(out))?;
    }
    // The staging folder now lives at `out`; don't let its guard delete it.
    std::mem::forget(staging);
    Ok(())
}

fn fill(run: &ExplainRun, image: &RgbImage, dir: &Path) -> Result<()> {
    let ex = &run.explanation;
    let json = serde_json::to_string_pretty(ex).map_err(|e| Error::InvalidInput(e.to_string()))? + "\n";
    write_bytes_atomic(&dir.join("explanation.json"), json.as_bytes())?;

    let (w, h) = image.dimensions();
    let full = imaging::resize_tensor(run.edits.index_axis(Axis(0), 0), h, w);
    let edited = imaging::from_tensor(full.view());

    let items: Vec<(String, f64, RgbImage)> = run
        .edits
        .axis_iter(Axis(0))
        .zip(&run.edit_instructions)
        .zip(&run.edit_distances)
        .take(CONTACT_SHEET_MAX)
        .map(|((e, t), d)| (if t.is_empty() { "(empty)".to_string() } else { t.clone() }, *d, imaging::from_tensor(e)))
        .collect();
    // The word heatmap and contact sheet, and the per-word panels with their grid, are
    // independent: render and encode both halves at once.
    let ((words_png, samples_png), panels) = rayon::join(
        || {
            rayon::join(
                || render::png_bytes(&render::words_image(ex)),
                || render::png_bytes(&render::contact_sheet(&items, 6)),
            )
        },
        || render_panels(run, image, &edited),
    );
    let (per_word, overlays_png) = panels?;
    write_bytes_atomic(&dir.join("words.png"), &words_png)?;
    write_bytes_atomic(&dir.join("samples.png"), &samples_png)?;
    if !per_word.is_empty() {
        let overlays = dir.join("overlays");
        std::fs::create_dir_all(&overlays).map_err(io_err(&overlays))?;
        for (k, (word, bytes)) in per_word.iter().enumerate() {
            write_bytes_atomic(&overlays.join(overlay_name(k, word)), bytes)?;
        }
        write_bytes_atomic(&dir.join("overlays.png"), &overlays_png)?;
    }

    let images = ReportImages {
        words: words_png,
        overlays: overlays_png,
        samples: samples_png,
        input: render::png_bytes(image),
        edited: render::png_bytes(&edited),
        per_word,
    };
    write_bytes_atomic(&dir.join("report.html"), render::report_html(ex, &images).as_bytes())?;
    Ok(())
}

/// Encoded per-word panels, `(word, PNG)` in word order.
type WordPngs = Vec<(String, Vec<u8>)>;

/// Per-word panels, and the grid of all of them as PNG; empty without heat maps.
fn render_panels(run: &ExplainRun, image: &RgbImage, edited: &RgbImage) -> Result<(WordPngs, Vec<u8>)> {
    let Some(maps) = &run.heatmaps else { return Ok((Vec::new(), Vec::new())) };
    let (w, h) = image.dimensions();
    let upsampled: Vec<_> =
        (0..maps.dim().0).into_par_iter().map(|k| spatial::upsample(maps.index_axis(Axis(0), k), h, w)).collect();
    let vmax = upsampled.iter().flat_map(|m| m.iter()).fold(0.0f32, |a, v| a.max(v.abs()));
    let panels: Vec<RgbImage> = upsampled
        .par_iter()
        .zip(&run.explanation.words)
        .map(|(heat, word)| {
            render::word_panel(image, edited, heat.view(), vmax, word).map_err(|e| Error::InvalidInput(e.to_string()))
        })
        .collect::<Result<_>>()?;
    if panels.is_empty() {
        return Ok((Vec::new(), Vec::new()));
    }
    // The grid and the panels' own PNGs are independent encodes of the same pictures.
    let (bytes, grid) = rayon::join(
        || panels.par_iter().map(render::png_bytes).collect::<Vec<_>>(),
        || render::png_bytes(&render::overlay_grid(&panels, 2)),
    );
    let per_word = run.explanation.words.iter().map(|w| w.word.text.clone()).zip(bytes).collect();
    Ok((per_word, grid))
}
