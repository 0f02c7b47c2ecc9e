//! The contact sheet of perturbed edits (`samples.png`).

use image::RgbImage;
use rayon::prelude::*;

use super::canvas::{INK, MUTED, OUTLINE, blit, canvas, outline, upscale};
use super::format::fmt_plain;
use super::text::{draw_text, wrap_text};

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
