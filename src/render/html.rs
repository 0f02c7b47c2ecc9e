//! Self-contained HTML: the explanation report (`report.html`), its stylesheet, and the one
//! page skeleton and helpers that the evaluation and comparison reports share.

use std::fmt::Write as _;

use base64::Engine as _;
use image::Rgb;

use super::colormap::{attribution_vmax, diverging};
use super::format::{fmt_p, fmt_plain, fmt_signed};
use crate::explain::{Explanation, WordAttribution};

/// The PNG files a report inlines; an empty vector leaves that picture out.
#[derive(Debug, Clone, Default)]
pub struct ReportImages {
    /// [`words_image`](super::words_image) as PNG.
    pub words: Vec<u8>,
    /// [`overlay_grid`](super::overlay_grid) of every word's panel as PNG; inlined only when `per_word` is empty.
    pub overlays: Vec<u8>,
    /// [`contact_sheet`](super::contact_sheet) of the perturbed edits as PNG.
    pub samples: Vec<u8>,
    /// The explained input image as PNG.
    pub input: Vec<u8>,
    /// The full instruction's edit as PNG.
    pub edited: Vec<u8>,
    /// Each word's [`word_panel`](super::word_panel) as PNG, with a label (the word or its file name).
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
    format!("<img class=\"{}\" alt=\"{}\" src=\"{}\">", escape_html(class), escape_html(alt), png_data_uri(png))
}

/// A `data:` URI holding `png`, so a page carries its pictures inside itself.
pub fn png_data_uri(png: &[u8]) -> String {
    format!("data:image/png;base64,{}", base64::engine::general_purpose::STANDARD.encode(png))
}

/// The first 12 hex digits of a hash, enough to tell bundles apart.
fn short_hash(h: &str) -> &str {
    h.get(..12).unwrap_or(h)
}

/// CSS `rgb()` of a colour.
fn css_rgb(c: Rgb<u8>) -> String {
    format!("rgb({},{},{})", c[0], c[1], c[2])
}

/// Inline stylesheet of every HTML page gsmile writes.
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

/// The opening of a self-contained page, up to and including `<main>`: the document head
/// with the escaped `title` and the shared stylesheet followed by the page's `extra_css`.
/// Close it with [`PAGE_END`].
pub fn page_head(title: &str, extra_css: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>{}</title>\n<style>{REPORT_CSS}{extra_css}</style>\n</head>\n<body>\n<main>\n",
        escape_html(title)
    )
}

/// The end of a page opened by [`page_head`].
pub const PAGE_END: &str = "</main>\n</body>\n</html>\n";

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
    h.push_str(&page_head(&format!("gSMILE \u{b7} {}", e.instruction), ""));

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

    // Warnings come first: they say what the rest can mean.
    if !e.warnings.is_empty() {
        h.push_str("<section id=\"warnings\">\n<h2>Warnings</h2>\n<ul class=\"warnings\">\n");
        for w in &e.warnings {
            let _ = writeln!(h, "<li><b>{}</b>: {}</li>", escape_html(&w.code), escape_html(&w.message));
        }
        h.push_str("</ul>\n</section>\n");
    }

    // Word attributions.
    h.push_str("<section id=\"words\">\n<h2>Word attributions</h2>\n");
    let unit = if e.edit_change_measured {
        "the full edit's change f(full) \u{2212} f(empty)"
    } else {
        "the sum of the attributions (the empty instruction was not measured)"
    };
    let _ = writeln!(
        h,
        "<p class=\"note\">Method <b>{}</b>. Positive (red): the word moves the output toward the full edit; \
         negative (blue): away from it. <i>Share</i> is the attribution as a share of {} = {}{}. {}</p>",
        escape_html(e.config.method.name()),
        unit,
        escape_html(&fmt_signed(e.edit_change)),
        if e.config.method.is_efficient() { "; the shares sum to 100 %" } else { "" },
        if e.exact {
            "Exact: every mask was measured, so there is no sampling interval."
        } else {
            "Intervals are bootstrap intervals."
        },
    );
    h.push_str(&img_tag(&images.words, "word attributions", "words"));
    h.push_str(
        "\n<table>\n<thead><tr><th class=\"num\">rank</th><th>word</th><th></th>\
         <th class=\"num\">attribution</th><th class=\"num\">share</th><th class=\"num\">interval</th><th class=\"num\">p-value</th>\
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
             <td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">[{}, {}]</td><td class=\"num\">{}</td><td>{}</td></tr>",
            if w.selected { "" } else { " class=\"unselected\"" },
            w.rank,
            escape_html(&w.word.text),
            escape_html(&fmt_signed(w.attribution)),
            if w.share.is_finite() { format!("{:+.1} %", 100.0 * w.share) } else { "n/a".into() },
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

    let _ = writeln!(
        h,
        "<footer>Made by gsmile {}. This file is self-contained: it loads nothing from elsewhere.</footer>",
        escape_html(&e.gsmile_version)
    );
    h.push_str(PAGE_END);
    h
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::render::fixture::explanation;
    use crate::render::{png_bytes, words_image};
    use image::RgbImage;

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
    fn report_states_the_share_unit_and_the_warnings() {
        let mut e = explanation("make the car red");
        let html = report_html(&e, &ReportImages::default());
        assert!(html.contains("+21.0 %"), "each word's share of the edit");
        assert!(html.contains("f(full) \u{2212} f(empty) = +2.000"), "the unit is stated");
        assert!(!html.contains("id=\"warnings\""), "no warnings section without warnings");
        e.warnings.push(crate::explain::Warning { code: "no-edit".into(), message: "barely <changes>".into() });
        let html = report_html(&e, &ReportImages::default());
        assert!(html.contains("id=\"warnings\"") && html.contains("barely &lt;changes&gt;"));
        assert!(html.find("id=\"warnings\"") < html.find("id=\"words\""), "warnings come before the words");
    }

    #[test]
    fn report_without_pictures_still_renders() {
        let e = explanation("make the car red");
        let html = report_html(&e, &ReportImages::default());
        assert!(html.contains("not computed"));
        assert!(!html.contains("<img"));
        assert!(html.ends_with("</html>\n"));
    }
}
