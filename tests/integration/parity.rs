//! Rust inference and tokenisation equal onnxruntime and `tokenizers` in Python.
//!
//! Fixtures in `tests/fixtures/parity/` were made by `tests/fixtures/make_parity.py`.

use crate::common::repo;
use gsmile::bundle::Bundle;
use gsmile::editor::{Editor, OnnxEditor, edit_many};
use gsmile::encoder::{ClipEncoder, ImageEncoder, TextEncoder};
use gsmile::imaging;
use gsmile::runtime::RuntimeOptions;
use gsmile::tokenizer::InstructionTokenizer;
use ndarray::{Array2, Array4, Axis};
use ndarray_npy::read_npy;

fn fixture(name: &str) -> std::path::PathBuf {
    repo("tests/fixtures/parity").join(name)
}

fn texts(name: &str) -> Vec<String> {
    serde_json::from_slice(&std::fs::read(fixture(name)).unwrap()).unwrap()
}

fn max_abs_diff<D: ndarray::Dimension>(a: &ndarray::Array<f32, D>, b: &ndarray::Array<f32, D>) -> f32 {
    assert_eq!(a.shape(), b.shape());
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

fn editor(threads: usize) -> OnnxEditor {
    OnnxEditor::load(&Bundle::open(repo("onnx/tiny-editor")).unwrap(), &RuntimeOptions { threads }).unwrap()
}

fn clip() -> ClipEncoder {
    ClipEncoder::load(&Bundle::open(repo("onnx/tiny-clip")).unwrap(), &RuntimeOptions::default()).unwrap()
}

#[test]
fn token_ids_equal_python_tokenizers() {
    #[derive(serde::Deserialize)]
    struct Case {
        text: String,
        input_ids: Vec<i64>,
        attention_mask: Vec<i64>,
    }
    let cases: Vec<Case> = serde_json::from_slice(&std::fs::read(fixture("tokens.json")).unwrap()).unwrap();
    assert!(cases.len() >= 10);
    let bundle = Bundle::open(repo("onnx/tiny-editor")).unwrap();
    let tok = InstructionTokenizer::from_bundle(&bundle).unwrap();
    for case in &cases {
        let enc = tok.encode(&[case.text.as_str()]).unwrap();
        assert_eq!(enc.input_ids.row(0).to_vec(), case.input_ids, "ids of {:?}", case.text);
        assert_eq!(enc.attention_mask.row(0).to_vec(), case.attention_mask, "mask of {:?}", case.text);
    }
}

#[test]
fn asset_pixels_equal_python_loading() {
    let images: Array4<f32> = read_npy(fixture("editor_images.npy")).unwrap();
    for (k, expected) in images.axis_iter(Axis(0)).enumerate() {
        let img = imaging::load_rgb(&repo(&format!("assets/scene-{:02}.png", k + 1))).unwrap();
        assert_eq!(imaging::to_tensor(&img), expected, "scene-{:02}", k + 1);
    }
}

#[test]
fn editor_equals_onnxruntime_python() {
    let images: Array4<f32> = read_npy(fixture("editor_images.npy")).unwrap();
    let expected: Array4<f32> = read_npy(fixture("editor_output.npy")).unwrap();
    let ids: Array2<i64> = read_npy(fixture("editor_input_ids.npy")).unwrap();
    let instructions = texts("editor_texts.json");
    let refs: Vec<&str> = instructions.iter().map(String::as_str).collect();
    let ed = editor(0);
    assert_eq!(ed.tokenizer().encode(&refs).unwrap().input_ids, ids);
    let got = ed.edit(images.view(), &refs).unwrap();
    let diff = max_abs_diff(&got, &expected);
    assert!(diff <= 1e-4, "max abs diff {diff}");
}

#[test]
fn editor_results_do_not_depend_on_threads_or_batching() {
    let images: Array4<f32> = read_npy(fixture("editor_images.npy")).unwrap();
    let instructions = texts("editor_texts.json");
    let refs: Vec<&str> = instructions.iter().map(String::as_str).collect();
    let a = editor(1).edit(images.view(), &refs).unwrap();
    let ed = editor(2);
    let one_by_one: Vec<Array4<f32>> = (0..refs.len())
        .map(|i| ed.edit(images.slice(ndarray::s![i..i + 1, .., .., ..]), &refs[i..i + 1]).unwrap())
        .collect();
    let b = ndarray::concatenate(Axis(0), &one_by_one.iter().map(|a| a.view()).collect::<Vec<_>>()).unwrap();
    assert!(max_abs_diff(&a, &b) <= 1e-5);
    // One shared image: a single call (all instructions fit) and calls of two give the same edits.
    let image = images.index_axis(Axis(0), 0);
    let whole = edit_many(&editor(1), image, &refs, refs.len()).unwrap();
    let pairs = edit_many(&editor(1), image, &refs, 2).unwrap();
    assert_eq!(whole.dim().0, refs.len());
    assert!(max_abs_diff(&whole, &pairs) <= 1e-5);
}

#[test]
fn editor_accepts_an_empty_instruction() {
    // gSMILE samples may drop every word; the editor must still produce a finite image.
    let images: Array4<f32> = read_npy(fixture("editor_images.npy")).unwrap();
    let one = images.slice(ndarray::s![0..1, .., .., ..]);
    let out = editor(0).edit(one, &[""]).unwrap();
    assert!(out.iter().all(|v| v.is_finite() && (0.0..=1.0).contains(v)));
}

#[test]
fn clip_image_tower_equals_onnxruntime_python() {
    let images: Array4<f32> = read_npy(fixture("editor_images.npy")).unwrap();
    let expected: Array2<f32> = read_npy(fixture("clip_image_embeds.npy")).unwrap();
    let pixels: Array4<f32> = read_npy(fixture("clip_pixel_values.npy")).unwrap();
    let enc = clip();
    // Both the raw graph call and the full path from [0,1] images (normalisation in Rust).
    assert!(max_abs_diff(&enc.embed_pixel_values(pixels.view()).unwrap(), &expected) <= 1e-4);
    let diff = max_abs_diff(&enc.embed_images(images.view()).unwrap(), &expected);
    assert!(diff <= 1e-4, "max abs diff {diff}");
}

#[test]
fn clip_text_tower_equals_onnxruntime_python() {
    let expected: Array2<f32> = read_npy(fixture("clip_text_embeds.npy")).unwrap();
    let captions = texts("clip_texts.json");
    let refs: Vec<&str> = captions.iter().map(String::as_str).collect();
    let diff = max_abs_diff(&clip().embed_texts(&refs).unwrap(), &expected);
    assert!(diff <= 1e-4, "max abs diff {diff}");
}

#[test]
fn editor_takes_an_empty_batch() {
    let images: Array4<f32> = read_npy(fixture("editor_images.npy")).unwrap();
    let (_, c, h, w) = images.dim();
    let none = images.slice(ndarray::s![0..0, .., .., ..]);
    assert_eq!(editor(0).edit(none, &[]).unwrap().dim(), (0, c, h, w));
    assert_eq!(edit_many(&editor(0), images.index_axis(Axis(0), 0), &[], 4).unwrap().dim(), (0, c, h, w));
}
