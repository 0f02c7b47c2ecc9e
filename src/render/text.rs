//! Text in the embedded font: DejaVu Sans parsed once, glyph rasters cached per size and
//! subpixel phase, line layout, measuring, drawing, and fitting text to a width.

use std::sync::OnceLock;

use ab_glyph::{FontRef, PxScale};
use image::{Rgb, RgbImage};

use super::canvas::channel;

/// DejaVu Sans (Bitstream Vera licence, see `assets/fonts/LICENSE-DejaVu.txt`).
const FONT_BYTES: &[u8] = include_bytes!("../../assets/fonts/DejaVuSans.ttf");

/// The embedded font, parsed once.
fn font() -> &'static FontRef<'static> {
    static FONT: OnceLock<FontRef<'static>> = OnceLock::new();
    FONT.get_or_init(|| FontRef::try_from_slice(FONT_BYTES).expect("the embedded DejaVuSans.ttf is a valid font"))
}

/// A glyph rasterised once: its coverage and where it sits relative to the pen position.
struct Raster {
    /// Offset of the bitmap's left edge from the pen's whole-pixel x.
    left: i32,
    /// Offset of the bitmap's top edge from the line's top.
    top: i32,
    width: usize,
    height: usize,
    /// Coverage in [0, 1], row-major.
    coverage: Vec<f32>,
}

/// Subpixel x positions a glyph is rasterised at (quarter pixels).
const SUBPIXEL: f32 = 4.0;

type GlyphKey = (u16, u32, u8);

/// The cached raster of glyph `id` at `size` pixels with its pen at fractional x `frac`.
///
/// imageproc's `draw_text_mut` and `text_size` rasterise every glyph of every call; report
/// pictures draw the same few dozen glyphs thousands of times (contact sheet captions), so
/// caching coverage per glyph, size and quarter-pixel phase removes most of the drawing time.
fn raster(id: ab_glyph::GlyphId, size: f32, frac: f32) -> std::sync::Arc<Option<Raster>> {
    use ab_glyph::{Font as _, ScaleFont as _};
    static CACHE: OnceLock<std::sync::RwLock<std::collections::HashMap<GlyphKey, std::sync::Arc<Option<Raster>>>>> =
        OnceLock::new();
    let phase = ((frac * SUBPIXEL).floor() as u8).min(SUBPIXEL as u8 - 1);
    let key = (id.0, size.to_bits(), phase);
    let cache = CACHE.get_or_init(Default::default);
    if let Some(hit) = cache.read().ok().and_then(|c| c.get(&key).cloned()) {
        return hit;
    }
    let scaled = font().as_scaled(PxScale::from(size));
    let glyph =
        id.with_scale_and_position(PxScale::from(size), ab_glyph::point(f32::from(phase) / SUBPIXEL, scaled.ascent()));
    let raster = font().outline_glyph(glyph).map(|g| {
        let bb = g.px_bounds();
        let (width, height) = (bb.width() as usize, bb.height() as usize);
        let mut coverage = vec![0.0f32; width * height];
        g.draw(|x, y, c| {
            if let Some(slot) = coverage.get_mut(y as usize * width + x as usize) {
                *slot = c.clamp(0.0, 1.0);
            }
        });
        Raster { left: bb.min.x.round() as i32, top: bb.min.y.round() as i32, width, height, coverage }
    });
    let raster = std::sync::Arc::new(raster);
    if let Ok(mut c) = cache.write() {
        c.insert(key, raster.clone());
    }
    raster
}

/// Lays `text` out as imageproc does (advances, kerning between outlined glyphs) and calls
/// `place(pen_x, raster)` for every visible glyph; returns the line's width and height.
fn layout(size: f32, text: &str, mut place: impl FnMut(f32, &Raster)) -> (u32, u32) {
    use ab_glyph::{Font as _, ScaleFont as _};
    let scaled = font().as_scaled(PxScale::from(size));
    let (mut w, mut h) = (0.0f32, 0usize);
    let mut last = None;
    for c in text.chars() {
        let id = scaled.glyph_id(c);
        let pen = w;
        w += scaled.h_advance(id);
        let r = raster(id, size, pen - pen.floor());
        if let Some(r) = r.as_ref() {
            if let Some(last) = last {
                w += scaled.kern(id, last);
            }
            last = Some(id);
            h = h.max(r.height);
            place(pen, r);
        }
    }
    (w as u32, h as u32)
}

/// Width and height of `text` at `size` pixels.
pub fn measure(size: f32, text: &str) -> (u32, u32) {
    layout(size, text, |_, _| {})
}

/// Draws `text` with the top-left corner of its line at (`x`, `y`), anti-aliased over the image.
pub fn draw_text(img: &mut RgbImage, color: Rgb<u8>, x: i32, y: i32, size: f32, text: &str) {
    let (iw, ih) = (img.width() as i32, img.height() as i32);
    layout(size, text, |pen, r| {
        let x0 = x + pen.floor() as i32 + r.left;
        let y0 = y + r.top;
        for gy in 0..r.height {
            let py = y0 + gy as i32;
            if py < 0 || py >= ih {
                continue;
            }
            for gx in 0..r.width {
                let px = x0 + gx as i32;
                let a = r.coverage[gy * r.width + gx];
                if px < 0 || px >= iw || a <= 0.0 {
                    continue;
                }
                let p = img.get_pixel_mut(px as u32, py as u32);
                for k in 0..3 {
                    p[k] = channel(f32::from(p[k]) * (1.0 - a) + f32::from(color[k]) * a);
                }
            }
        }
    });
}

/// Draws `text` centred horizontally on `cx`, with the top of its line at `y`.
pub fn draw_centred(img: &mut RgbImage, color: Rgb<u8>, cx: i32, y: i32, size: f32, text: &str) {
    draw_text(img, color, cx - measure(size, text).0 as i32 / 2, y, size, text);
}

/// `text` shortened with an ellipsis so it is at most `max_width` pixels wide at `size`.
pub fn truncate_to_width(text: &str, size: f32, max_width: u32) -> String {
    if measure(size, text).0 <= max_width {
        return text.to_string();
    }
    let chars: Vec<char> = text.chars().collect();
    let (mut lo, mut hi) = (0usize, chars.len());
    while lo < hi {
        let mid = (lo + hi).div_ceil(2);
        let candidate: String = chars[..mid].iter().collect::<String>() + "\u{2026}";
        if measure(size, &candidate).0 <= max_width {
            lo = mid;
        } else {
            hi = mid - 1;
        }
    }
    chars[..lo].iter().collect::<String>().trim_end().to_string() + "\u{2026}"
}

/// Breaks `text` into at most `max_lines` lines no wider than `max_width` pixels, the last
/// one ending in an ellipsis when text was cut.
pub fn wrap_text(text: &str, size: f32, max_width: u32, max_lines: usize) -> Vec<String> {
    let mut lines: Vec<String> = Vec::new();
    let mut current = String::new();
    let words: Vec<&str> = text.split_whitespace().collect();
    let mut i = 0;
    while i < words.len() {
        let candidate = if current.is_empty() { words[i].to_string() } else { format!("{current} {}", words[i]) };
        if measure(size, &candidate).0 <= max_width {
            current = candidate;
            i += 1;
        } else if current.is_empty() {
            // A single word wider than the line: cut it.
            lines.push(truncate_to_width(words[i], size, max_width));
            i += 1;
        } else {
            lines.push(std::mem::take(&mut current));
        }
        if lines.len() == max_lines {
            break;
        }
    }
    if !current.is_empty() && lines.len() < max_lines {
        lines.push(current);
        current = String::new();
    }
    let cut = i < words.len() || !current.is_empty();
    if cut && let Some(last) = lines.last_mut() {
        let shortened = truncate_to_width(&format!("{last}\u{2026}"), size, max_width);
        *last = if shortened.ends_with('\u{2026}') { shortened } else { format!("{last}\u{2026}") };
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrap_text_respects_width_and_lines() {
        let lines = wrap_text(&"word ".repeat(40), 13.0, 150, 3);
        assert_eq!(lines.len(), 3);
        assert!(lines.iter().all(|l| measure(13.0, l).0 <= 150), "{lines:?}");
        assert!(lines[2].ends_with('\u{2026}'));
        assert_eq!(wrap_text("make it red", 13.0, 150, 3), ["make it red"]);
    }
}
