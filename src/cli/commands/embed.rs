//! `gsmile embed`: image and text embeddings of a CLIP-style encoder, as JSON.

use anyhow::{Result, bail};
use gsmile::bundle::Bundle;
use gsmile::encoder::{ClipEncoder, TextEncoder};
use gsmile::imaging;

use crate::cli::args::{EmbedArgs, Global};

/// Embeds the images and texts and prints (or writes) the JSON.
pub fn run(a: &EmbedArgs, g: &Global) -> Result<()> {
    let runtime = g.runtime();
    if a.image.is_empty() && a.text.is_empty() {
        bail!("nothing to embed. Fix: pass --image FILE and/or --text TEXT");
    }
    let images: Vec<_> =
        a.image.iter().map(|p| imaging::load_rgb_limited(p, g.max_pixels)).collect::<Result<_, _>>()?;
    let bundle = Bundle::open(&a.encoder.encoder)?;
    let encoder = ClipEncoder::load(&bundle, &runtime)?;
    let image_embeds: Vec<Vec<f32>> = if images.is_empty() {
        Vec::new()
    } else {
        encoder.embed_pictures(&images)?.rows().into_iter().map(|r| r.to_vec()).collect()
    };
    let texts: Vec<&str> = a.text.iter().map(String::as_str).collect();
    let text_embeds = if texts.is_empty() { ndarray::Array2::zeros((0, 0)) } else { encoder.embed_texts(&texts)? };
    let similarity: Vec<Vec<f32>> = image_embeds
        .iter()
        .map(|ie| {
            text_embeds.rows().into_iter().map(|te| cosine_similarity(ie, te.as_slice().unwrap_or(&[]))).collect()
        })
        .collect();
    let json = serde_json::json!({
        "encoder": encoder.name(),
        "images": a.image.iter().zip(&image_embeds).map(|(p, e)| serde_json::json!({"path": p, "embedding": e})).collect::<Vec<_>>(),
        "texts": texts.iter().zip(text_embeds.rows()).map(|(t, e)| serde_json::json!({"text": t, "embedding": e.to_vec()})).collect::<Vec<_>>(),
        "cosine_image_text": similarity,
    });
    let text = serde_json::to_string_pretty(&json)? + "\n";
    match &a.out {
        Some(path) => gsmile::io::write_bytes_atomic(path, text.as_bytes())?,
        None => crate::cli::stdout::print(&text)?,
    }
    Ok(())
}

/// Cosine similarity of two embeddings in `f32`, as printed (0 where one is all zeros).
fn cosine_similarity(u: &[f32], v: &[f32]) -> f32 {
    let dot: f32 = u.iter().zip(v).map(|(a, b)| a * b).sum();
    let nu = u.iter().map(|a| a * a).sum::<f32>().sqrt();
    let nv = v.iter().map(|a| a * a).sum::<f32>().sqrt();
    dot / (nu * nv).max(f32::MIN_POSITIVE)
}
