//! The diverging blue–white–red colour map of attributions and its colour bars.

use image::{Rgb, RgbImage};

use super::canvas::{OUTLINE, channel, fill, outline};
use crate::explain::Explanation;

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

/// Relative luminance in [0, 1], to pick readable text on a coloured box.
pub fn luminance(c: Rgb<u8>) -> f32 {
    (0.2126 * c[0] as f32 + 0.7152 * c[1] as f32 + 0.0722 * c[2] as f32) / 255.0
}

/// Largest finite |attribution|, the symmetric scale of every word colour.
pub(super) fn attribution_vmax(explanation: &Explanation) -> f32 {
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

/// A horizontal colour bar from −vmax (left) to +vmax (right), without a frame.
pub fn hbar(img: &mut RgbImage, x: i32, y: i32, w: u32, h: u32) {
    for dx in 0..w {
        let t = (dx as f32 + 0.5) / w as f32 * 2.0 - 1.0;
        fill(img, x + dx as i32, y, 1, h, diverging(t, 1.0));
    }
}

/// [`hbar`] in a thin outline.
pub(super) fn draw_hbar(img: &mut RgbImage, x: i32, y: i32, w: u32, h: u32) {
    hbar(img, x, y, w, h);
    outline(img, x, y, w, h, OUTLINE);
}

/// A vertical colour bar from +vmax (top) to −vmax (bottom).
pub(super) fn draw_vbar(img: &mut RgbImage, x: i32, y: i32, w: u32, h: u32) {
    for dy in 0..h {
        let t = 1.0 - (dy as f32 + 0.5) / h as f32 * 2.0;
        fill(img, x, y + dy as i32, w, 1, diverging(t, 1.0));
    }
    outline(img, x, y, w, h, OUTLINE);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::render::fixture::{is_blue, is_red};

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
}
