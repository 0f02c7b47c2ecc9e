//! `Models::open` and the identities results record: the library opens bundles itself,
//! opens an encoder only when the config needs one, and names the folder that fails.

use crate::common::repo;
use gsmile::explain::{ExplainConfig, ImageInfo, Space, Weighting};
use gsmile::models::{ModelInfo, Models, OpenOptions};

#[test]
fn open_gives_the_editor_and_only_the_encoders_the_config_needs() {
    let (editor, encoder) = (repo("onnx/tiny-editor"), repo("onnx/tiny-clip"));
    let open = OpenOptions::default();
    let full = Models::open(&editor, &encoder, ExplainConfig::default().needs(), &open).unwrap();
    assert_eq!(full.editor.size(), (64, 64));
    assert!(full.image_encoder.is_some() && full.text_encoder.is_some());
    let bundle = gsmile::bundle::Bundle::open(&editor).unwrap();
    assert_eq!(full.editor_info, ModelInfo::from_bundle(&bundle, "", None).unwrap());
    assert_eq!(full.editor_info.sha256, bundle.content_hash().unwrap());
    assert_eq!(full.encoder_info.as_ref().unwrap().name, "tiny-clip");

    let pixels = ExplainConfig { space: Space::Pixels, weighting: Weighting::MaskCosine, ..ExplainConfig::default() };
    let missing = repo("onnx/no-such-encoder");
    let bare = Models::open(&editor, &missing, pixels.needs(), &open).unwrap();
    assert!(bare.image_encoder.is_none() && bare.text_encoder.is_none() && bare.encoder_info.is_none());

    let err = Models::open(&editor, &missing, ExplainConfig::default().needs(), &open).err().unwrap().to_string();
    assert!(err.contains("no-such-encoder"), "{err}");
}

#[test]
fn image_info_hashes_the_file_and_reads_its_size() {
    let path = repo("assets/scene-01.png");
    let info = ImageInfo::from_file(&path).unwrap();
    let image = gsmile::imaging::load_rgb(&path).unwrap();
    assert_eq!((info.width, info.height), (image.width(), image.height()));
    assert_eq!(info.sha256, gsmile::cache::file_sha256(&path).unwrap());
    let err = ImageInfo::from_file(&repo("Cargo.toml")).unwrap_err().to_string();
    assert!(err.contains("Cargo.toml"), "{err}");
}
