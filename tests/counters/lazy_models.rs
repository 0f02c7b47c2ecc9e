//! Models load on first use: a re-run served from the cache creates no ONNX session, and a
//! broken encoder is still reported before the editor does any work.
//!
//! In the `counters` binary, because it counts the sessions the whole process creates.

use crate::common::{copy_bundle, gsmile, repo, stderr};
use gsmile::cache::ArrayCache;
use gsmile::explain::{self, ExplainConfig, ImageInfo, NoProgress, RunOptions};
use gsmile::models::{Models, OpenOptions};
use gsmile::runtime::sessions_created;

fn explain_once(cache: &std::path::Path, kernel_width: f64) -> explain::ExplainRun {
    let config = ExplainConfig {
        samples: 24,
        kernel_width: Some(kernel_width),
        weighting: explain::Weighting::TextWasserstein,
        ..ExplainConfig::default()
    };
    let models =
        Models::open(&repo("onnx/tiny-editor"), &repo("onnx/tiny-clip"), config.needs(), &OpenOptions::default())
            .unwrap();
    let image = gsmile::imaging::load_rgb(&repo("assets/scene-01.png")).unwrap();
    let image_info = ImageInfo { path: "scene-01".into(), sha256: String::new(), width: 64, height: 64 };
    let run = RunOptions { max_batch: 32, cache: Some(ArrayCache::new(cache)), ..RunOptions::default() };
    explain::explain(&image, image_info, "make the car red", &models, &config, &run, &NoProgress).unwrap()
}

#[test]
fn a_cached_rerun_loads_no_model_and_a_broken_encoder_fails_before_editing() {
    let _alone = crate::alone();
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");

    let before = sessions_created();
    let first = explain_once(&cache, 0.25);
    assert_eq!(first.explanation.counts.cached_edits, 0);
    let loaded = sessions_created() - before;
    assert_eq!(loaded, 3, "editor, image tower and text tower");

    let again = explain_once(&cache, 0.05);
    assert_eq!(again.explanation.counts.cached_edits, again.explanation.counts.distinct_edits);
    assert_eq!(sessions_created() - before, loaded, "the cached re-run created sessions");
    assert_ne!(first.explanation.kernel_width, again.explanation.kernel_width);

    // A cold run with a corrupt image tower: the error names the file, and the editor ran no
    // edit first (nothing reached the cache).
    let clip = copy_bundle("tiny-clip", &dir.path().join("clip"));
    std::fs::write(clip.join("image.onnx"), b"not a model").unwrap();
    let cold = dir.path().join("cold-cache");
    let out = dir.path().join("out");
    let o = gsmile(&[
        "explain",
        "--image",
        "assets/scene-01.png",
        "--instruction",
        "make the car red",
        "--samples",
        "16",
        "--encoder",
        clip.to_str().unwrap(),
        "--cache",
        cold.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--quiet",
    ]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("image.onnx"), "{}", stderr(&o));
    let cached_files = walk(&cold).into_iter().filter(|p| !p.ends_with("file-sha256.json")).count();
    assert_eq!(cached_files, 0, "the editor ran before the broken encoder was reported");
    assert!(!out.exists());
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
    entries.flatten().flat_map(|e| if e.path().is_dir() { walk(&e.path()) } else { vec![e.path()] }).collect()
}
