//! Parity of `gsmile::preprocess` with Pillow's `Image.resize` and transformers'
//! `CLIPImageProcessorPil`.
//!
//! The reference outputs come from `tests/fixtures/preprocess/make_preprocess_fixtures.py`
//! (Pillow, numpy and transformers versions recorded in its `cases.json`).

use std::path::{Path, PathBuf};

use gsmile::preprocess::{ImageProcessor, Resample, pil_resize};
use image::RgbImage;
use ndarray::{Array2, Array3, Array4, ArrayView4};
use ndarray_npy::read_npy;
use serde::Deserialize;

/// Largest |difference| allowed in pixel_values: none, since the computation is the same
/// sequence of IEEE operations as numpy's (rescale in f64, cast, normalise in f32).
const PIXEL_TOL: f32 = 0.0;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn fixtures() -> PathBuf {
    root().join("tests/fixtures/preprocess")
}

fn regen_hint(path: &Path, e: impl std::fmt::Display) -> String {
    format!(
        "{}: {e}; regenerate with /opt/gsmile-py/bin/python tests/fixtures/preprocess/make_preprocess_fixtures.py",
        path.display()
    )
}

fn load_image(rel_to_root: &str) -> RgbImage {
    let path = root().join(rel_to_root);
    image::open(&path).unwrap_or_else(|e| panic!("{}", regen_hint(&path, e))).to_rgb8()
}

fn npy<T: ndarray_npy::ReadableElement, D: ndarray::Dimension>(rel: &str) -> ndarray::Array<T, D> {
    let path = fixtures().join(rel);
    read_npy(&path).unwrap_or_else(|e| panic!("{}", regen_hint(&path, e)))
}

#[derive(Deserialize)]
struct Cases {
    images: std::collections::BTreeMap<String, ImageInfo>,
    resize: Vec<ResizeCase>,
    configs: Vec<ConfigCase>,
    clip224: Clip224,
}

#[derive(Deserialize)]
struct ImageInfo {
    path: String,
    width: u32,
    height: u32,
}

#[derive(Deserialize)]
struct ResizeCase {
    image: String,
    width: u32,
    height: u32,
    filter: i64,
    file: String,
}

#[derive(Deserialize)]
struct ConfigCase {
    name: String,
    config: String,
    images: Vec<String>,
    pixel_values: String,
}

#[derive(Deserialize)]
struct Clip224 {
    config: String,
    lut_config: String,
    lut_image: String,
    lut: String,
    cases: Vec<Clip224Case>,
}

#[derive(Deserialize)]
struct Clip224Case {
    image: String,
    codes: String,
}

fn cases() -> Cases {
    let path = fixtures().join("cases.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}", regen_hint(&path, e)));
    serde_json::from_str(&text).unwrap()
}

fn image_of(cases: &Cases, name: &str) -> RgbImage {
    let info = &cases.images[name];
    let image = load_image(&info.path);
    assert_eq!((image.width(), image.height()), (info.width, info.height), "{name}");
    image
}

fn max_abs_diff(got: ArrayView4<f32>, want: ArrayView4<f32>) -> f32 {
    assert_eq!(got.shape(), want.shape());
    got.iter().zip(want.iter()).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max)
}

#[test]
fn resize_is_bit_exact_with_pillow() {
    let cases = cases();
    assert!(cases.resize.len() > 100);
    let mut worst = 0u8;
    let mut failures = Vec::new();
    for case in &cases.resize {
        let image = image_of(&cases, &case.image);
        let filter = Resample::from_pil_code(case.filter).expect("fixture filter");
        let got = pil_resize(&image, case.width, case.height, filter);
        let want: Array3<u8> = npy(&case.file);
        assert_eq!(want.shape(), &[case.height as usize, case.width as usize, 3], "{}", case.file);
        let diff = got.as_raw().iter().zip(want.iter()).map(|(a, b)| a.abs_diff(*b)).max().unwrap();
        if diff > 0 {
            failures.push(format!("{}: max |diff| {diff}", case.file));
        }
        worst = worst.max(diff);
    }
    eprintln!("{} resizes, max |diff| {worst}", cases.resize.len());
    assert!(failures.is_empty(), "worst {worst}; {} cases differ:\n{}", failures.len(), failures.join("\n"));
}

#[test]
fn pixel_values_match_transformers_on_small_configs() {
    let cases = cases();
    for case in &cases.configs {
        let processor = ImageProcessor::from_file(fixtures().join(&case.config)).unwrap();
        let images: Vec<RgbImage> = case.images.iter().map(|n| image_of(&cases, n)).collect();
        let got = processor.preprocess(&images);
        let want: Array4<f32> = npy(&case.pixel_values);
        let (h, w) = processor.output_size();
        assert_eq!(want.shape(), &[images.len(), 3, h as usize, w as usize], "{}", case.name);
        let diff = max_abs_diff(got.view(), want.view());
        eprintln!("{}: {} images, max |diff| {diff:e}", case.name, images.len());
        assert!(diff <= PIXEL_TOL, "{}: max |diff| {diff}", case.name);
    }
}

#[test]
fn pixel_values_match_transformers_on_clip_vit_l14() {
    let cases = cases();
    let clip = &cases.clip224;
    let lut: Array2<f32> = npy(&clip.lut);

    // The LUT is itself transformers' output for a 1x256 image holding every level.
    let lut_processor = ImageProcessor::from_file(fixtures().join(&clip.lut_config)).unwrap();
    let lut_image = load_image(&clip.lut_image);
    let got = lut_processor.preprocess(std::slice::from_ref(&lut_image));
    for c in 0..3 {
        for (x, px) in lut_image.pixels().enumerate() {
            let want = lut[[c, usize::from(px[c])]];
            assert_eq!(got[[0, c, 0, x]].to_bits(), want.to_bits(), "lut channel {c} level {}", px[c]);
        }
    }

    let processor = ImageProcessor::from_file(fixtures().join(&clip.config)).unwrap();
    assert_eq!(processor, ImageProcessor::default());
    assert_eq!(processor.output_size(), (224, 224));
    for case in &clip.cases {
        let got = processor.preprocess(&[image_of(&cases, &case.image)]);
        let codes = image::open(fixtures().join(&case.codes)).unwrap().to_rgb8();
        let want = Array4::from_shape_fn((1, 3, 224, 224), |(_, c, y, x)| {
            lut[[c, usize::from(codes.get_pixel(x as u32, y as u32)[c])]]
        });
        let diff = max_abs_diff(got.view(), want.view());
        eprintln!("clip224 {}: max |diff| {diff:e}", case.image);
        assert!(diff <= PIXEL_TOL, "{}: max |diff| {diff}", case.image);
    }
}
