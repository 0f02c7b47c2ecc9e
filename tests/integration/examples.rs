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
