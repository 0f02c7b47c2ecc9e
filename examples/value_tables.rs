//! Research tool: every coalition's value for each scenario of a suite (all 2^d masks),
//! so explanation methods can be compared offline at any budget.
//!
//! Run: `cargo run --release --example value_tables -- scenarios/odd-world outputs/values`

use std::path::PathBuf;

use gsmile::distance;
use gsmile::explain::{ExplainConfig, Measurer, NoProgress, RunOptions};
use gsmile::models::{Models, OpenOptions};
use gsmile::perturb;
use ndarray::{Axis, s};

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let suite = PathBuf::from(args.next().unwrap_or("scenarios/odd-world".into()));
    let out = PathBuf::from(args.next().unwrap_or("outputs/values".into()));
    let max_words: usize = args.next().map(|a| a.parse().unwrap()).unwrap_or(14);
    std::fs::create_dir_all(&out)?;
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let config = ExplainConfig::default();
    let models = Models::open(&root.join("onnx/tiny-editor"), &root.join("onnx/tiny-clip"), config.needs(), &OpenOptions::default())?;
    let suite = gsmile::scenario::load_suite(&suite)?;
    let run = RunOptions { max_batch: 64, cache: None };
    for s in &suite.scenarios {
        let path = out.join(format!("{}.json", s.id));
        if path.exists() {
            continue;
        }
        let words = perturb::split_words(&s.instruction);
        let d = words.len();
        if d > max_words {
            continue;
        }
        let image = gsmile::imaging::load_rgb(&s.image)?;
        let m = Measurer::new(&image, &models, &config, &run);
        let n = 1usize << d;
        // mask index bits: bit k (from the left, word k) = 1 kept; index n-1 = full.
        let masks: Vec<Vec<bool>> = (0..n).map(|b| (0..d).map(|k| b >> (d - 1 - k) & 1 == 1).collect()).collect();
        let rendered: Vec<String> = masks.iter().map(|mk| perturb::render(&s.instruction, &words, mk, None)).collect();
        let (texts, of) = perturb::distinct_texts(rendered);
        let full_idx = of[n - 1];
        let full_text = texts[full_idx].clone();
        let full_edit = m.edit(&[full_text.clone()], &NoProgress)?;
        let input = m.input().to_owned();
        let emb_full = m.embed_images(full_edit.view())?.row(0).to_vec();
        let emb_input = m.embed_images(input.view().insert_axis(Axis(0)))?.row(0).to_vec();
        let mut d_full = vec![0.0; texts.len()];
        let mut d_input = vec![0.0; texts.len()];
        let mut cos_full = vec![0.0; texts.len()];
        let mut pix_full = vec![0.0; texts.len()];
        for start in (0..texts.len()).step_by(512) {
            let end = (start + 512).min(texts.len());
            let edits = m.edit(&texts[start..end], &NoProgress)?;
            let emb = m.embed_images(edits.view())?;
            for i in start..end {
                let e = emb.row(i - start).to_vec();
                d_full[i] = distance::wasserstein_1d(&e, &emb_full);
                d_input[i] = distance::wasserstein_1d(&e, &emb_input);
                cos_full[i] = distance::cosine_distance(&e, &emb_full);
                pix_full[i] = distance::pixel_wasserstein(edits.slice(s![i - start, .., .., ..]), full_edit.index_axis(Axis(0), 0));
            }
        }
        let temb = m.embed_texts(&texts)?;
        let tfull = temb.row(full_idx).to_vec();
        let text_w1: Vec<f64> = (0..texts.len()).map(|i| distance::wasserstein_1d(&temb.row(i).to_vec(), &tfull)).collect();
        let word_texts: Vec<String> = words.iter().map(|w| w.text.clone()).collect();
        let wv = m.embed_texts(&word_texts)?;
        let word_vectors: Vec<Vec<f32>> = wv.outer_iter().map(|r| r.to_vec()).collect();
        let key = gsmile::evaluate::measure::key_labels(&word_texts, &s.key_words);
        let json = serde_json::json!({
            "id": s.id, "instruction": s.instruction, "words": word_texts, "key": key,
            "odd": s.odd,
            "of": of, "texts": texts, "d_full": d_full, "d_input": d_input, "cos_full": cos_full,
            "pix_full": pix_full, "text_w1": text_w1, "word_vectors": word_vectors,
        });
        std::fs::write(&path, serde_json::to_vec(&json)?)?;
        eprintln!("{} d={d} texts={}", s.id, texts.len());
    }
    Ok(())
}
