//! Drawing primitives every picture shares: the palette, white canvases, filled and
//! outlined rectangles, lines, row-wise copies, integer upscaling and PNG encoding.

use image::{Rgb, RgbImage};
use imageproc::drawing::{draw_filled_rect_mut, draw_hollow_rect_mut, draw_line_segment_mut};
use imageproc::rect::Rect;

/// Page background of every rendered image.
pub const BACKGROUND: Rgb<u8> = Rgb([255, 255, 255]);
/// Main text colour.
pub const INK: Rgb<u8> = Rgb([33, 37, 41]);
/// Secondary text colour (captions, values, words left out of the fit).
pub const MUTED: Rgb<u8> = Rgb([120, 124, 130]);
/// Thin outlines around boxes and colour bars.
pub const OUTLINE: Rgb<u8> = Rgb([160, 164, 170]);
/// Grid lines behind a chart's bars.
pub const GRID: Rgb<u8> = Rgb([226, 228, 232]);
/// A chart cell with no value.
pub const EMPTY: Rgb<u8> = Rgb([238, 238, 238]);
/// Colours of a chart's series, in order (ColorBrewer-like, readable on white).
pub const SERIES: [Rgb<u8>; 6] = [
    Rgb([67, 147, 195]),
    Rgb([214, 96, 77]),
    Rgb([90, 174, 97]),
    Rgb([153, 112, 171]),
    Rgb([230, 171, 2]),
    Rgb([120, 120, 120]),
];

/// A blended channel value rounded half away from zero and clamped to 0..=255.
///
/// `f32::round` is a libm call on baseline x86-64 and was the top cost of blending. Adding one
/// half in f64 (exact for every f32 below 256, unlike in f32 where 0.49999997 + 0.5 rounds up
/// to 1) and truncating rounds the same way; the cast saturates.
pub(crate) fn channel(v: f32) -> u8 {
    (f64::from(v.max(0.0)) + 0.5) as u8
}

/// Fills a rectangle, ignoring empty ones.
pub fn fill(img: &mut RgbImage, x: i32, y: i32, w: u32, h: u32, color: Rgb<u8>) {
    if w > 0 && h > 0 {
        draw_filled_rect_mut(img, Rect::at(x, y).of_size(w, h), color);
    }
}

/// Outlines a rectangle, ignoring empty ones.
pub fn outline(img: &mut RgbImage, x: i32, y: i32, w: u32, h: u32, color: Rgb<u8>) {
    if w > 0 && h > 0 {
        draw_hollow_rect_mut(img, Rect::at(x, y).of_size(w, h), color);
    }
}

/// Draws a one-pixel line from `a` to `b`.
pub fn line(img: &mut RgbImage, a: (i32, i32), b: (i32, i32), color: Rgb<u8>) {
    draw_line_segment_mut(img, (a.0 as f32, a.1 as f32), (b.0 as f32, b.1 as f32), color);
}

/// A white canvas.
pub fn canvas(width: u32, height: u32) -> RgbImage {
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
pub fn blit(dst: &mut RgbImage, src: &RgbImage, x: i64, y: i64) {
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

/// Longest side [`upscale`] makes: a thin image is enlarged no further than this, so its
/// pictures stay bounded in memory whatever its aspect ratio.
pub const MAX_UPSCALED_SIDE: u32 = 2048;

/// The integer factor that brings the shortest side of a `width`×`height` image to at least
/// `min_side`, without taking its longest side beyond [`MAX_UPSCALED_SIDE`].
fn upscale_factor(width: u32, height: u32, min_side: u32) -> u32 {
    let short = width.min(height).max(1);
    let long = width.max(height).max(1);
    min_side.div_ceil(short).min(MAX_UPSCALED_SIDE / long).max(1)
}

/// Enlarges an image by an integer factor (nearest neighbour) so its shortest side is at
/// least `min_side` (as far as [`MAX_UPSCALED_SIDE`] allows).
pub fn upscale(img: &RgbImage, min_side: u32) -> RgbImage {
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

/// The image encoded as PNG; an image with a zero side, which PNG cannot hold, is encoded as one white pixel.
pub fn png_bytes(img: &RgbImage) -> Vec<u8> {
    if img.width() == 0 || img.height() == 0 {
        return crate::imaging::png_bytes(&canvas(1, 1));
    }
    crate::imaging::png_bytes(img)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canvas_is_background_everywhere_and_never_empty() {
        let c = canvas(7, 3);
        assert_eq!(c.dimensions(), (7, 3));
        assert!(c.pixels().all(|p| *p == BACKGROUND));
        assert_eq!(canvas(0, 0).dimensions(), (1, 1));
    }

    #[test]
    fn upscaling_a_thin_image_stays_bounded() {
        assert_eq!(upscale_factor(64, 64, 256), 4);
        assert_eq!(upscale_factor(1024, 1, 256), 2);
        assert_eq!(upscale_factor(100_000, 1, 256), 1);
        let thin = upscale(&RgbImage::new(1000, 1), 256);
        assert_eq!(thin.dimensions(), (2000, 2));
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

    #[test]
    fn png_bytes_round_trip() {
        let img = RgbImage::from_pixel(3, 2, Rgb([10, 20, 30]));
        let back = image::load_from_memory(&png_bytes(&img)).unwrap().to_rgb8();
        assert_eq!(back, img);
        assert!(!png_bytes(&RgbImage::new(0, 5)).is_empty());
    }
}
