//! A hand-made explanation and colour checks shared by the render tests.

use image::Rgb;

use crate::explain::{
    Counts, ExplainConfig, Explanation, Fidelity, ImageInfo, ModelInfo, SCHEMA, SampleRecord, Timings, WordAttribution,
};
use crate::perturb::Word;

/// A three-word explanation with both signs and one word left out of the fit.
pub(super) fn explanation(instruction: &str) -> Explanation {
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
                share: a / 2.0,
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
            distance_p_value: None,
        })
        .collect();
    Explanation {
        schema: SCHEMA.to_string(),
        gsmile_version: "0.1.0".to_string(),
        instruction: instruction.to_string(),
        image: ImageInfo { path: "scene-01.png".into(), sha256: "ab".repeat(32), width: 64, height: 64 },
        editor: ModelInfo {
            name: "toy-editor".into(),
            kind: "editor".into(),
            path: "onnx/editor".into(),
            sha256: "cd".repeat(32),
            params: serde_json::Value::Null,
        },
        encoder: None,
        lpips: None,
        config: ExplainConfig::default(),
        kernel_width: 0.25,
        words,
        intercept: -0.5,
        edit_change: 2.0,
        edit_change_measured: true,
        exact: false,
        warnings: Vec::new(),
        budget: None,
        fidelity: Fidelity { r2: 0.91, mse: 0.0012 },
        samples,
        counts: Counts { words: 3, samples: 5, distinct_edits: 5, cached_edits: 0 },
        timings: Timings::default(),
    }
}

pub(super) fn is_red(c: &Rgb<u8>) -> bool {
    c[0] as i32 > c[2] as i32 + 60 && c[0] as i32 > c[1] as i32 + 60
}

pub(super) fn is_blue(c: &Rgb<u8>) -> bool {
    c[2] as i32 > c[0] as i32 + 60
}
