//! The examples under `examples/` compile with `cargo test`; this runs `custom_editor`'s
//! code in-process (the file is compiled as a module here) and checks what it explains.

#[allow(dead_code)]
#[path = "../../examples/custom_editor.rs"]
mod custom_editor;

#[test]
fn the_custom_editor_example_ranks_the_words_its_toy_editor_reads() {
    let run = custom_editor::explain_paint().unwrap();
    let mut ranked: Vec<_> = run.explanation.words.iter().collect();
    ranked.sort_by_key(|w| w.rank);
    let top: std::collections::BTreeSet<&str> = ranked.iter().take(2).map(|w| w.word.text.as_str()).collect();
    assert_eq!(top, ["night", "red"].into_iter().collect(), "ranking: {ranked:?}");
    // The words the toy ignores carry (almost) nothing.
    for w in &ranked[2..] {
        assert!(w.attribution.abs() < 0.1 * ranked[0].attribution.abs(), "{w:?}");
    }
    assert!(run.heatmaps.is_some(), "explain() computes the spatial maps itself");
}

#[allow(dead_code)]
#[path = "../../examples/graded_edits.rs"]
mod graded_edits;

#[test]
fn lpips_and_real_features_order_graded_edits_of_real_photos() {
    let table = graded_edits::table();
    let row = |prefix: &str| &table.iter().find(|(name, _)| name.starts_with(prefix)).unwrap().1;
    let report: String = table.iter().map(|(n, v)| format!("{n}: {v:.4?}\n")).collect();
    // JPEG re-encode < small colour shift < blur < half the image replaced, on every real measure.
    for prefix in ["LPIPS", "AlexNet relu5 pooled, cosine", "AlexNet relu5 tokens, patch-OT"] {
        assert!(graded_edits::in_order(row(prefix)), "{prefix} misorders the graded edits\n{report}");
    }
    // Component-W1 on the same features is blind to which channel moved: it ranks the blur above
    // the replaced half, the failure patch-OT and cosine avoid.
    assert!(!graded_edits::in_order(row("AlexNet relu5 pooled, W1")), "{report}");
}
