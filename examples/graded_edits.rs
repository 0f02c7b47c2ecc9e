//! How each representation ranks graded edits of real photographs: a JPEG re-encode, a small
//! colour shift, a strong blur, and half the image replaced. Prints a Markdown table (the
//! README's "which space" table); `tests/integration/examples.rs` checks the order it finds.
//!
//! ```text
//! cargo run --release --example graded_edits
//! ```

use std::path::{Path, PathBuf};

use gsmile::bundle::Bundle;
use gsmile::distance::{self, Metric};
use gsmile::encoder::{ClipEncoder, FeatureEncoder, ImageEncoder};
use gsmile::lpips::Lpips;
use gsmile::runtime::RuntimeOptions;
use image::RgbImage;
use ndarray::{Array3, Array4, Axis};

/// The edits, mildest first, as the table's columns name them.
pub const EDITS: [&str; 4] = ["JPEG q90", "colour shift", "blur σ=2", "half replaced"];

/// A stronger blur, measured beside the graded four (where it ranks is the point of interest).
pub const EXTRA: &str = "blur σ=4";

/// The photographs the table averages over.
pub const PHOTOS: [&str; 4] = ["astronaut", "chelsea", "coffee", "rocket"];

fn repo(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

/// `photo` edited four ways, mildest first, then the [`EXTRA`] edit; `other` fills the replaced half.
pub fn graded_edits(photo: &RgbImage, other: &RgbImage) -> Vec<RgbImage> {
    let (w, h) = photo.dimensions();
    let mut jpeg = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpeg, 90).encode_image(photo).expect("encode JPEG");
    let jpeg = image::load_from_memory(&jpeg).expect("decode JPEG").to_rgb8();
    let mut shifted = photo.clone();
    for p in shifted.pixels_mut() {
        // A warm tint: red up, blue down, by 10 grey levels.
        p[0] = p[0].saturating_add(10);
        p[2] = p[2].saturating_sub(10);
    }
    let blurred = image::imageops::blur(photo, 2.0);
    let very_blurred = image::imageops::blur(photo, 4.0);
    let other = image::imageops::resize(other, w, h, image::imageops::FilterType::Triangle);
    let mut half = photo.clone();
    for (x, y, p) in half.enumerate_pixels_mut() {
        if x >= w / 2 {
            *p = *other.get_pixel(x, y);
        }
    }
    vec![jpeg, shifted, blurred, half, very_blurred]
}

/// One representation's distance of each edit to the original.
type Measure = Box<dyn Fn(&Array3<f32>, &Array4<f32>) -> Vec<f64>>;

fn by_vectors(encoder: std::sync::Arc<dyn ImageEncoder>, metric: Metric) -> Measure {
    Box::new(move |original, edits| {
        let r = encoder.embed_images(original.view().insert_axis(Axis(0))).expect("embed original");
        let e = encoder.embed_images(edits.view()).expect("embed edits");
        let r = r.row(0).to_vec();
        e.rows()
            .into_iter()
            .map(|row| distance::between_vectors(metric, &row.to_vec(), &r).expect("distance"))
            .collect()
    })
}

/// The representations of the table: a name and how it measures.
pub fn measures() -> Vec<(String, Measure)> {
    let rt = RuntimeOptions::default();
    let open = |rel: &str| Bundle::open(repo(rel)).expect("bundle");
    let clip: std::sync::Arc<dyn ImageEncoder> =
        std::sync::Arc::new(ClipEncoder::load(&open("onnx/tiny-clip"), &rt).expect("tiny-clip"));
    let alex = std::sync::Arc::new(FeatureEncoder::load(&open("onnx/alexnet-features"), &rt).expect("alexnet"));
    let dino: std::sync::Arc<dyn ImageEncoder> =
        std::sync::Arc::new(FeatureEncoder::load(&open("onnx/tiny-dinov2"), &rt).expect("tiny-dinov2"));
    let lpips = Lpips::load(&open("onnx/lpips-alex"), &rt).expect("lpips");
    let alex_tokens = alex.clone();
    vec![
        (
            "pixels, W1 per channel".into(),
            Box::new(|o: &Array3<f32>, e: &Array4<f32>| {
                e.outer_iter()
                    .map(|x| distance::between_images(Metric::Wasserstein, x, o.view(), 0).expect("pixels"))
                    .collect()
            }) as Measure,
        ),
        (
            "tiny-clip embedding, W1 over components (gSMILE's default)".into(),
            by_vectors(clip.clone(), Metric::Wasserstein),
        ),
        ("tiny-clip embedding, cosine".into(), by_vectors(clip, Metric::Cosine)),
        (
            "LPIPS (AlexNet, ImageNet)".into(),
            Box::new(move |o: &Array3<f32>, e: &Array4<f32>| lpips.measure(e.view(), o.view()).expect("lpips").0),
        ),
        ("AlexNet relu5 pooled, W1 over components".into(), by_vectors(alex.clone(), Metric::Wasserstein)),
        ("AlexNet relu5 pooled, cosine".into(), by_vectors(alex, Metric::Cosine)),
        (
            "AlexNet relu5 tokens, patch-OT".into(),
            Box::new(move |o: &Array3<f32>, e: &Array4<f32>| {
                let r = alex_tokens.embed_tokens(o.view().insert_axis(Axis(0))).expect("tokens");
                let t = alex_tokens.embed_tokens(e.view()).expect("tokens");
                t.outer_iter().map(|x| distance::patch_ot(x, r.index_axis(Axis(0), 0))).collect()
            }),
        ),
        ("tiny-dinov2 (random weights), cosine".into(), by_vectors(dino, Metric::Cosine)),
    ]
}

/// Each representation's name and its mean distance per edit (over [`PHOTOS`]), in [`EDITS`]
/// order, then [`EXTRA`].
pub fn table() -> Vec<(String, Vec<f64>)> {
    let load = |name: &str| gsmile::imaging::load_rgb(&repo(&format!("assets/photos/{name}.png"))).expect("photo");
    let measures = measures();
    let mut sums = vec![vec![0.0; EDITS.len() + 1]; measures.len()];
    for (k, name) in PHOTOS.iter().enumerate() {
        let photo = load(name);
        let other = load(PHOTOS[(k + 1) % PHOTOS.len()]);
        let original = gsmile::imaging::to_tensor(&photo);
        let edits: Vec<Array3<f32>> = graded_edits(&photo, &other).iter().map(gsmile::imaging::to_tensor).collect();
        let views: Vec<_> = edits.iter().map(|e| e.view()).collect();
        let edits = ndarray::stack(Axis(0), &views).expect("same size");
        for (m, (_, measure)) in measures.iter().enumerate() {
            for (s, d) in sums[m].iter_mut().zip(measure(&original, &edits)) {
                *s += d / PHOTOS.len() as f64;
            }
        }
    }
    measures.into_iter().map(|(name, _)| name).zip(sums).collect()
}

/// Whether `values` grow strictly from the mildest of [`EDITS`] to the strongest.
pub fn in_order(values: &[f64]) -> bool {
    values[..EDITS.len()].windows(2).all(|w| w[0] < w[1])
}

#[allow(dead_code)]
fn main() {
    println!("| space | {} | in order | {EXTRA} |", EDITS.join(" | "));
    println!("|---|{}---|---|", "---|".repeat(EDITS.len()));
    for (name, values) in table() {
        let cells: Vec<String> = values.iter().map(|v| format!("{v:.4}")).collect();
        let order = if in_order(&values) { "yes" } else { "no" };
        println!("| {name} | {} | {order} | {} |", cells[..EDITS.len()].join(" | "), cells[EDITS.len()]);
    }
}
