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
use crate::io::OutputError;
use crate::render::{self, ReportImages};
use crate::{Error, Result, imaging, spatial};

/// Most samples shown on the contact sheet.
pub const CONTACT_SHEET_MAX: usize = 48;

/// Most characters of a word in its overlay's file name: at most 4 bytes each, so with the
/// `NN-` prefix and `.png` a name stays far below the 255 bytes file systems allow.
const NAME_CHARS: usize = 48;

/// Longest side, in pixels, of the pictures in an explanation folder: the input is shown
/// scaled down to it, so rendering time and memory are bounded whatever the input's size.
pub const MAX_DISPLAY_SIDE: u32 = 1024;

/// A file name for word `k`: `NN-word.png` with anything but letters and digits replaced
/// and the word cut to 48 characters (the word's number keeps names unique).
pub fn overlay_name(k: usize, word: &str) -> String {
    let clean: String = word.chars().take(NAME_CHARS).map(|c| if c.is_alphanumeric() { c } else { '_' }).collect();
    format!("{:02}-{clean}.png", k + 1)
}

/// `image` scaled down (keeping its aspect, at least one pixel a side) so that neither side
/// exceeds [`MAX_DISPLAY_SIDE`]; smaller images are returned as they are.
pub fn display_image(image: &RgbImage) -> std::borrow::Cow<'_, RgbImage> {
    let (w, h) = image.dimensions();
    let long = w.max(h);
    if long <= MAX_DISPLAY_SIDE {
        return std::borrow::Cow::Borrowed(image);
    }
    let scale = |side: u32| ((u64::from(side) * u64::from(MAX_DISPLAY_SIDE)).div_ceil(u64::from(long)) as u32).max(1);
    std::borrow::Cow::Owned(image::imageops::resize(image, scale(w), scale(h), image::imageops::FilterType::Triangle))
}

/// Fails, before any work is done, if `out` exists and `force` is not set, or if it is
/// something gsmile did not write ([`crate::io::check_replaceable`]).
pub fn check_target(out: &Path, force: bool) -> Result<()> {
    crate::io::check_replaceable(out, force).map_err(|e| Error::InvalidInput(e.to_string()))
}

fn io_err(path: &Path) -> impl Fn(std::io::Error) -> Error + '_ {
    move |source| OutputError { path: path.to_path_buf(), source }.into()
}

/// Renders and writes every output of `run` into the folder `out`, replacing it atomically
/// ([`Staging::begin`] then [`Staging::finish`]).
pub fn write_explanation(run: &ExplainRun, image: &RgbImage, out: &Path, force: bool) -> Result<()> {
    Staging::begin(out, force)?.finish(run, image)
}

/// An explanation folder being written: a hidden sibling of `out` that becomes `out` by one
/// rename when it is complete. Begun before the expensive work, so everything that can
/// fail about the output (an existing `--out`, a parent that cannot be created or written)
/// fails first; dropped unfinished, it leaves nothing behind.
#[derive(Debug)]
pub struct Staging {
    out: PathBuf,
    parent: PathBuf,
    name: String,
    force: bool,
    dir: tempfile::TempDir,
}

impl Staging {
    /// Checks `out` may be written ([`check_target`]), creates its parent, removes the
    /// staging folders that killed runs into the same `out` left behind, and makes this
    /// run's own.
    pub fn begin(out: &Path, force: bool) -> Result<Staging> {
        check_target(out, force)?;
        let parent = match out.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        std::fs::create_dir_all(&parent).map_err(io_err(&parent))?;
        let name = out.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "explanation".into());
        for kind in ["partial", "old"] {
            crate::io::remove_stale_work_dirs(&parent, &name, kind);
        }
        let dir = crate::io::work_dir(&parent, &name, "partial").map_err(io_err(&parent))?;
        Ok(Staging { out: out.to_path_buf(), parent, name, force, dir })
    }

    /// The folder being written.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Renders every output of `run` into the staging folder and renames it to `out`.
    ///
    /// `image` is the original input picture; the pictures show it at most
    /// [`MAX_DISPLAY_SIDE`] pixels on a side, with heat maps upsampled to that size.
    pub fn finish(self, run: &ExplainRun, image: &RgbImage) -> Result<()> {
        let Staging { out, parent, name, force, dir: staging } = self;
        let out = out.as_path();
        fill(run, &display_image(image), staging.path())?;
        crate::io::write_owner_marker(staging.path(), "explain")?;
        // Checked again: the folder may have changed while the explanation ran.
        check_target(out, force)?;
        let appeared = |e: std::io::Error| -> Error {
            if e.kind() == std::io::ErrorKind::AlreadyExists {
                Error::InvalidInput(format!(
                    "{} appeared while this run worked (another run or a user made it); it was left as it is and this run's output is discarded. Fix: choose another --out, or pass --force to replace a gsmile folder",
                    out.display()
                ))
            } else {
                OutputError { path: out.to_path_buf(), source: e }.into()
            }
        };
        if std::fs::symlink_metadata(out).is_ok() {
            // Only a folder gsmile wrote (or an empty one) gets here, and only with --force.
            let old = crate::io::work_dir(&parent, &name, "old").map_err(io_err(&parent))?;
            let old_path = old.path().join("previous");
            std::fs::rename(out, &old_path).map_err(io_err(out))?;
            if let Err(e) = crate::io::rename_no_replace(staging.path(), out) {
                // Put the previous output back; if something took its place meanwhile, keep it
                // where it is and say where.
                if crate::io::rename_no_replace(&old_path, out).is_err() {
                    let kept = old.keep();
                    return Err(Error::InvalidInput(format!(
                        "{}: {}; the previous output is kept in {}",
                        out.display(),
                        appeared(e),
                        kept.display()
                    )));
                }
                return Err(appeared(e));
            }
            // Dropping the guard removes the previous output.
            drop(old);
        } else {
            crate::io::rename_no_replace(staging.path(), out).map_err(appeared)?;
        }
        // The staging folder now lives at `out`; don't let its guard delete it.
        let _ = staging.keep();
        Ok(())
    }
}

/// Writes one file of the staging folder. The folder only becomes visible by the final
/// rename, so its files need no temporary-and-rename of their own (which doubled the
/// filesystem work of writing a report).
fn write_file(path: &Path, bytes: &[u8]) -> Result<()> {
    std::fs::write(path, bytes).map_err(io_err(path))
}

/// Encodes `img` as PNG, writes it to `path`, and returns the bytes for the report.
fn write_png(path: &Path, img: &RgbImage) -> Result<Vec<u8>> {
    let png = render::png_bytes(img);
    write_file(path, &png)?;
    Ok(png)
}

fn fill(run: &ExplainRun, image: &RgbImage, dir: &Path) -> Result<()> {
    let ex = &run.explanation;
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
    // Every picture is independent of the others: render, encode and write each in its own
    // task, so one core's file writes overlap the other's drawing and encoding.
    let (((json, words_png), samples_png), (panels, (input_png, edited_png))) = rayon::join(
        || {
            rayon::join(
                || {
                    rayon::join(
                        || -> Result<()> {
                            let json =
                                serde_json::to_string_pretty(ex).map_err(|e| Error::InvalidInput(e.to_string()))?;
                            write_file(&dir.join("explanation.json"), (json + "\n").as_bytes())
                        },
                        || write_png(&dir.join("words.png"), &render::words_image(ex)),
                    )
                },
                || write_png(&dir.join("samples.png"), &render::contact_sheet(&items, 6)),
            )
        },
        || {
            rayon::join(
                || render_panels(run, image, &edited, dir),
                || rayon::join(|| render::png_bytes(image), || render::png_bytes(&edited)),
            )
        },
    );
    json?;
    let (per_word, overlays_png) = panels?;
    let images = ReportImages {
        words: words_png?,
        overlays: overlays_png,
        samples: samples_png?,
        input: input_png,
        edited: edited_png,
        per_word,
    };
    write_file(&dir.join("report.html"), render::report_html(ex, &images).as_bytes())?;
    Ok(())
}

/// Encoded per-word panels, `(word, PNG)` in word order.
type WordPngs = Vec<(String, Vec<u8>)>;

/// Per-word panels, and the grid of all of them, written under `dir` (`overlays/NN-word.png`,
/// `overlays.png`) and returned as PNG; nothing without heat maps.
fn render_panels(run: &ExplainRun, image: &RgbImage, edited: &RgbImage, dir: &Path) -> Result<(WordPngs, Vec<u8>)> {
    let Some(maps) = &run.heatmaps else { return Ok((Vec::new(), Vec::new())) };
    if maps.dim().0 == 0 {
        return Ok((Vec::new(), Vec::new()));
    }
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
    let folder = dir.join("overlays");
    std::fs::create_dir_all(&folder).map_err(io_err(&folder))?;
    // The grid and the panels' own PNGs are independent encodes of the same pictures.
    let (per_word, grid) = rayon::join(
        || {
            panels
                .par_iter()
                .zip(&run.explanation.words)
                .enumerate()
                .map(|(k, (panel, word))| {
                    Ok((word.word.text.clone(), write_png(&folder.join(overlay_name(k, &word.word.text)), panel)?))
                })
                .collect::<Result<WordPngs>>()
        },
        || write_png(&dir.join("overlays.png"), &render::overlay_grid(&panels, 2)),
    );
    Ok((per_word?, grid?))
}
