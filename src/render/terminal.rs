//! The plain-text table of word attributions printed to the terminal.

use std::fmt::Write as _;

use super::colormap::attribution_vmax;
use super::format::{fmt_p, fmt_plain, fmt_signed};
use crate::explain::{Explanation, WordAttribution};
use crate::io::escape_control;

/// The ranked words as a plain-text table about `width` columns wide: signed bars of block
/// characters scaled to the largest |attribution|, value, interval and p-value, then the fit's fidelity.
pub fn terminal_table(explanation: &Explanation, width: usize) -> String {
    let e = explanation;
    let vmax = attribution_vmax(e) as f64;
    let mut ranked: Vec<&WordAttribution> = e.words.iter().collect();
    ranked.sort_by_key(|w| (w.rank, w.word.index));

    let texts: Vec<String> = ranked.iter().map(|w| escape_control(&w.word.text)).collect();
    let word_w = texts.iter().map(|t| t.chars().count()).max().unwrap_or(4).clamp(4, 24);
    let rows: Vec<(String, String, String, String, String)> = ranked
        .iter()
        .map(|w| {
            (
                fmt_signed(w.attribution),
                if w.share.is_finite() { format!("{:+.0} %", 100.0 * w.share) } else { "n/a".into() },
                format!("[{}, {}]", fmt_signed(w.ci_low), fmt_signed(w.ci_high)),
                fmt_p(w.p_value),
                if w.selected { String::new() } else { "  not selected".to_string() },
            )
        })
        .collect();
    let value_w = rows.iter().map(|r| r.0.len()).max().unwrap_or(0).max(11);
    let share_w = rows.iter().map(|r| r.1.chars().count()).max().unwrap_or(0).max(5);
    let ci_w = rows.iter().map(|r| r.2.len()).max().unwrap_or(0).max(8);
    let p_w = 7;
    // rank(4) + 2 + word + 2 + bars + 2 + value + 2 + share + 2 + ci + 2 + p
    let fixed = 4 + 2 + word_w + 2 + 1 + 2 + value_w + 2 + share_w + 2 + ci_w + 2 + p_w;
    let half = (width.saturating_sub(fixed) / 2).clamp(4, 40);

    let mut out = String::new();
    let _ = writeln!(out, "{} word attributions for \"{}\"", e.config.method.name(), escape_control(&e.instruction));
    let _ = writeln!(
        out,
        "{:>4}  {:<word_w$}  {:^bars$}  {:>value_w$}  {:>share_w$}  {:<ci_w$}  {:>p_w$}",
        "rank",
        "word",
        "- away | toward +",
        "attribution",
        "share",
        "interval",
        "p",
        bars = 2 * half + 1
    );
    for ((w, text), (value, share, ci, p, note)) in ranked.iter().zip(&texts).zip(&rows) {
        let (neg, pos) = bars(w.attribution, vmax, half);
        let word: String = if text.chars().count() > word_w {
            text.chars().take(word_w - 1).chain(std::iter::once('\u{2026}')).collect()
        } else {
            text.clone()
        };
        let _ = writeln!(
            out,
            "{:>4}  {:<word_w$}  {neg}\u{2502}{pos}  {value:>value_w$}  {share:>share_w$}  {ci:<ci_w$}  {p:>p_w$}{note}",
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
    let _ = writeln!(
        out,
        "share: of the full edit's change {} = {} ({}){}",
        if e.edit_change_measured { "f(full) - f(empty)" } else { "(sum of attributions)" },
        fmt_signed(e.edit_change),
        if e.exact { "exact: every mask measured" } else { "sampled" },
        e.budget.as_ref().map_or(String::new(), |b| format!(
            "; adaptive budget: {} calls over {} rounds, stopped: {}",
            b.rounds.last().copied().unwrap_or(0),
            b.rounds.len(),
            b.stopped
        ))
    );
    for w in &e.warnings {
        let _ = writeln!(out, "warning ({}): {}", w.code, escape_control(&w.message));
    }
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
    use crate::render::fixture::explanation;

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
        assert!(table.contains("+21 %"), "the share of the edit, in per cent: {table}");
        assert!(table.contains("f(full) - f(empty) = +2.000"), "{table}");
        // Every word row has the same length in characters, bars included.
        let lens: Vec<usize> = table
            .lines()
            .filter(|l| l.contains('\u{2502}') && !l.contains("not selected"))
            .map(|l| l.chars().count())
            .collect();
        assert!(lens.windows(2).all(|p| p[0] == p[1]), "{table}");
    }

    #[test]
    fn control_characters_in_words_and_instruction_are_escaped() {
        let mut e = explanation("make the car red now");
        e.instruction = "make the \u{1b}[2Jcar red\nnow".into();
        e.words[2].word.text = "\u{1b}[2Jcar\u{7}".into();
        let table = terminal_table(&e, 100);
        assert!(!table.chars().any(|c| c.is_control() && c != '\n'), "{table:?}");
        assert!(table.contains("\\u{1b}[2Jcar\\u{7}"), "{table}");
        assert!(table.lines().next().unwrap().ends_with("red\\nnow\""), "{table}");
        assert_eq!(escape_control("plain café"), "plain café");
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
