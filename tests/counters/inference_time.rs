//! `runtime::inference_time` sums the time spent inside session runs.

use crate::common::root;

#[test]
fn inference_time_counts_session_runs_only() {
    let _alone = crate::alone();
    let bundle = gsmile::bundle::Bundle::open(root().join("onnx/tiny-editor")).unwrap();
    let editor = gsmile::editor::OnnxEditor::load(&bundle, &Default::default()).unwrap();
    let image = gsmile::imaging::load_rgb(&root().join("assets/scene-01.png")).unwrap();
    let before = gsmile::runtime::inference_time();
    let t = std::time::Instant::now();
    gsmile::editor::edit_image(&editor, &image, "make the car red").unwrap();
    let wall = t.elapsed();
    let spent = gsmile::runtime::inference_time() - before;
    assert!(spent > std::time::Duration::ZERO, "a run was not counted");
    // No other session runs meanwhile (see `crate::alone`), but bound it loosely anyway.
    assert!(spent <= wall * 4, "{spent:?} counted for {wall:?} of wall time");
}
