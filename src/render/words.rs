//! The word heatmap (`words.png`): the instruction as coloured word boxes.

use image::{Rgb, RgbImage};

use super::canvas::{INK, MUTED, OUTLINE, canvas, fill, outline};
use super::colormap::{attribution_vmax, diverging, draw_hbar, luminance};
use super::format::{fmt_plain, fmt_signed_pretty};
use super::text::{draw_text, measure, truncate_to_width};
use crate::explain::{Explanation, WordAttribution};

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::render::fixture::{explanation, is_blue, is_red};

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
}
