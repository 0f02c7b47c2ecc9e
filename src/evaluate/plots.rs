//! Charts of an evaluation, drawn with the explanation pictures' canvas, palette and font: bar charts of a
//! metric's mean with 95 % interval whiskers per ODD value, grouped bars for comparing
//! editors, and heatmaps of mean precision@k over two ODD axes (cell values written).

use image::RgbImage;

use super::ScenarioResult;
use super::result::{self, HEADLINE};
use super::tables::{self, SliceStat};
use crate::render::canvas::{BACKGROUND, EMPTY, GRID, INK, MUTED, SERIES, canvas, fill, line, outline};
use crate::render::colormap::{diverging, hbar, luminance};
use crate::render::text::{draw_centred, draw_text, measure};
use crate::{render, stats};

const TITLE: f32 = 18.0;
const TEXT: f32 = 13.0;

/// A chart ready to be written: its file name under `plots/`, what it shows, and PNG bytes.
#[derive(Debug, Clone)]
pub struct Chart {
    /// File name under `plots/`.
    pub file: String,
    /// Caption.
    pub title: String,
    /// The ODD axis it slices by, if any.
    pub axis: Option<String>,
    /// PNG bytes.
    pub png: Vec<u8>,
}

/// One bar: a mean with its interval and the number of scenarios behind it.
#[derive(Debug, Clone)]
pub struct Bar {
    /// Mean (NaN draws "n/a").
    pub mean: f64,
    /// Interval low.
    pub low: f64,
    /// Interval high.
    pub high: f64,
    /// Scenarios with a defined value.
    pub n: usize,
}

impl From<&SliceStat> for Bar {
    fn from(s: &SliceStat) -> Self {
        Bar { mean: s.mean, low: s.ci_low, high: s.ci_high, n: s.n_defined }
    }
}

/// A file-name-safe version of `s`.
pub fn file_safe(s: &str) -> String {
    s.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '_' }).collect()
}

/// "Nice" tick values covering [lo, hi] (steps of 1, 2 or 5 × 10ᵏ).
fn ticks(lo: f64, hi: f64) -> (f64, f64, Vec<f64>) {
    let raw = ((hi - lo) / 5.0).max(1e-12);
    let mag = 10f64.powf(raw.log10().floor());
    let norm = raw / mag;
    let step = mag
        * if norm < 1.5 {
            1.0
        } else if norm < 3.0 {
            2.0
        } else if norm < 7.0 {
            5.0
        } else {
            10.0
        };
    let (lo, hi) = ((lo / step).floor() * step, (hi / step).ceil() * step);
    let n = ((hi - lo) / step).round() as usize;
    (lo, hi, (0..=n).map(|i| lo + i as f64 * step).collect())
}

/// A tick value with as many decimals as the tick step needs.
fn tick_label_step(v: f64, step: f64) -> String {
    let decimals = if step > 0.0 && step.is_finite() { (-step.log10().floor()).max(0.0) as usize } else { 2 };
    let s = format!("{v:.decimals$}");
    if s.trim_start_matches('-').chars().all(|c| c == '0' || c == '.') { "0".into() } else { s }
}

/// A tick value with two decimals at most.
fn tick_label(v: f64) -> String {
    let s = format!("{v:.2}");
    let s = s.trim_end_matches('0').trim_end_matches('.').to_string();
    if s == "-0" { "0".into() } else { s }
}

/// A value label: two decimals, or two significant digits in scientific form when that would show 0.
fn value_label(v: f64) -> String {
    if v != 0.0 && v.abs() < 0.01 { format!("{v:.1e}") } else { format!("{v:.2}") }
}

/// Grouped bar chart: `values[g][s]` is series `s` in group `g`; one series draws plain bars.
/// Whiskers show each bar's interval; "n=…" under each group gives the (first series') count.
pub fn grouped_bar_chart(
    title: &str,
    groups: &[String],
    series: &[String],
    values: &[Vec<Bar>],
    range: Option<(f64, f64)>,
) -> RgbImage {
    let bar_w = 34u32;
    let ns = series.len().max(1) as u32;
    let slot = groups.iter().map(|g| measure(TEXT, g).0 + 14).max().unwrap_or(0).max(ns * bar_w + 24);
    let finite = |v: f64| v.is_finite().then_some(v);
    let data: Vec<f64> =
        values.iter().flatten().flat_map(|b| [finite(b.mean), finite(b.low), finite(b.high)]).flatten().collect();
    let (mut lo, mut hi) = range.unwrap_or((0.0, 0.0));
    for v in &data {
        lo = lo.min(*v);
        hi = hi.max(*v);
    }
    if hi - lo < 1e-12 {
        hi = lo + 1.0;
    }
    let (lo, hi, tick_values) = ticks(lo, hi);
    let step = if tick_values.len() > 1 { tick_values[1] - tick_values[0] } else { 1.0 };
    let tick_label = |v: f64| tick_label_step(v, step);
    let tick_w = tick_values.iter().map(|t| measure(TEXT, &tick_label(*t)).0).max().unwrap_or(0);
    let left = 16 + tick_w + 8;
    let legend_h = if series.len() > 1 { 24 } else { 0 };
    let top = 48 + legend_h;
    let plot_h = 260u32;
    let width = (left + slot * groups.len().max(1) as u32 + 24).max(measure(TITLE, title).0 + 32);
    let height = top + plot_h + 52;
    let mut img = canvas(width, height);
    draw_text(&mut img, INK, 16, 12, TITLE, title);
    if series.len() > 1 {
        let mut x = left as i32;
        for (i, s) in series.iter().enumerate() {
            fill(&mut img, x, 48, 14, 14, SERIES[i % SERIES.len()]);
            draw_text(&mut img, INK, x + 20, 48, TEXT, s);
            x += 20 + measure(TEXT, s).0 as i32 + 18;
        }
    }
    let y_of = |v: f64| top as i32 + ((hi - v.clamp(lo, hi)) / (hi - lo) * plot_h as f64).round() as i32;
    let plot_right = (left + slot * groups.len().max(1) as u32) as i32;
    for t in &tick_values {
        let y = y_of(*t);
        line(&mut img, (left as i32, y), (plot_right, y), GRID);
        let l = tick_label(*t);
        draw_text(&mut img, MUTED, left as i32 - 6 - measure(TEXT, &l).0 as i32, y - 8, TEXT, &l);
    }
    let zero = y_of(0.0);
    line(&mut img, (left as i32, top as i32), (left as i32, (top + plot_h) as i32), INK);
    line(&mut img, (left as i32, zero), (plot_right, zero), INK);
    for (g, label) in groups.iter().enumerate() {
        let x0 = left as i32 + (g as u32 * slot) as i32;
        let cx = x0 + slot as i32 / 2;
        let bars_x = cx - (ns * bar_w) as i32 / 2;
        for (s, b) in values.get(g).map(Vec::as_slice).unwrap_or(&[]).iter().enumerate() {
            let bx = bars_x + (s as u32 * bar_w) as i32;
            let colour = SERIES[s % SERIES.len()];
            if b.mean.is_finite() {
                let y = y_of(b.mean);
                let (y0, y1) = (y.min(zero), y.max(zero));
                fill(&mut img, bx + 3, y0, bar_w - 6, (y1 - y0).max(1) as u32, colour);
                if b.low.is_finite() && b.high.is_finite() {
                    let wx = bx + bar_w as i32 / 2;
                    let (yl, yh) = (y_of(b.low), y_of(b.high));
                    for dx in [0, 1] {
                        line(&mut img, (wx + dx, yl), (wx + dx, yh), INK);
                    }
                    line(&mut img, (wx - 6, yl), (wx + 7, yl), INK);
                    line(&mut img, (wx - 6, yh), (wx + 7, yh), INK);
                }
                let v = value_label(b.mean);
                let (wl, wh) =
                    if b.low.is_finite() && b.high.is_finite() { (y_of(b.low), y_of(b.high)) } else { (y1, y0) };
                let ty = if b.mean >= 0.0 { y0.min(wh) - 15 } else { y1.max(wl) + 2 };
                let ty = ty.clamp(top as i32 - 14, (top + plot_h) as i32 - 14);
                draw_centred(&mut img, INK, bx + bar_w as i32 / 2, ty, 11.0, &v);
            } else {
                draw_centred(&mut img, MUTED, bx + bar_w as i32 / 2, zero - 16, 11.0, "n/a");
            }
        }
        draw_centred(&mut img, INK, cx, (top + plot_h + 8) as i32, TEXT, label);
        let n = values.get(g).and_then(|v| v.first()).map_or(0, |b| b.n);
        draw_centred(&mut img, MUTED, cx, (top + plot_h + 26) as i32, 11.0, &format!("n={n}"));
    }
    img
}

/// One line of a [`line_chart`]: its name and `(x, value)` points, drawn in x order.
#[derive(Debug, Clone)]
pub struct Series {
    /// Legend label.
    pub name: String,
    /// Points: x and the value with its interval.
    pub points: Vec<(f64, Bar)>,
}

/// Line chart of each series' values against x (editor calls in a method sweep), with
/// interval whiskers at every point and a legend.
pub fn line_chart(title: &str, x_label: &str, series: &[Series], range: Option<(f64, f64)>) -> RgbImage {
    let finite = |v: f64| v.is_finite().then_some(v);
    let all: Vec<&(f64, Bar)> = series.iter().flat_map(|s| &s.points).collect();
    let (mut lo, mut hi) = range.unwrap_or((f64::INFINITY, f64::NEG_INFINITY));
    for (_, b) in &all {
        for v in [finite(b.mean), finite(b.low), finite(b.high)].into_iter().flatten() {
            lo = lo.min(v);
            hi = hi.max(v);
        }
    }
    if !lo.is_finite() || !hi.is_finite() {
        (lo, hi) = (0.0, 1.0);
    }
    if hi - lo < 1e-12 {
        hi = lo + 1.0;
    }
    let (lo, hi, yt) = ticks(lo, hi);
    let ystep = if yt.len() > 1 { yt[1] - yt[0] } else { 1.0 };
    let xs: Vec<f64> = all.iter().map(|(x, _)| *x).filter(|x| x.is_finite()).collect();
    let (xlo, xhi) = xs.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &x| (a.min(x), b.max(x)));
    let (xlo, xhi) = if xlo.is_finite() && xhi > xlo { (0.0f64.min(xlo), xhi) } else { (0.0, xlo.max(1.0) * 2.0) };
    let (xlo, xhi, xt) = ticks(xlo, xhi);
    let xstep = if xt.len() > 1 { xt[1] - xt[0] } else { 1.0 };
    let tick_w = yt.iter().map(|t| measure(TEXT, &tick_label_step(*t, ystep)).0).max().unwrap_or(0);
    let (left, top, plot_w, plot_h) = (16 + tick_w + 8, 48 + 24, 420u32, 260u32);
    let width = (left + plot_w + 24).max(measure(TITLE, title).0 + 32);
    let height = top + plot_h + 52;
    let mut img = canvas(width, height);
    draw_text(&mut img, INK, 16, 12, TITLE, title);
    let mut lx = left as i32;
    for (i, s) in series.iter().enumerate() {
        fill(&mut img, lx, 48, 14, 14, SERIES[i % SERIES.len()]);
        draw_text(&mut img, INK, lx + 20, 48, TEXT, &s.name);
        lx += 20 + measure(TEXT, &s.name).0 as i32 + 18;
    }
    let x_of = |x: f64| left as i32 + ((x - xlo) / (xhi - xlo) * plot_w as f64).round() as i32;
    let y_of = |v: f64| top as i32 + ((hi - v.clamp(lo, hi)) / (hi - lo) * plot_h as f64).round() as i32;
    for t in &yt {
        let y = y_of(*t);
        line(&mut img, (left as i32, y), ((left + plot_w) as i32, y), GRID);
        let l = tick_label_step(*t, ystep);
        draw_text(&mut img, MUTED, left as i32 - 6 - measure(TEXT, &l).0 as i32, y - 8, TEXT, &l);
    }
    for t in &xt {
        let x = x_of(*t);
        line(&mut img, (x, (top + plot_h) as i32), (x, (top + plot_h) as i32 + 4), INK);
        draw_centred(&mut img, MUTED, x, (top + plot_h + 6) as i32, TEXT, &tick_label_step(*t, xstep));
    }
    line(&mut img, (left as i32, top as i32), (left as i32, (top + plot_h) as i32), INK);
    line(&mut img, (left as i32, (top + plot_h) as i32), ((left + plot_w) as i32, (top + plot_h) as i32), INK);
    draw_centred(&mut img, INK, (left + plot_w / 2) as i32, (top + plot_h + 26) as i32, TEXT, x_label);
    for (i, s) in series.iter().enumerate() {
        let colour = SERIES[i % SERIES.len()];
        let mut pts: Vec<&(f64, Bar)> = s.points.iter().filter(|(x, b)| x.is_finite() && b.mean.is_finite()).collect();
        pts.sort_by(|a, b| a.0.total_cmp(&b.0));
        for w in pts.windows(2) {
            let (a, b) = ((x_of(w[0].0), y_of(w[0].1.mean)), (x_of(w[1].0), y_of(w[1].1.mean)));
            for d in [-1, 0, 1] {
                line(&mut img, (a.0, a.1 + d), (b.0, b.1 + d), colour);
            }
        }
        for (x, b) in pts {
            let (px, py) = (x_of(*x), y_of(b.mean));
            fill(&mut img, px - 3, py - 3, 7, 7, colour);
            if b.low.is_finite() && b.high.is_finite() {
                line(&mut img, (px, y_of(b.low)), (px, y_of(b.high)), colour);
                line(&mut img, (px - 4, y_of(b.low)), (px + 4, y_of(b.low)), colour);
                line(&mut img, (px - 4, y_of(b.high)), (px + 4, y_of(b.high)), colour);
            }
        }
    }
    img
}

/// Heatmap of `cells[r][c] = (mean, n)` over two axes, coloured from `range.0` (blue) to `range.1`
/// (red) through white on the diverging map, with each cell's value and count written.
pub fn heatmap(
    title: &str,
    row_axis: &str,
    rows: &[String],
    col_axis: &str,
    cols: &[String],
    cells: &[Vec<(f64, usize)>],
    range: (f64, f64),
) -> RgbImage {
    let (vmin, vmax) = range;
    let cell_w = cols.iter().map(|c| measure(TEXT, c).0 + 12).max().unwrap_or(0).max(64);
    let cell_h = 42u32;
    let left = rows.iter().map(|r| measure(TEXT, r).0).max().unwrap_or(0).max(measure(TEXT, row_axis).0) + 28;
    let top = 48 + 22 + 22;
    let width = (left + cell_w * cols.len().max(1) as u32 + 24).max(measure(TITLE, title).0 + 32).max(300);
    let height = top + cell_h * rows.len().max(1) as u32 + 70;
    let mut img = canvas(width, height);
    draw_text(&mut img, INK, 16, 12, TITLE, title);
    draw_centred(
        &mut img,
        MUTED,
        (left + cell_w * cols.len() as u32 / 2) as i32,
        48,
        TEXT,
        &format!("{col_axis} \u{2192}"),
    );
    draw_text(&mut img, MUTED, 12, top as i32 - 20, TEXT, &format!("{row_axis} \u{2193}"));
    let centre = (vmin + vmax) / 2.0;
    let half = ((vmax - vmin) / 2.0) as f32;
    for (c, label) in cols.iter().enumerate() {
        draw_centred(&mut img, INK, (left + c as u32 * cell_w + cell_w / 2) as i32, top as i32 - 20, TEXT, label);
    }
    for (r, label) in rows.iter().enumerate() {
        let y = (top + r as u32 * cell_h) as i32;
        draw_text(&mut img, INK, 12, y + cell_h as i32 / 2 - 8, TEXT, label);
        for c in 0..cols.len() {
            let x = (left + c as u32 * cell_w) as i32;
            let (v, n) = cells.get(r).and_then(|row| row.get(c)).copied().unwrap_or((f64::NAN, 0));
            let colour = if v.is_finite() { diverging((v - centre) as f32, half) } else { EMPTY };
            fill(&mut img, x, y, cell_w, cell_h, colour);
            outline(&mut img, x, y, cell_w, cell_h, BACKGROUND);
            let ink = if luminance(colour) < 0.5 { BACKGROUND } else { INK };
            let cx = x + cell_w as i32 / 2;
            if v.is_finite() {
                draw_centred(&mut img, ink, cx, y + 6, TEXT, &format!("{v:.2}"));
                draw_centred(&mut img, ink, cx, y + 23, 11.0, &format!("n={n}"));
            } else {
                draw_centred(&mut img, MUTED, cx, y + 13, TEXT, "\u{2013}");
            }
        }
    }
    // Colour bar.
    let bar_y = (top + cell_h * rows.len().max(1) as u32 + 18) as i32;
    let bar_w = 200u32;
    hbar(&mut img, left as i32, bar_y, bar_w, 12);
    for (i, v) in [vmin, centre, vmax].iter().enumerate() {
        draw_centred(&mut img, MUTED, left as i32 + (i as u32 * bar_w / 2) as i32, bar_y + 16, 11.0, &tick_label(*v));
    }
    img
}

/// The charts of an evaluation: the plotted metrics of [`super::METRICS`] by every axis, and
/// [`HEADLINE`] heatmaps over every pair of axes (values that occur only).
pub fn suite_charts(axes: &[(String, Vec<String>)], slices: &[SliceStat], results: &[ScenarioResult]) -> Vec<Chart> {
    let mut charts = Vec::new();
    for m in result::plotted() {
        let metric = m.name;
        for (axis, values) in axes {
            let bars: Vec<Vec<Bar>> = values
                .iter()
                .map(|v| tables::lookup(slices, axis, v).get(metric).map(|s| Bar::from(*s)).into_iter().collect())
                .collect();
            let title = format!("{metric} by {axis} (mean, 95% CI)");
            let img = grouped_bar_chart(&title, values, &[metric.to_string()], &bars, m.range);
            charts.push(Chart {
                file: format!("{}-by-{}.png", file_safe(metric), file_safe(axis)),
                title,
                axis: Some(axis.clone()),
                png: render::png_bytes(&img),
            });
        }
    }
    let used = |axis: &str, values: &[String]| -> Vec<String> {
        values.iter().filter(|v| results.iter().any(|r| r.odd.get(axis) == Some(*v))).cloned().collect()
    };
    for (i, (a, av)) in axes.iter().enumerate() {
        for (b, bv) in &axes[i + 1..] {
            let (rows, cols) = (used(a, av), used(b, bv));
            let cells: Vec<Vec<(f64, usize)>> = rows
                .iter()
                .map(|rv| {
                    cols.iter()
                        .map(|cv| {
                            let vals: Vec<f64> = results
                                .iter()
                                .filter(|r| r.odd.get(a) == Some(rv) && r.odd.get(b) == Some(cv))
                                .map(HEADLINE.value)
                                .filter(|v| !v.is_nan())
                                .collect();
                            (stats::mean(&vals), vals.len())
                        })
                        .collect()
                })
                .collect();
            let title = format!("mean {}: {a} \u{00d7} {b}", HEADLINE.label);
            let img = heatmap(&title, a, &rows, b, &cols, &cells, HEADLINE.range.unwrap_or((0.0, 1.0)));
            charts.push(Chart {
                file: format!("accuracy-heatmap-{}-{}.png", file_safe(a), file_safe(b)),
                title,
                axis: None,
                png: render::png_bytes(&img),
            });
        }
    }
    charts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_cover_the_range_with_round_steps() {
        let (lo, hi, t) = ticks(-0.13, 0.92);
        assert!(lo <= -0.13 && hi >= 0.92);
        assert!(t.len() >= 3 && t.len() <= 12, "{t:?}");
        assert_eq!(tick_label(0.5), "0.5");
        assert_eq!(tick_label(-0.0), "0");
        assert_eq!(tick_label_step(0.004, 0.002), "0.004");
        assert_eq!(tick_label_step(-0.0, 0.002), "0");
        assert_eq!(value_label(0.0042), "4.2e-3");
    }

    #[test]
    fn charts_draw_nan_and_empty_inputs() {
        let bars = vec![
            vec![Bar { mean: f64::NAN, low: f64::NAN, high: f64::NAN, n: 0 }],
            vec![Bar { mean: 0.4, low: 0.1, high: 0.9, n: 3 }],
        ];
        let img = grouped_bar_chart("t", &["a".into(), "b".into()], &["m".into()], &bars, Some((0.0, 1.0)));
        assert!(img.width() > 100);
        let h = heatmap(
            "h",
            "r",
            &["x".into()],
            "c",
            &["y".into(), "z".into()],
            &[vec![(0.5, 2), (f64::NAN, 0)]],
            (0.0, 1.0),
        );
        assert!(h.height() > 100);
        let e = heatmap("h", "r", &[], "c", &[], &[], (0.0, 1.0));
        assert!(e.width() > 0);
    }
}
