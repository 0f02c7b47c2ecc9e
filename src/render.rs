//! Pictures and reports of an [`Explanation`]: the word heatmap (`words.png`), heat maps
//! over the input and edited images (`overlays/NN-word.png`, `overlays.png`), the contact
//! sheet of perturbed edits (`samples.png`), one self-contained HTML report, and a plain
//! text table for the terminal.
//!
//! Everything here is pure: functions take results and return images, bytes or strings, and
//! the caller decides where they go. Text is drawn with DejaVu Sans, embedded in the binary
//! (`assets/fonts/`), so rendering needs no font installed at run time.

use std::fmt::Write as _;
use std::sync::OnceLock;

use ab_glyph::{FontRef, PxScale};
use base64::Engine as _;
use image::{Rgb, RgbImage};
use imageproc::drawing::{draw_filled_rect_mut, draw_hollow_rect_mut};
use imageproc::rect::Rect;
use ndarray::ArrayView2;
use rayon::prelude::*;

use crate::explain::{Explanation, WordAttribution};

/// DejaVu Sans (Bitstream Vera licence, see `assets/fonts/LICENSE-DejaVu.txt`).
const FONT_BYTES: &[u8] = include_bytes!("../assets/fonts/DejaVuSans.ttf");

/// Images whose shortest side is below this are enlarged (nearest neighbour) for display.
const MIN_DISPLAY_SIDE: u32 = 256;

/// Page background of every rendered image.
const BACKGROUND: Rgb<u8> = Rgb([255, 255, 255]);
/// Main text colour.
const INK: Rgb<u8> = Rgb([33, 37, 41]);
/// Secondary text colour (captions, values, words left out of the fit).
const MUTED: Rgb<u8> = Rgb([120, 124, 130]);
/// Thin outlines around boxes and colour bars.
const OUTLINE: Rgb<u8> = Rgb([160, 164, 170]);

/// RdBu_r (matplotlib / ColorBrewer RdBu, reversed): 11 stops from −1 (blue) to +1 (red).
const RDBU_R: [[u8; 3]; 11] = [
    [5, 48, 97],
    [33, 102, 172],
    [67, 147, 195],
    [146, 197, 222],
    [209, 229, 240],
    [247, 247, 247],
    [253, 219, 199],
    [244, 165, 130],
    [214, 96, 77],
    [178, 24, 43],
    [103, 0, 31],
];

/// A picture that cannot be drawn from the inputs it was given.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    /// An image or heat map whose size differs from the base image it belongs to.
    #[error(
        "{what} is {found_width}×{found_height} pixels but the base image is \
         {expected_width}×{expected_height}; spatial maps and edits must have the base image's size"
    )]
    ShapeMismatch {
        /// What had the wrong size ("heat map", "edited image").
        what: &'static str,
        /// Width of the base image.
        expected_width: u32,
        /// Height of the base image.
        expected_height: u32,
        /// Width found.
        found_width: u32,
        /// Height found.
        found_height: u32,
    },
}

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
fn measure(size: f32, text: &str) -> (u32, u32) {
    layout(size, text, |_, _| {})
}

/// Draws `text` with the top-left corner of its line at (`x`, `y`), anti-aliased over the image.
fn draw_text(img: &mut RgbImage, color: Rgb<u8>, x: i32, y: i32, size: f32, text: &str) {
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

/// A blended channel value rounded half away from zero and clamped to 0..=255.
///
/// `f32::round` is a libm call on baseline x86-64 and was the top cost of blending. Adding one
/// half in f64 (exact for every f32 below 256, unlike in f32 where 0.49999997 + 0.5 rounds up
/// to 1) and truncating rounds the same way; the cast saturates.
fn channel(v: f32) -> u8 {
    (f64::from(v.max(0.0)) + 0.5) as u8
}

/// Fills a rectangle, ignoring empty ones.
fn fill(img: &mut RgbImage, x: i32, y: i32, w: u32, h: u32, color: Rgb<u8>) {
    if w > 0 && h > 0 {
        draw_filled_rect_mut(img, Rect::at(x, y).of_size(w, h), color);
    }
}

/// Outlines a rectangle, ignoring empty ones.
fn outline(img: &mut RgbImage, x: i32, y: i32, w: u32, h: u32, color: Rgb<u8>) {
    if w > 0 && h > 0 {
        draw_hollow_rect_mut(img, Rect::at(x, y).of_size(w, h), color);
    }
}

/// A white canvas.
fn canvas(width: u32, height: u32) -> RgbImage {
    let (w, h) = (width.max(1), height.max(1));
    // A grey background is one repeated byte: fill the buffer at once (memset) rather than
    // pixel by pixel as `RgbImage::from_pixel` does.
    if BACKGROUND[0] == BACKGROUND[1] && BACKGROUND[1] == BACKGROUND[2] {
        let raw = vec![BACKGROUND[0]; w as usize * h as usize * 3];
        if let Some(img) = RgbImage::from_raw(w, h, raw) {
            return img;
        }
    }
    RgbImage::from_pixel(w, h, BACKGROUND)
}

/// Copies `src` into `dst` with its top-left corner at (`x`, `y`), clipped to `dst`.
///
/// `imageops::replace` goes pixel by pixel through generic accessors; copying whole rows is
/// what made the overlay grid and contact sheet cheap to assemble.
fn blit(dst: &mut RgbImage, src: &RgbImage, x: i64, y: i64) {
    let (dw, dh) = (i64::from(dst.width()), i64::from(dst.height()));
    let (sw, sh) = (i64::from(src.width()), i64::from(src.height()));
    let (x0, x1) = (x.max(0), (x + sw).min(dw));
    let (y0, y1) = (y.max(0), (y + sh).min(dh));
    if x0 >= x1 || y0 >= y1 {
        return;
    }
    let row_bytes = ((x1 - x0) * 3) as usize;
    let (dst_stride, src_stride) = ((dw * 3) as usize, (sw * 3) as usize);
    let src_raw = src.as_raw();
    let dst_raw: &mut [u8] = dst;
    for row in y0..y1 {
        let d = row as usize * dst_stride + x0 as usize * 3;
        let s = (row - y) as usize * src_stride + (x0 - x) as usize * 3;
        dst_raw[d..d + row_bytes].copy_from_slice(&src_raw[s..s + row_bytes]);
    }
}

/// The integer factor that brings the shortest side of a `width`×`height` image to at least `min_side`.
fn upscale_factor(width: u32, height: u32, min_side: u32) -> u32 {
    let short = width.min(height).max(1);
    min_side.div_ceil(short).max(1)
}

/// Enlarges an image by an integer factor (nearest neighbour) so its shortest side is at least `min_side`.
fn upscale(img: &RgbImage, min_side: u32) -> RgbImage {
    let k = upscale_factor(img.width(), img.height(), min_side) as usize;
    if k == 1 {
        return img.clone();
    }
    // Whole-pixel replication, row by row: `imageops::resize` with `Nearest` computes a
    // filter per pixel and is many times slower for this integer case.
    let (w, h) = (img.width() as usize, img.height() as usize);
    let mut out = Vec::with_capacity(w * k * h * k * 3);
    for row in img.as_raw().chunks_exact(w * 3) {
        let start = out.len();
        for px in row.chunks_exact(3) {
            for _ in 0..k {
                out.extend_from_slice(px);
            }
        }
        for _ in 1..k {
            out.extend_from_within(start..start + w * k * 3);
        }
    }
    RgbImage::from_raw((w * k) as u32, (h * k) as u32, out).unwrap_or_else(|| img.clone())
}

/// Relative luminance in [0, 1], to pick readable text on a coloured box.
fn luminance(c: Rgb<u8>) -> f32 {
    (0.2126 * c[0] as f32 + 0.7152 * c[1] as f32 + 0.0722 * c[2] as f32) / 255.0
}

/// A signed number with three decimals, or in scientific notation when that would hide it.
fn fmt_signed(v: f64) -> String {
    if !v.is_finite() {
        return format!("{v}");
    }
    let a = v.abs();
    if a != 0.0 && !(1e-3..1e4).contains(&a) { format!("{v:+.2e}") } else { format!("{v:+.3}") }
}

/// [`fmt_signed`] with a typographic minus sign, for pictures.
fn fmt_signed_pretty(v: f64) -> String {
    fmt_signed(v).replacen('-', "\u{2212}", 1)
}

/// A non-negative number with four significant decimals or scientific notation.
fn fmt_plain(v: f64) -> String {
    if !v.is_finite() {
        return format!("{v}");
    }
    let a = v.abs();
    if a != 0.0 && !(1e-3..1e5).contains(&a) { format!("{v:.3e}") } else { format!("{v:.4}") }
}

/// A p-value, with small ones written as an upper bound.
fn fmt_p(p: f64) -> String {
    if !p.is_finite() {
        "n/a".to_string()
    } else if p < 1e-3 {
        "<0.001".to_string()
    } else {
        format!("{p:.3}")
    }
}

/// Largest finite |attribution|, the symmetric scale of every word colour.
fn attribution_vmax(explanation: &Explanation) -> f32 {
    explanation.words.iter().map(|w| w.attribution.abs()).filter(|a| a.is_finite()).fold(0.0, f64::max) as f32
}

/// Colour of `value` on a blue–white–red diverging map (matplotlib's RdBu_r) symmetric
/// around 0 and saturating at ±`vmax`; NaN values and a zero, negative or NaN `vmax` give the centre colour.
pub fn diverging(value: f32, vmax: f32) -> Rgb<u8> {
    let t = if value.is_nan() || vmax.is_nan() || vmax <= 0.0 || vmax.is_infinite() {
        0.0
    } else {
        (value / vmax).clamp(-1.0, 1.0)
    };
    let pos = (t + 1.0) * 0.5 * (RDBU_R.len() - 1) as f32;
    let i = (pos.floor() as usize).min(RDBU_R.len() - 2);
    let f = pos - i as f32;
    let (a, b) = (RDBU_R[i], RDBU_R[i + 1]);
    let mix = |k: usize| channel(a[k] as f32 + (b[k] as f32 - a[k] as f32) * f);
    Rgb([mix(0), mix(1), mix(2)])
}

/// A horizontal colour bar from −vmax (left) to +vmax (right).
fn draw_hbar(img: &mut RgbImage, x: i32, y: i32, w: u32, h: u32) {
    for dx in 0..w {
        let t = (dx as f32 + 0.5) / w as f32 * 2.0 - 1.0;
        fill(img, x + dx as i32, y, 1, h, diverging(t, 1.0));
    }
    outline(img, x, y, w, h, OUTLINE);
}

/// A vertical colour bar from +vmax (top) to −vmax (bottom).
fn draw_vbar(img: &mut RgbImage, x: i32, y: i32, w: u32, h: u32) {
    for dy in 0..h {
        let t = 1.0 - (dy as f32 + 0.5) / h as f32 * 2.0;
        fill(img, x, y + dy as i32, w, 1, diverging(t, 1.0));
    }
    outline(img, x, y, w, h, OUTLINE);
}

/// One laid-out piece of the instruction in [`words_image`].
enum Piece<'a> {
    /// A word, by its position in `explanation.words`.
    Word(&'a WordAttribution),
    /// Punctuation or other non-word text between words.
    Text(String),
}

/// Splits the instruction into word boxes and the punctuation between them, each with
/// whether whitespace preceded it in the original text.
fn pieces(explanation: &Explanation) -> Vec<(bool, Piece<'_>)> {
    let text = explanation.instruction.as_str();
    let mut words: Vec<&WordAttribution> = explanation.words.iter().collect();
    words.sort_by_key(|w| (w.word.start, w.word.index));
    let mut out = Vec::new();
    let mut prev = 0usize;
    let push_gap = |out: &mut Vec<(bool, Piece<'_>)>, gap: &str| {
        let trimmed = gap.trim();
        if !trimmed.is_empty() {
            let lead = gap.starts_with(char::is_whitespace);
            out.push((lead, Piece::Text(trimmed.split_whitespace().collect::<Vec<_>>().join(" "))));
        }
    };
    for w in words {
        let gap = if w.word.start >= prev { text.get(prev..w.word.start) } else { None };
        if let Some(gap) = gap {
            push_gap(&mut out, gap);
        }
        let space = gap.is_none_or(|g| g.is_empty() || g.ends_with(char::is_whitespace));
        out.push((space, Piece::Word(w)));
        let end = w.word.end.min(text.len());
        if end > prev && text.is_char_boundary(end) {
            prev = end;
        }
    }
    if let Some(tail) = text.get(prev..) {
        push_gap(&mut out, tail);
    }
    out
}

/// The gSMILE word heatmap (`words.png`): the instruction word by word, each word's box
/// coloured by its attribution, its value beneath, with a colour bar and the fit's fidelity.
pub fn words_image(explanation: &Explanation) -> RgbImage {
    const MARGIN: i32 = 28;
    const WRAP: i32 = 900;
    const WORD_SIZE: f32 = 26.0;
    const VALUE_SIZE: f32 = 15.0;
    const PAD_X: i32 = 12;
    const BOX_H: i32 = 46;
    const ROW_H: i32 = BOX_H + 6 + 20 + 18;

    let vmax = attribution_vmax(explanation);
    let width = (2 * MARGIN + WRAP) as u32;

    // Lay out first so the canvas can be sized to fit.
    struct Placed<'a> {
        x: i32,
        row: i32,
        w: i32,
        piece: Piece<'a>,
    }
    let mut placed = Vec::new();
    let (mut x, mut row) = (MARGIN, 0);
    for (space, piece) in pieces(explanation) {
        let w = match &piece {
            Piece::Word(wa) => {
                let tw = measure(WORD_SIZE, &wa.word.text).0 as i32;
                let vw = measure(VALUE_SIZE, &fmt_signed_pretty(wa.attribution)).0 as i32;
                tw.max(vw).max(24) + 2 * PAD_X
            }
            Piece::Text(t) => measure(WORD_SIZE, t).0 as i32,
        };
        let gap = if x == MARGIN {
            0
        } else if space {
            10
        } else {
            3
        };
        if x + gap + w > MARGIN + WRAP && x > MARGIN {
            x = MARGIN;
            row += 1;
        } else {
            x += gap;
        }
        placed.push(Placed { x, row, w, piece });
        x += w;
    }
    let rows = if placed.is_empty() { 1 } else { row + 1 };
    let any_unselected = explanation.words.iter().any(|w| !w.selected);

    let title_y = MARGIN - 6;
    let words_y = title_y + 34 + 26 + 18;
    let legend_y = words_y + rows * ROW_H + 8;
    let notes_y = legend_y + 14 + 26;
    let footer_y = notes_y + if any_unselected { 24 } else { 0 } + 14;
    let height = (footer_y + 24 + MARGIN - 8) as u32;
    let mut img = canvas(width, height);

    // Title and the instruction as text.
    draw_text(&mut img, INK, MARGIN, title_y, 24.0, "gSMILE word attributions");
    let subtitle = format!("\u{201c}{}\u{201d}", explanation.instruction);
    draw_text(&mut img, MUTED, MARGIN, title_y + 36, 16.0, &truncate_to_width(&subtitle, 16.0, WRAP as u32));

    // The words.
    for p in &placed {
        let y = words_y + p.row * ROW_H;
        match &p.piece {
            Piece::Word(wa) => {
                let unselected = !wa.selected;
                let fill_c = if unselected { Rgb([238, 239, 241]) } else { diverging(wa.attribution as f32, vmax) };
                fill(&mut img, p.x, y, p.w as u32, BOX_H as u32, fill_c);
                outline(&mut img, p.x, y, p.w as u32, BOX_H as u32, OUTLINE);
                let text_c = if unselected {
                    MUTED
                } else if luminance(fill_c) < 0.55 {
                    Rgb([255, 255, 255])
                } else {
                    INK
                };
                let (tw, th) = measure(WORD_SIZE, &wa.word.text);
                draw_text(
                    &mut img,
                    text_c,
                    p.x + (p.w - tw as i32) / 2,
                    y + (BOX_H - th as i32) / 2,
                    WORD_SIZE,
                    &wa.word.text,
                );
                let value = fmt_signed_pretty(wa.attribution);
                let (vw, _) = measure(VALUE_SIZE, &value);
                let value_c = if unselected { MUTED } else { INK };
                draw_text(&mut img, value_c, p.x + (p.w - vw as i32) / 2, y + BOX_H + 5, VALUE_SIZE, &value);
            }
            Piece::Text(t) => {
                let (_, th) = measure(WORD_SIZE, t);
                draw_text(&mut img, INK, p.x, y + (BOX_H - th as i32) / 2, WORD_SIZE, t);
            }
        }
    }
    if placed.is_empty() {
        draw_text(&mut img, MUTED, MARGIN, words_y + 10, 18.0, "(no words)");
    }

    // Colour bar legend.
    let bar_w = 300u32;
    draw_hbar(&mut img, MARGIN, legend_y, bar_w, 14);
    let vm = vmax as f64;
    let labels = [(fmt_signed_pretty(-vm), 0.0f32), ("0".to_string(), 0.5), (fmt_signed_pretty(vm), 1.0)];
    for (label, at) in labels {
        let (lw, _) = measure(13.0, &label);
        let lx = MARGIN + (at * bar_w as f32) as i32 - (at * lw as f32) as i32;
        draw_text(&mut img, MUTED, lx, legend_y + 17, 13.0, &label);
    }
    draw_text(
        &mut img,
        INK,
        MARGIN + bar_w as i32 + 18,
        legend_y - 2,
        15.0,
        "attribution: red moves the output toward the full edit, blue away from it",
    );
    if any_unselected {
        fill(&mut img, MARGIN, notes_y + 2, 14, 14, Rgb([238, 239, 241]));
        outline(&mut img, MARGIN, notes_y + 2, 14, 14, OUTLINE);
        draw_text(&mut img, MUTED, MARGIN + 22, notes_y, 15.0, "grey: word left out of the surrogate fit");
    }

    // Footer.
    fill(&mut img, MARGIN, footer_y - 6, WRAP as u32, 1, Rgb([222, 226, 230]));
    let footer = format!(
        "fidelity R\u{b2} = {:.3} \u{b7} MSE = {} \u{b7} {} samples \u{b7} editor {}",
        explanation.fidelity.r2,
        fmt_plain(explanation.fidelity.mse),
        explanation.samples.len(),
        explanation.editor.name
    );
    draw_text(&mut img, MUTED, MARGIN, footer_y + 2, 15.0, &truncate_to_width(&footer, 15.0, WRAP as u32));
    img
}

/// `text` shortened with an ellipsis so it is at most `max_width` pixels wide at `size`.
fn truncate_to_width(text: &str, size: f32, max_width: u32) -> String {
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
fn wrap_text(text: &str, size: f32, max_width: u32, max_lines: usize) -> Vec<String> {
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

/// Checks that a heat map has the base image's shape.
fn check_heat(base: &RgbImage, heat: &ArrayView2<f32>) -> Result<(), RenderError> {
    let (h, w) = heat.dim();
    if h != base.height() as usize || w != base.width() as usize {
        return Err(RenderError::ShapeMismatch {
            what: "heat map",
            expected_width: base.width(),
            expected_height: base.height(),
            found_width: w as u32,
            found_height: h as u32,
        });
    }
    Ok(())
}

/// A heat map (H×W, same size as `base`) coloured with [`diverging`] and blended over
/// `base`, each pixel's opacity `alpha`·√(|heat|/`vmax`) so that unchanged areas keep the base visible.
pub fn overlay(base: &RgbImage, heat: ArrayView2<f32>, vmax: f32, alpha: f32) -> Result<RgbImage, RenderError> {
    check_heat(base, &heat)?;
    let mut out = base.clone();
    if vmax.is_nan() || vmax <= 0.0 || vmax.is_infinite() {
        return Ok(out);
    }
    let alpha = if alpha.is_finite() { alpha.clamp(0.0, 1.0) } else { 0.0 };
    for (x, y, px) in out.enumerate_pixels_mut() {
        let v = heat[[y as usize, x as usize]];
        if !v.is_finite() || v == 0.0 {
            continue;
        }
        // Square root: the colour already fades toward white for small values, so a linear
        // opacity on top of that would hide moderate heat entirely.
        let a = alpha * (v.abs() / vmax).min(1.0).sqrt();
        let c = diverging(v, vmax);
        for k in 0..3 {
            px[k] = channel(px[k] as f32 * (1.0 - a) + c[k] as f32 * a);
        }
    }
    Ok(out)
}

/// One word's spatial panel (`overlays/NN-word.png`): its heat map over the input and over
/// the edited image side by side, a vertical colour bar, and a caption with the word's attribution.
pub fn word_panel(
    input: &RgbImage,
    edited: &RgbImage,
    heat: ArrayView2<f32>,
    vmax: f32,
    word: &WordAttribution,
) -> Result<RgbImage, RenderError> {
    const MARGIN: i32 = 16;
    const GAP: i32 = 16;
    const ALPHA: f32 = 0.7;
    if edited.dimensions() != input.dimensions() {
        return Err(RenderError::ShapeMismatch {
            what: "edited image",
            expected_width: input.width(),
            expected_height: input.height(),
            found_width: edited.width(),
            found_height: edited.height(),
        });
    }
    let left = upscale(&overlay(input, heat, vmax, ALPHA)?, MIN_DISPLAY_SIDE);
    let right = upscale(&overlay(edited, heat, vmax, ALPHA)?, MIN_DISPLAY_SIDE);
    let (iw, ih) = (left.width() as i32, left.height() as i32);

    let vm = if vmax.is_finite() && vmax > 0.0 { vmax as f64 } else { 0.0 };
    let bar_labels = [fmt_signed_pretty(vm), "0".to_string(), fmt_signed_pretty(-vm)];
    let label_w = bar_labels.iter().map(|l| measure(13.0, l).0 as i32).max().unwrap_or(0);
    let caption = format!(
        "word \u{2018}{}\u{2019} \u{b7} attribution {} [{}, {}]",
        word.word.text,
        fmt_signed_pretty(word.attribution),
        fmt_signed_pretty(word.ci_low),
        fmt_signed_pretty(word.ci_high)
    );
    let p = fmt_p(word.p_value);
    let p = if p.starts_with('<') { format!("p {p}") } else { format!("p = {p}") };
    let mut detail = format!("rank {} \u{b7} {p}", word.rank);
    if !word.selected {
        detail.push_str(" \u{b7} left out of the surrogate fit");
    }
    let bar_x = MARGIN + 2 * iw + GAP + 18;
    let content_w = bar_x + 16 + 8 + label_w + MARGIN;
    let width = content_w.max(MARGIN * 2 + measure(18.0, &caption).0 as i32).min(4 * iw + 200);
    let img_y = MARGIN + 24;
    let caption_y = img_y + ih + 14;
    let height = caption_y + 26 + 22 + MARGIN - 4;
    let mut img = canvas(width as u32, height as u32);

    draw_text(&mut img, MUTED, MARGIN, MARGIN, 15.0, "input + heat");
    draw_text(&mut img, MUTED, MARGIN + iw + GAP, MARGIN, 15.0, "full edit + heat");
    blit(&mut img, &left, MARGIN as i64, img_y as i64);
    blit(&mut img, &right, (MARGIN + iw + GAP) as i64, img_y as i64);
    outline(&mut img, MARGIN - 1, img_y - 1, iw as u32 + 2, ih as u32 + 2, OUTLINE);
    outline(&mut img, MARGIN + iw + GAP - 1, img_y - 1, iw as u32 + 2, ih as u32 + 2, OUTLINE);

    draw_vbar(&mut img, bar_x, img_y, 16, ih as u32);
    let (_, lh) = measure(13.0, "0");
    for (i, label) in bar_labels.iter().enumerate() {
        let ly = match i {
            0 => img_y,
            1 => img_y + (ih - lh as i32) / 2,
            _ => img_y + ih - lh as i32,
        };
        draw_text(&mut img, MUTED, bar_x + 16 + 6, ly, 13.0, label);
    }

    let max_caption_w = (width - 2 * MARGIN).max(1) as u32;
    draw_text(&mut img, INK, MARGIN, caption_y, 18.0, &truncate_to_width(&caption, 18.0, max_caption_w));
    draw_text(&mut img, MUTED, MARGIN, caption_y + 26, 14.0, &truncate_to_width(&detail, 14.0, max_caption_w));
    Ok(img)
}

/// Panels laid out on a white grid of `columns` columns (`overlays.png`), each in a cell
/// the size of the largest panel.
pub fn overlay_grid(panels: &[RgbImage], columns: usize) -> RgbImage {
    const GAP: u32 = 12;
    if panels.is_empty() {
        return canvas(16, 16);
    }
    let columns = columns.clamp(1, panels.len());
    let rows = panels.len().div_ceil(columns);
    let cw = panels.iter().map(|p| p.width()).max().unwrap_or(1);
    let ch = panels.iter().map(|p| p.height()).max().unwrap_or(1);
    let width = GAP + columns as u32 * (cw + GAP);
    let height = GAP + rows as u32 * (ch + GAP);
    let mut img = canvas(width, height);
    for (i, p) in panels.iter().enumerate() {
        let x = GAP + (i % columns) as u32 * (cw + GAP);
        let y = GAP + (i / columns) as u32 * (ch + GAP);
        blit(&mut img, p, x as i64, y as i64);
    }
    img
}

/// Contact sheet of the perturbed edits (`samples.png`): each image with its instruction
/// (wrapped, truncated) and its distance beneath, `columns` to a row.
pub fn contact_sheet(items: &[(String, f64, RgbImage)], columns: usize) -> RgbImage {
    const GAP: u32 = 14;
    const TEXT_SIZE: f32 = 13.0;
    const LINE_H: u32 = 17;
    const LINES: usize = 3;
    if items.is_empty() {
        return canvas(16, 16);
    }
    let thumbs: Vec<RgbImage> = items.par_iter().map(|(_, _, img)| upscale(img, 128)).collect();
    let tw = thumbs.iter().map(|t| t.width()).max().unwrap_or(1).max(160);
    let th = thumbs.iter().map(|t| t.height()).max().unwrap_or(1);
    let cell_h = th + 8 + LINES as u32 * LINE_H + LINE_H + 4;
    let columns = columns.clamp(1, items.len());
    let rows = items.len().div_ceil(columns);
    let width = GAP + columns as u32 * (tw + GAP);
    let height = GAP + rows as u32 * (cell_h + GAP);
    // Cells are independent: draw them in parallel, then place them.
    let cells: Vec<RgbImage> = items
        .par_iter()
        .zip(&thumbs)
        .enumerate()
        .map(|(i, ((instruction, distance, _), thumb))| {
            let mut cell = canvas(tw + 2, cell_h);
            let tx = 1 + (tw - thumb.width()) / 2;
            blit(&mut cell, thumb, tx as i64, 1);
            outline(&mut cell, tx as i32 - 1, 0, thumb.width() + 2, thumb.height() + 2, OUTLINE);
            let mut ty = 1 + th + 8;
            if instruction.trim().is_empty() {
                draw_text(&mut cell, MUTED, 1, ty as i32, TEXT_SIZE, "(empty instruction)");
            } else {
                for line in wrap_text(instruction, TEXT_SIZE, tw, LINES) {
                    draw_text(&mut cell, INK, 1, ty as i32, TEXT_SIZE, &line);
                    ty += LINE_H;
                }
            }
            let d = format!("#{i} \u{b7} d = {}", fmt_plain(*distance));
            draw_text(&mut cell, MUTED, 1, (1 + th + 8 + LINES as u32 * LINE_H) as i32, TEXT_SIZE, &d);
            cell
        })
        .collect();
    let mut img = canvas(width, height);
    for (i, cell) in cells.iter().enumerate() {
        let x = GAP + (i % columns) as u32 * (tw + GAP);
        let y = GAP + (i / columns) as u32 * (cell_h + GAP);
        blit(&mut img, cell, x as i64 - 1, y as i64 - 1);
    }
    img
}

/// Width and height of `text` drawn at `size` pixels in the embedded font, for callers
/// (the evaluator's charts) that lay out their own pictures.
pub fn label_size(size: f32, text: &str) -> (u32, u32) {
    measure(size, text)
}

/// Draws `text` in the embedded font with its line's top-left corner at (`x`, `y`), so
/// other modules' charts share the reports' typeface without embedding it again.
pub fn draw_label(img: &mut RgbImage, color: Rgb<u8>, x: i32, y: i32, size: f32, text: &str) {
    draw_text(img, color, x, y, size, text);
}

/// The image encoded as PNG; an image with a zero side, which PNG cannot hold, is encoded as one white pixel.
pub fn png_bytes(img: &RgbImage) -> Vec<u8> {
    let blank;
    let img = if img.width() == 0 || img.height() == 0 {
        blank = canvas(1, 1);
        &blank
    } else {
        img
    };
    // Fast deflate with adaptive row filters: these are flat-colour charts and small pictures,
    // where it costs a few percent of file size and saves most of the encoding time.
    // Room for a typical compressed size up front, instead of growing by copying.
    let mut bytes = Vec::with_capacity(img.as_raw().len() / 4 + 1024);
    let encoder = image::codecs::png::PngEncoder::new_with_quality(
        &mut bytes,
        image::codecs::png::CompressionType::Fast,
        image::codecs::png::FilterType::Sub,
    );
    img.write_with_encoder(encoder).expect("PNG encoding into memory cannot fail");
    bytes
}

/// The PNG files a report inlines; an empty vector leaves that picture out.
#[derive(Debug, Clone, Default)]
pub struct ReportImages {
    /// [`words_image`] as PNG.
    pub words: Vec<u8>,
    /// [`overlay_grid`] of every word's panel as PNG; inlined only when `per_word` is empty.
    pub overlays: Vec<u8>,
    /// [`contact_sheet`] of the perturbed edits as PNG.
    pub samples: Vec<u8>,
    /// The explained input image as PNG.
    pub input: Vec<u8>,
    /// The full instruction's edit as PNG.
    pub edited: Vec<u8>,
    /// Each word's [`word_panel`] as PNG, with a label (the word or its file name).
    pub per_word: Vec<(String, Vec<u8>)>,
}

/// `s` with the five HTML special characters escaped, safe in text and quoted attributes.
pub fn escape_html(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A `<figure>` holding an inlined PNG captioned with `label`, on its own line.
fn figure(png: &[u8], label: &str, class: &str) -> String {
    format!("<figure>{}<figcaption>{}</figcaption></figure>\n", img_tag(png, label, class), escape_html(label))
}

/// An `<img>` with the PNG inlined as a data URI, or nothing for empty bytes.
fn img_tag(png: &[u8], alt: &str, class: &str) -> String {
    if png.is_empty() {
        return String::new();
    }
    let b64 = base64::engine::general_purpose::STANDARD.encode(png);
    format!("<img class=\"{}\" alt=\"{}\" src=\"data:image/png;base64,{b64}\">", escape_html(class), escape_html(alt))
}

/// The first 12 hex digits of a hash, enough to tell bundles apart.
fn short_hash(h: &str) -> &str {
    h.get(..12).unwrap_or(h)
}

/// CSS `rgb()` of a colour.
fn css_rgb(c: Rgb<u8>) -> String {
    format!("rgb({},{},{})", c[0], c[1], c[2])
}

/// Inline stylesheet of the HTML report.
const REPORT_CSS: &str = r#"
:root { --ink:#212529; --muted:#6c757d; --line:#dee2e6; --bg:#f8f9fa; }
* { box-sizing: border-box; }
body { margin:0; background:var(--bg); color:var(--ink);
  font: 15px/1.5 "DejaVu Sans", "Segoe UI", Helvetica, Arial, sans-serif; }
main { max-width: 1100px; margin: 0 auto; padding: 24px; }
header { background:#fff; border:1px solid var(--line); border-radius:8px; padding:20px 24px; margin-bottom:20px; }
h1 { font-size: 22px; margin: 0 0 4px; }
h2 { font-size: 18px; margin: 0 0 12px; }
h3 { font-size: 15px; margin: 16px 0 8px; }
.instruction { font-size: 24px; margin: 4px 0 12px; }
section { background:#fff; border:1px solid var(--line); border-radius:8px; padding:20px 24px; margin-bottom:20px; }
dl.meta { display:grid; grid-template-columns: max-content 1fr; gap: 2px 16px; margin:0; font-size:14px; }
dl.meta dt { color:var(--muted); }
dl.meta dd { margin:0; word-break: break-all; }
code, pre, .mono { font-family: "DejaVu Sans Mono", Menlo, Consolas, monospace; font-size: 13px; }
pre { background:var(--bg); border:1px solid var(--line); border-radius:6px; padding:12px; overflow:auto; }
.pair { display:flex; gap:24px; flex-wrap:wrap; }
figure { margin:0; }
figcaption { color:var(--muted); font-size:13px; margin-top:4px; }
img { max-width:100%; height:auto; }
img.pixel { width:256px; image-rendering: pixelated; border:1px solid var(--line); }
.panels { display:flex; flex-wrap:wrap; gap:16px; }
.panels figure { flex: 0 1 520px; }
table { border-collapse: collapse; width:100%; font-size:14px; }
th, td { text-align:left; padding:4px 10px; border-bottom:1px solid var(--line); vertical-align: middle; }
th { background:var(--bg); font-weight:600; }
td.num, th.num { text-align:right; font-variant-numeric: tabular-nums; white-space: nowrap; }
tr.unselected td { color: var(--muted); }
.bar { position:relative; width:160px; height:14px; background:var(--bg); border:1px solid var(--line); }
.bar .mid { position:absolute; left:50%; top:-2px; bottom:-2px; width:1px; background:#adb5bd; }
.bar .fill { position:absolute; top:0; bottom:0; }
.kv { display:grid; grid-template-columns: repeat(auto-fill, minmax(160px, 1fr)); gap:12px; }
.kv div { background:var(--bg); border:1px solid var(--line); border-radius:6px; padding:8px 12px; }
.kv b { display:block; font-size:20px; }
.kv span { color:var(--muted); font-size:13px; }
.note { color:var(--muted); font-size:13px; }
footer { color:var(--muted); font-size:12px; text-align:center; padding: 8px 0 24px; }
"#;

/// One self-contained HTML report of an explanation: its pictures inlined as data URIs (the
/// per-word panels, or their grid when there are none), the stylesheet inline, no external
/// requests, and every user-supplied string escaped.
pub fn report_html(explanation: &Explanation, images: &ReportImages) -> String {
    const MAX_SAMPLE_ROWS: usize = 64;
    let e = explanation;
    let vmax = attribution_vmax(e);
    let inlined = [&images.words, &images.overlays, &images.samples, &images.input, &images.edited]
        .into_iter()
        .chain(images.per_word.iter().map(|(_, png)| png))
        .map(Vec::len)
        .sum::<usize>();
    let mut h = String::with_capacity(64 * 1024 + inlined * 4 / 3);
    // `write!` into a String cannot fail; results are ignored below for that reason.
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>gSMILE \u{b7} {}</title>\n<style>{REPORT_CSS}</style>\n</head>\n<body>\n<main>\n",
        escape_html(&e.instruction)
    );

    // Header.
    let _ = write!(
        h,
        "<header>\n<h1>gSMILE explanation</h1>\n<p class=\"instruction\">\u{201c}{}\u{201d}</p>\n<dl class=\"meta\">\n",
        escape_html(&e.instruction)
    );
    let mut meta = |k: &str, v: String| {
        let _ = writeln!(h, "<dt>{}</dt><dd>{v}</dd>", escape_html(k));
    };
    meta(
        "image",
        format!(
            "{} <span class=\"note\">({}\u{d7}{} \u{b7} sha256 <code>{}</code>)</span>",
            escape_html(&e.image.path),
            e.image.width,
            e.image.height,
            escape_html(short_hash(&e.image.sha256))
        ),
    );
    meta(
        "editor",
        format!(
            "{} <span class=\"note\">({} \u{b7} <code>{}</code>)</span>",
            escape_html(&e.editor.name),
            escape_html(&e.editor.path),
            escape_html(short_hash(&e.editor.sha256))
        ),
    );
    meta(
        "encoder",
        match &e.encoder {
            Some(m) => format!(
                "{} <span class=\"note\">({} \u{b7} <code>{}</code>)</span>",
                escape_html(&m.name),
                escape_html(&m.path),
                escape_html(short_hash(&m.sha256))
            ),
            None => "<span class=\"note\">none</span>".to_string(),
        },
    );
    meta(
        "gsmile",
        format!("{} <span class=\"note\">({})</span>", escape_html(&e.gsmile_version), escape_html(&e.schema)),
    );
    h.push_str("</dl>\n</header>\n");

    // Input vs full edit.
    if !images.input.is_empty() || !images.edited.is_empty() {
        h.push_str("<section id=\"edit\">\n<h2>Input and full edit</h2>\n<div class=\"pair\">\n");
        for (png, label) in [(&images.input, "input"), (&images.edited, "full instruction's edit")] {
            if !png.is_empty() {
                h.push_str(&figure(png, label, "pixel"));
            }
        }
        h.push_str("</div>\n</section>\n");
    }

    // Word attributions.
    h.push_str("<section id=\"words\">\n<h2>Word attributions</h2>\n");
    h.push_str(
        "<p class=\"note\">Positive (red): the word moves the output toward the full edit; \
         negative (blue): away from it. Intervals are bootstrap intervals.</p>\n",
    );
    h.push_str(&img_tag(&images.words, "word attributions", "words"));
    h.push_str(
        "\n<table>\n<thead><tr><th class=\"num\">rank</th><th>word</th><th></th>\
         <th class=\"num\">attribution</th><th class=\"num\">interval</th><th class=\"num\">p-value</th>\
         <th>selected</th></tr></thead>\n<tbody>\n",
    );
    let mut ranked: Vec<&WordAttribution> = e.words.iter().collect();
    ranked.sort_by_key(|w| (w.rank, w.word.index));
    for w in &ranked {
        let frac = if vmax > 0.0 && w.attribution.is_finite() {
            (w.attribution.abs() / vmax as f64).min(1.0) * 50.0
        } else {
            0.0
        };
        let side = if w.attribution >= 0.0 { "left:50%" } else { "right:50%" };
        let color = css_rgb(diverging(w.attribution as f32, vmax));
        let _ = writeln!(
            h,
            "<tr{}><td class=\"num\">{}</td><td><b>{}</b></td>\
             <td><div class=\"bar\"><div class=\"fill\" style=\"{side};width:{frac:.1}%;background:{color}\"></div>\
             <div class=\"mid\"></div></div></td>\
             <td class=\"num\">{}</td><td class=\"num\">[{}, {}]</td><td class=\"num\">{}</td><td>{}</td></tr>",
            if w.selected { "" } else { " class=\"unselected\"" },
            w.rank,
            escape_html(&w.word.text),
            escape_html(&fmt_signed(w.attribution)),
            escape_html(&fmt_signed(w.ci_low)),
            escape_html(&fmt_signed(w.ci_high)),
            escape_html(&fmt_p(w.p_value)),
            if w.selected { "yes" } else { "no" }
        );
    }
    h.push_str("</tbody>\n</table>\n</section>\n");

    // Spatial heat maps.
    h.push_str("<section id=\"spatial\">\n<h2>Where each word acts</h2>\n");
    if images.overlays.is_empty() && images.per_word.is_empty() {
        h.push_str("<p class=\"note\">Spatial heat maps were not computed for this explanation.</p>\n");
    } else {
        h.push_str(
            "<p class=\"note\">Per-pixel attribution of each word over the input and the full edit: \
             red where the word causes the change, blue where it counteracts it.</p>\n",
        );
        // The grid is the per-word panels side by side: inline one or the other, not both.
        if images.per_word.is_empty() {
            h.push_str(&img_tag(&images.overlays, "spatial heat maps of every word", "overlays"));
        } else {
            h.push_str("<div class=\"panels\">\n");
            for (label, png) in &images.per_word {
                h.push_str(&figure(png, label, "panel"));
            }
            h.push_str("</div>\n");
        }
    }
    h.push_str("</section>\n");

    // Fidelity.
    let _ = write!(
        h,
        "<section id=\"fidelity\">\n<h2>Surrogate fidelity</h2>\n<div class=\"kv\">\n\
         <div><b>{:.4}</b><span>weighted R\u{b2}</span></div>\n\
         <div><b>{}</b><span>weighted MSE</span></div>\n\
         <div><b>{}</b><span>intercept</span></div>\n\
         <div><b>{}</b><span>kernel width \u{3c3}</span></div>\n</div>\n</section>\n",
        e.fidelity.r2,
        escape_html(&fmt_plain(e.fidelity.mse)),
        escape_html(&fmt_signed(e.intercept)),
        escape_html(&fmt_plain(e.kernel_width)),
    );

    // Samples.
    let _ = write!(h, "<section id=\"samples\">\n<h2>Samples ({})</h2>\n", e.samples.len());
    h.push_str(&img_tag(&images.samples, "perturbed edits", "samples"));
    h.push_str(
        "\n<table>\n<thead><tr><th class=\"num\">#</th><th>mask</th><th>instruction</th>\
         <th class=\"num\">distance</th><th class=\"num\">target</th><th class=\"num\">weight</th>\
         <th class=\"num\">prediction</th></tr></thead>\n<tbody>\n",
    );
    for (i, s) in e.samples.iter().take(MAX_SAMPLE_ROWS).enumerate() {
        let _ = writeln!(
            h,
            "<tr><td class=\"num\">{i}</td><td class=\"mono\">{}</td><td>{}</td><td class=\"num\">{}</td>\
             <td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td></tr>",
            escape_html(&s.mask),
            escape_html(&s.instruction),
            escape_html(&fmt_plain(s.distance)),
            escape_html(&fmt_signed(s.target)),
            escape_html(&fmt_plain(s.weight)),
            escape_html(&fmt_signed(s.prediction)),
        );
    }
    h.push_str("</tbody>\n</table>\n");
    if e.samples.len() > MAX_SAMPLE_ROWS {
        let _ = writeln!(
            h,
            "<p class=\"note\">First {MAX_SAMPLE_ROWS} of {} samples; all are in explanation.json.</p>",
            e.samples.len()
        );
    }
    h.push_str("</section>\n");

    // Configuration.
    let config = serde_json::to_string_pretty(&e.config).unwrap_or_else(|err| format!("(cannot serialise: {err})"));
    let _ =
        write!(h, "<section id=\"config\">\n<h2>Configuration</h2>\n<pre>{}</pre>\n</section>\n", escape_html(&config));

    // Counts and timings.
    let c = &e.counts;
    let t = &e.timings;
    let _ = write!(
        h,
        "<section id=\"run\">\n<h2>Work and time</h2>\n<div class=\"kv\">\n\
         <div><b>{}</b><span>words</span></div>\n<div><b>{}</b><span>samples</span></div>\n\
         <div><b>{}</b><span>distinct edits</span></div>\n<div><b>{}</b><span>cached edits</span></div>\n</div>\n\
         <h3>Timings (seconds)</h3>\n<table>\n<thead><tr><th>stage</th><th class=\"num\">seconds</th></tr></thead>\n<tbody>\n",
        c.words, c.samples, c.distinct_edits, c.cached_edits
    );
    for (stage, secs) in [
        ("editor", t.editor),
        ("encoder", t.encoder),
        ("distance", t.distance),
        ("surrogate", t.surrogate),
        ("spatial", t.spatial),
        ("total", t.total),
    ] {
        let _ = writeln!(h, "<tr><td>{stage}</td><td class=\"num\">{secs:.3}</td></tr>");
    }
    h.push_str("</tbody>\n</table>\n</section>\n");

    let _ = write!(
        h,
        "<footer>Made by gsmile {}. This file is self-contained: it loads nothing from elsewhere.</footer>\n\
         </main>\n</body>\n</html>\n",
        escape_html(&e.gsmile_version)
    );
    h
}

/// The ranked words as a plain-text table about `width` columns wide: signed bars of block
/// characters scaled to the largest |attribution|, value, interval and p-value, then the fit's fidelity.
pub fn terminal_table(explanation: &Explanation, width: usize) -> String {
    let e = explanation;
    let vmax = attribution_vmax(e) as f64;
    let mut ranked: Vec<&WordAttribution> = e.words.iter().collect();
    ranked.sort_by_key(|w| (w.rank, w.word.index));

    let word_w = ranked.iter().map(|w| w.word.text.chars().count()).max().unwrap_or(4).clamp(4, 24);
    let rows: Vec<(String, String, String, String)> = ranked
        .iter()
        .map(|w| {
            (
                fmt_signed(w.attribution),
                format!("[{}, {}]", fmt_signed(w.ci_low), fmt_signed(w.ci_high)),
                fmt_p(w.p_value),
                if w.selected { String::new() } else { "  not selected".to_string() },
            )
        })
        .collect();
    let value_w = rows.iter().map(|r| r.0.len()).max().unwrap_or(0).max(11);
    let ci_w = rows.iter().map(|r| r.1.len()).max().unwrap_or(0).max(8);
    let p_w = 7;
    // rank(4) + 2 + word + 2 + bars + 2 + value + 2 + ci + 2 + p
    let fixed = 4 + 2 + word_w + 2 + 1 + 2 + value_w + 2 + ci_w + 2 + p_w;
    let half = (width.saturating_sub(fixed) / 2).clamp(4, 40);

    let mut out = String::new();
    let _ = writeln!(out, "gSMILE word attributions for \"{}\"", e.instruction);
    let _ = writeln!(
        out,
        "{:>4}  {:<word_w$}  {:^bars$}  {:>value_w$}  {:<ci_w$}  {:>p_w$}",
        "rank",
        "word",
        "- away | toward +",
        "attribution",
        "interval",
        "p",
        bars = 2 * half + 1
    );
    for (w, (value, ci, p, note)) in ranked.iter().zip(&rows) {
        let (neg, pos) = bars(w.attribution, vmax, half);
        let word: String = if w.word.text.chars().count() > word_w {
            w.word.text.chars().take(word_w - 1).chain(std::iter::once('\u{2026}')).collect()
        } else {
            w.word.text.clone()
        };
        let _ = writeln!(
            out,
            "{:>4}  {:<word_w$}  {neg}\u{2502}{pos}  {value:>value_w$}  {ci:<ci_w$}  {p:>p_w$}{note}",
            w.rank, word
        );
    }
    if ranked.is_empty() {
        let _ = writeln!(out, "      (no words)");
    }
    let _ = writeln!(
        out,
        "fidelity: R\u{b2} = {:.3}, MSE = {}, intercept = {}, {} samples",
        e.fidelity.r2,
        fmt_plain(e.fidelity.mse),
        fmt_signed(e.intercept),
        e.samples.len()
    );
    out
}

/// The two halves of a signed bar, each exactly `half` characters: negative values grow
/// leftwards from the centre, positive ones rightwards, in half-character steps.
fn bars(value: f64, vmax: f64, half: usize) -> (String, String) {
    let steps = if vmax > 0.0 && value.is_finite() {
        ((value.abs() / vmax).min(1.0) * (2 * half) as f64).round() as usize
    } else {
        0
    };
    let (full, halfblock) = (steps / 2, steps % 2 == 1);
    let mut bar = "\u{2588}".repeat(full);
    if value >= 0.0 {
        if halfblock {
            bar.push('\u{258c}');
        }
        let len = full + halfblock as usize;
        (" ".repeat(half), bar + &" ".repeat(half - len))
    } else {
        if halfblock {
            bar.insert(0, '\u{2590}');
        }
        let len = full + halfblock as usize;
        (" ".repeat(half - len) + &bar, " ".repeat(half))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::explain::{Counts, ExplainConfig, Fidelity, ImageInfo, ModelInfo, SCHEMA, SampleRecord, Timings};
    use crate::perturb::Word;
    use ndarray::Array2;

    #[test]
    fn canvas_is_background_everywhere_and_never_empty() {
        let c = canvas(7, 3);
        assert_eq!(c.dimensions(), (7, 3));
        assert!(c.pixels().all(|p| *p == BACKGROUND));
        assert_eq!(canvas(0, 0).dimensions(), (1, 1));
    }

    #[test]
    fn channel_rounds_like_round_and_clamps() {
        let edge = [0.49999997f32, 1.4999999, 254.49998, 254.5, 2.5];
        for v in (0..=5120).map(|i| i as f32 * 0.05 - 1.0).chain(edge) {
            assert_eq!(channel(v), v.round().clamp(0.0, 255.0) as u8, "{v}");
        }
        assert_eq!(channel(300.0), 255);
        assert_eq!(channel(f32::NAN), 0);
    }

    #[test]
    fn blit_matches_imageops_replace_including_clipping() {
        let src = RgbImage::from_fn(7, 5, |x, y| Rgb([x as u8 * 30, y as u8 * 40, (x * y) as u8]));
        for (x, y) in [(0, 0), (3, 2), (-2, -3), (9, 1), (-7, 0), (12, 12), (1, -5), (5, 6)] {
            let mut ours = RgbImage::from_pixel(10, 8, Rgb([1, 2, 3]));
            let mut theirs = ours.clone();
            blit(&mut ours, &src, x, y);
            image::imageops::replace(&mut theirs, &src, x, y);
            assert_eq!(ours, theirs, "offset ({x}, {y})");
        }
    }

    /// A three-word explanation with both signs and one word left out of the fit.
    fn explanation(instruction: &str) -> Explanation {
        let spans: Vec<(usize, usize)> = {
            // Words by ASCII whitespace, trailing punctuation left out of the span.
            let mut out = Vec::new();
            let mut start = None;
            for (i, c) in instruction.char_indices().chain(std::iter::once((instruction.len(), ' '))) {
                let wordy = c.is_alphanumeric() || c == '<' || c == '>' || c == '/';
                match (start, wordy) {
                    (None, true) => start = Some(i),
                    (Some(s), false) => {
                        out.push((s, i));
                        start = None;
                    }
                    _ => {}
                }
            }
            out
        };
        let values = [0.42, -0.17, 0.05, 0.9, -0.3];
        let words: Vec<WordAttribution> = spans
            .iter()
            .enumerate()
            .map(|(index, &(start, end))| {
                let a = values[index % values.len()];
                WordAttribution {
                    word: Word { index, text: instruction[start..end].to_string(), start, end },
                    attribution: a,
                    ci_low: a - 0.1,
                    ci_high: a + 0.1,
                    p_value: 0.01 * (index + 1) as f64,
                    rank: 0,
                    selected: index != 2,
                }
            })
            .collect();
        let mut words = words;
        let mut order: Vec<usize> = (0..words.len()).collect();
        order.sort_by(|&a, &b| words[b].attribution.abs().total_cmp(&words[a].attribution.abs()));
        for (r, &i) in order.iter().enumerate() {
            words[i].rank = r + 1;
        }
        let samples = (0..5)
            .map(|i| SampleRecord {
                mask: "1".repeat(words.len()),
                instruction: if i == 4 { String::new() } else { instruction.to_string() },
                distance: 0.1 * i as f64,
                target: -0.1 * i as f64,
                weight: 1.0 / (1.0 + i as f64),
                instruction_distance: 0.05 * i as f64,
                prediction: -0.09 * i as f64,
            })
            .collect();
        Explanation {
            schema: SCHEMA.to_string(),
            gsmile_version: "0.1.0".to_string(),
            instruction: instruction.to_string(),
            image: ImageInfo { path: "scene-01.png".into(), sha256: "ab".repeat(32), width: 64, height: 64 },
            editor: ModelInfo {
                name: "toy-editor".into(),
                path: "onnx/editor".into(),
                sha256: "cd".repeat(32),
                params: serde_json::Value::Null,
            },
            encoder: None,
            config: ExplainConfig::default(),
            kernel_width: 0.25,
            words,
            intercept: -0.5,
            fidelity: Fidelity { r2: 0.91, mse: 0.0012 },
            samples,
            counts: Counts { words: 3, samples: 5, distinct_edits: 5, cached_edits: 0 },
            timings: Timings::default(),
        }
    }

    fn is_red(c: &Rgb<u8>) -> bool {
        c[0] as i32 > c[2] as i32 + 60 && c[0] as i32 > c[1] as i32 + 60
    }

    fn is_blue(c: &Rgb<u8>) -> bool {
        c[2] as i32 > c[0] as i32 + 60
    }

    #[test]
    fn diverging_endpoints_and_centre() {
        assert!(is_blue(&diverging(-1.0, 1.0)));
        assert!(is_red(&diverging(2.0, 2.0)));
        assert!(is_blue(&diverging(-5.0, 2.0)), "values beyond vmax saturate");
        let white = diverging(0.0, 1.0);
        assert!(white.0.iter().all(|&v| v >= 240), "{white:?}");
        assert_eq!(diverging(f32::NAN, 1.0), white);
        assert_eq!(diverging(1.0, 0.0), white);
        assert_eq!(diverging(1.0, f32::NAN), white);
        // Symmetric: same distance from the centre on both sides.
        let (r, b) = (diverging(0.5, 1.0), diverging(-0.5, 1.0));
        assert!(r[0] > r[2] && b[2] > b[0]);
    }

    #[test]
    fn words_image_has_both_signs() {
        let img = words_image(&explanation("make the car red, please"));
        assert!(img.width() > 0 && img.height() > 0);
        assert!(img.width() <= 1000);
        assert!(img.pixels().any(is_red));
        assert!(img.pixels().any(is_blue));
    }

    #[test]
    fn words_image_wraps_long_instructions() {
        let short = words_image(&explanation("make it red"));
        let long = words_image(&explanation(&"make the small car next to the big house bright red ".repeat(4)));
        assert_eq!(short.width(), long.width());
        assert!(long.height() > short.height());
    }

    #[test]
    fn words_image_survives_no_words() {
        let mut e = explanation("");
        e.words.clear();
        let img = words_image(&e);
        assert!(img.width() > 0 && img.height() > 0);
    }

    #[test]
    fn pieces_keep_punctuation_between_words() {
        let e = explanation("make the car red, please!");
        let texts: Vec<String> = pieces(&e)
            .into_iter()
            .map(|(_, p)| match p {
                Piece::Word(w) => w.word.text.clone(),
                Piece::Text(t) => format!("<{t}>"),
            })
            .collect();
        assert_eq!(texts, ["make", "the", "car", "red", "<,>", "please", "<!>"]);
    }

    #[test]
    fn overlay_of_zero_heat_is_the_base() {
        let base = RgbImage::from_fn(8, 6, |x, y| Rgb([x as u8 * 20, y as u8 * 30, 99]));
        let heat = Array2::<f32>::zeros((6, 8));
        assert_eq!(overlay(&base, heat.view(), 1.0, 0.8).unwrap(), base);
        // A zero vmax leaves the base too instead of dividing by zero.
        let ones = Array2::<f32>::ones((6, 8));
        assert_eq!(overlay(&base, ones.view(), 0.0, 0.8).unwrap(), base);
    }

    #[test]
    fn overlay_colours_positive_red_and_negative_blue() {
        let base = RgbImage::from_pixel(4, 2, Rgb([128, 128, 128]));
        let mut heat = Array2::<f32>::zeros((2, 4));
        heat[[0, 0]] = 1.0;
        heat[[1, 3]] = -1.0;
        let out = overlay(&base, heat.view(), 1.0, 1.0).unwrap();
        assert!(is_red(out.get_pixel(0, 0)));
        assert!(is_blue(out.get_pixel(3, 1)));
        assert_eq!(out.get_pixel(1, 0), &Rgb([128, 128, 128]));
    }

    #[test]
    fn shape_mismatch_is_an_error() {
        let base = RgbImage::new(8, 6);
        let heat = Array2::<f32>::zeros((8, 6));
        let err = overlay(&base, heat.view(), 1.0, 0.5).unwrap_err();
        assert!(err.to_string().contains("6×8"), "{err}");
        let e = explanation("make the car red");
        let ok_heat = Array2::<f32>::zeros((6, 8));
        assert!(word_panel(&base, &RgbImage::new(8, 8), ok_heat.view(), 1.0, &e.words[0]).is_err());
        assert!(word_panel(&base, &base, heat.view(), 1.0, &e.words[0]).is_err());
    }

    #[test]
    fn word_panel_is_upscaled_and_coloured() {
        let base = RgbImage::from_pixel(64, 64, Rgb([90, 160, 90]));
        let heat = Array2::from_shape_fn((64, 64), |(y, x)| {
            if x < 32 {
                1.0
            } else if y < 16 {
                -0.5
            } else {
                0.0
            }
        });
        let e = explanation("make the car red");
        let panel = word_panel(&base, &base, heat.view(), 1.0, &e.words[0]).unwrap();
        assert!(panel.width() >= 2 * 256 && panel.height() >= 256);
        assert!(panel.pixels().any(is_red));
        assert!(panel.pixels().any(is_blue));
    }

    #[test]
    fn grid_and_contact_sheet_sizes() {
        let panel = RgbImage::from_pixel(100, 50, Rgb([1, 2, 3]));
        let grid = overlay_grid(&[panel.clone(), panel.clone(), panel], 2);
        assert_eq!(grid.dimensions(), (12 + 2 * 112, 12 + 2 * 62));
        let thumb = RgbImage::from_pixel(64, 64, Rgb([200, 0, 0]));
        let items: Vec<(String, f64, RgbImage)> = (0..5)
            .map(|i| (format!("make the car red {}", "very ".repeat(i * 5)), i as f64 * 0.1, thumb.clone()))
            .collect();
        let sheet = contact_sheet(&items, 4);
        assert!(sheet.width() > 4 * 160 && sheet.height() > 2 * 192);
        assert!(overlay_grid(&[], 3).width() > 0);
        assert!(contact_sheet(&[], 3).width() > 0);
    }

    #[test]
    fn wrap_text_respects_width_and_lines() {
        let lines = wrap_text(&"word ".repeat(40), 13.0, 150, 3);
        assert_eq!(lines.len(), 3);
        assert!(lines.iter().all(|l| measure(13.0, l).0 <= 150), "{lines:?}");
        assert!(lines[2].ends_with('\u{2026}'));
        assert_eq!(wrap_text("make it red", 13.0, 150, 3), ["make it red"]);
    }

    #[test]
    fn png_bytes_round_trip() {
        let img = RgbImage::from_pixel(3, 2, Rgb([10, 20, 30]));
        let back = image::load_from_memory(&png_bytes(&img)).unwrap().to_rgb8();
        assert_eq!(back, img);
        assert!(!png_bytes(&RgbImage::new(0, 5)).is_empty());
    }

    #[test]
    fn report_is_self_contained_and_escaped() {
        let mut e = explanation("make the <script>alert(1)</script> car red & \"shiny\"");
        e.image.path = "dir/<img src=x onerror=alert(2)>.png".into();
        let png = png_bytes(&words_image(&e));
        let images = ReportImages {
            words: png.clone(),
            overlays: png.clone(),
            samples: png.clone(),
            input: png.clone(),
            edited: png.clone(),
            per_word: vec![("01-make".into(), png)],
        };
        let html = report_html(&e, &images);
        assert!(html.contains("data:image/png;base64,"));
        assert!(!html.contains("http://") && !html.contains("https://"));
        assert!(!html.contains("<script"), "raw <script> in the report");
        assert!(!html.contains("<img src=x"));
        assert!(html.contains("&lt;script&gt;"));
        assert!(html.contains("&amp;") && html.contains("&quot;shiny&quot;"));
        for w in &e.words {
            assert!(html.contains(&escape_html(&w.word.text)), "missing word {}", w.word.text);
        }
        assert!(html.contains("0.9100"), "fidelity R² shown");
        assert!(html.contains("&quot;samples&quot;: 64"), "config JSON shown");
    }

    #[test]
    fn report_inlines_word_panels_instead_of_their_grid() {
        let e = explanation("make the car red");
        let b64 = |img: &RgbImage| base64::engine::general_purpose::STANDARD.encode(png_bytes(img));
        let grid = RgbImage::from_pixel(4, 4, Rgb([1, 2, 3]));
        let panels: Vec<RgbImage> = (0..2u8).map(|k| RgbImage::from_pixel(3, 3, Rgb([k, 9, 9]))).collect();
        let mut images = ReportImages {
            overlays: png_bytes(&grid),
            per_word: panels.iter().enumerate().map(|(k, p)| (format!("0{k}"), png_bytes(p))).collect(),
            ..ReportImages::default()
        };
        let html = report_html(&e, &images);
        assert!(!html.contains(&b64(&grid)), "grid inlined next to its panels");
        for p in &panels {
            assert_eq!(html.matches(&b64(p)).count(), 1, "each panel inlined once");
        }
        images.per_word.clear();
        assert!(report_html(&e, &images).contains(&b64(&grid)), "grid shown when there are no panels");
    }

    #[test]
    fn report_without_pictures_still_renders() {
        let e = explanation("make the car red");
        let html = report_html(&e, &ReportImages::default());
        assert!(html.contains("not computed"));
        assert!(!html.contains("<img"));
        assert!(html.ends_with("</html>\n"));
    }

    #[test]
    fn terminal_table_is_in_rank_order() {
        let e = explanation("make the car red now");
        let table = terminal_table(&e, 100);
        let mut ranked = e.words.clone();
        ranked.sort_by_key(|w| w.rank);
        let positions: Vec<usize> = ranked
            .iter()
            .map(|w| table.lines().position(|l| l.split_whitespace().nth(1) == Some(&w.word.text)).unwrap())
            .collect();
        assert!(positions.windows(2).all(|p| p[0] < p[1]), "{table}");
        assert_eq!(ranked[0].word.text, "red");
        assert!(table.contains("R\u{b2} = 0.910"));
        assert!(table.contains("not selected"));
        assert!(!table.contains('\u{1b}'), "no ANSI escapes");
        // Every word row has the same length in characters, bars included.
        let lens: Vec<usize> = table
            .lines()
            .filter(|l| l.contains('\u{2502}') && !l.contains("not selected"))
            .map(|l| l.chars().count())
            .collect();
        assert!(lens.windows(2).all(|p| p[0] == p[1]), "{table}");
    }

    #[test]
    fn bars_scale_with_value() {
        let (neg, pos) = bars(1.0, 1.0, 5);
        assert_eq!((neg.chars().count(), pos.chars().count()), (5, 5));
        assert_eq!(pos, "\u{2588}".repeat(5));
        let (neg, pos) = bars(-0.5, 1.0, 5);
        assert_eq!(pos, " ".repeat(5));
        assert_eq!(neg.trim_start().chars().count(), 3);
        assert_eq!(bars(0.0, 0.0, 3), ("   ".into(), "   ".into()));
    }
}
