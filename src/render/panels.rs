//! Spatial pictures: a word's heat map blended over an image, one word's side-by-side panel
//! (`overlays/NN-word.png`) and the grid of every panel (`overlays.png`).

use image::RgbImage;
use ndarray::ArrayView2;

use super::RenderError;
use super::canvas::{INK, MUTED, OUTLINE, blit, canvas, channel, outline, upscale};
use super::colormap::{diverging, draw_vbar};
use super::format::{fmt_p, fmt_signed_pretty};
use super::text::{draw_text, measure, truncate_to_width};
use crate::explain::WordAttribution;

/// Images whose shortest side is below this are enlarged (nearest neighbour) for display.
const MIN_DISPLAY_SIDE: u32 = 256;

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::render::contact_sheet;
    use crate::render::fixture::{explanation, is_blue, is_red};
    use image::Rgb;
    use ndarray::Array2;

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
}
