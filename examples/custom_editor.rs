//! Explaining your own editor: implement [`Editor`] for it, wrap it in [`Models`], explain.
//!
//! The editor here is a toy written in plain Rust: it paints the lower half of the image
//! in the colour the instruction names ("red", "green", "blue") and darkens the whole image
//! when the instruction says "night". It needs no encoder, so change is measured on pixels
//! and samples are weighted by LIME's mask cosine. A real model goes in the same place:
//! an ONNX session, a Python worker, an HTTP API.
//!
//! Run: `cargo run --release --example custom_editor`

use std::sync::Arc;

use gsmile::editor::Editor;
use gsmile::explain::{self, ExplainConfig, ImageInfo, ModelInfo, NoProgress, RunOptions, Space, Weighting};
use gsmile::models::Models;
use ndarray::{Array4, ArrayView4, Axis, s};

/// A toy editor: colour words paint the lower half, "night" darkens everything.
struct PaintEditor;

impl Editor for PaintEditor {
    fn name(&self) -> &str {
        "paint-editor"
    }

    fn size(&self) -> (u32, u32) {
        (32, 32)
    }

    fn check_instruction(&self, _instruction: &str) -> gsmile::Result<()> {
        Ok(())
    }

    fn edit(&self, images: ArrayView4<f32>, instructions: &[&str]) -> gsmile::Result<Array4<f32>> {
        let mut out = images.to_owned();
        for (mut img, text) in out.axis_iter_mut(Axis(0)).zip(instructions) {
            let words: Vec<String> = text.split_whitespace().map(str::to_lowercase).collect();
            let colour =
                [("red", 0), ("green", 1), ("blue", 2)].into_iter().find(|(w, _)| words.iter().any(|x| x == w));
            if let Some((_, channel)) = colour {
                let h = img.dim().1;
                for c in 0..3 {
                    img.slice_mut(s![c, h / 2.., ..]).fill(if c == channel { 1.0 } else { 0.0 });
                }
            }
            if words.iter().any(|w| w == "night") {
                img.mapv_inplace(|v| v * 0.3);
            }
        }
        Ok(out)
    }
}

/// Explains "please paint the ground red at night" on a grey picture with [`PaintEditor`].
pub fn explain_paint() -> anyhow::Result<explain::ExplainRun> {
    let models = Models {
        editor: Arc::new(PaintEditor),
        editor_info: ModelInfo {
            name: "paint-editor".into(),
            kind: "custom".into(),
            path: "examples/custom_editor.rs".into(),
            sha256: "paint-editor-v1".into(),
            params: serde_json::Value::Null,
        },
        image_encoder: None,
        text_encoder: None,
        encoder_info: None,
        lpips: None,
        lpips_info: None,
    };
    // No encoder: measure change on pixels and weight samples by LIME's mask cosine.
    let config = ExplainConfig {
        samples: 32,
        space: Space::Pixels,
        weighting: Weighting::MaskCosine,
        ..ExplainConfig::default()
    };
    let image = image::RgbImage::from_pixel(48, 48, image::Rgb([128, 128, 128]));
    let info = ImageInfo { path: "grey 48x48".into(), sha256: String::new(), width: 48, height: 48 };
    let instruction = "please paint the ground red at night";
    Ok(explain::explain(&image, info, instruction, &models, &config, &RunOptions::default(), &NoProgress)?)
}

fn main() -> anyhow::Result<()> {
    let run = explain_paint()?;
    print!("{}", gsmile::render::terminal_table(&run.explanation, 40));
    let mut ranked: Vec<_> = run.explanation.words.iter().collect();
    ranked.sort_by_key(|w| w.rank);
    let top: Vec<&str> = ranked.iter().take(2).map(|w| w.word.text.as_str()).collect();
    println!("top two words: {}", top.join(", "));
    Ok(())
}
