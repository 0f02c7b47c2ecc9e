//! Attribution accuracy and spatial localisation on the synthetic world, where the true
//! key words and object masks are known exactly.
//!
//! Cases come from `tests/fixtures/accuracy/make_cases.py` (the world's instruction grammar
//! applied to the shipped asset scenes).

use crate::common::{mask, repo};
use gsmile::explain::{self, ExplainConfig, ImageInfo, NoProgress, RunOptions};
use gsmile::models::{Models, OpenOptions};

#[derive(serde::Deserialize)]
struct Case {
    scene: String,
    instruction: String,
    key_words: Vec<String>,
    roles: Vec<String>,
}

/// The shipped editor and encoder.
fn load() -> Models {
    let needs = ExplainConfig::default().needs();
    Models::open(&repo("onnx/tiny-editor"), &repo("onnx/tiny-clip"), needs, &OpenOptions::default()).unwrap()
}

fn run(models: &Models, scene: &str, instruction: &str, config: &ExplainConfig) -> explain::ExplainRun {
    let path = repo(&format!("assets/{scene}.png"));
    let image = gsmile::imaging::load_rgb(&path).unwrap();
    let image_info =
        ImageInfo { path: scene.into(), sha256: String::new(), width: image.width(), height: image.height() };
    explain::explain(&image, image_info, instruction, models, config, &RunOptions::default(), &NoProgress).unwrap()
}

/// Which word positions are key words: from the grammar's roles when they align with
/// gsmile's words, else by matching the key-word texts.
fn key_positions(case: &Case, words: &[String]) -> Vec<bool> {
    if case.roles.len() == words.len() {
        return case.roles.iter().map(|r| r == "key").collect();
    }
    words.iter().map(|w| case.key_words.iter().any(|k| k.eq_ignore_ascii_case(w))).collect()
}

#[test]
fn key_words_rank_top_on_the_world_grammar() {
    let cases: Vec<Case> =
        serde_json::from_slice(&std::fs::read(repo("tests/fixtures/accuracy/cases.json")).unwrap()).unwrap();
    assert!(cases.len() >= 20);
    let l = load();
    let config = ExplainConfig { samples: 64, spatial: false, ..ExplainConfig::default() };
    let mut precisions = Vec::new();
    let mut report = String::new();
    for case in &cases {
        let ex = run(&l, &case.scene, &case.instruction, &config).explanation;
        let words: Vec<String> = ex.words.iter().map(|w| w.word.text.clone()).collect();
        let key = key_positions(case, &words);
        let k = key.iter().filter(|&&b| b).count();
        assert!(k > 0, "no key word found in {:?}", case.instruction);
        let hits = ex.words.iter().filter(|w| w.rank <= k && key[w.word.index]).count();
        let p = hits as f64 / k as f64;
        precisions.push(p);
        let ranked: Vec<String> = {
            let mut v: Vec<_> = ex.words.iter().collect();
            v.sort_by_key(|w| w.rank);
            v.iter().map(|w| format!("{}:{:+.3}", w.word.text, w.attribution)).collect()
        };
        report += &format!("{p:.2}  {:?}  {}\n", case.instruction, ranked.join(" "));
    }
    let mean = precisions.iter().sum::<f64>() / precisions.len() as f64;
    println!("{report}mean precision@k = {mean:.3} over {} cases", precisions.len());
    assert!(mean >= 0.8, "mean precision@k {mean:.3} < 0.8\n{report}");
}

#[test]
fn car_heatmap_sits_on_the_car() {
    let l = load();
    let config = ExplainConfig { samples: 64, ..ExplainConfig::default() };
    let r = run(&l, "scene-01", "make the car red", &config);
    let car = r.explanation.words.iter().find(|w| w.word.text == "car").unwrap();
    let maps = r.heatmaps.as_ref().unwrap();
    let heat = maps.index_axis(ndarray::Axis(0), car.word.index);
    let m = mask("scene-01", "car");
    let grid = ndarray::Array2::from_shape_fn(heat.dim(), |(y, x)| m[y][x]);
    let share = gsmile::spatial::mass_share(heat, grid.view());
    println!("share of 'car' heat inside the car mask: {share:.3}");
    assert!(share >= 0.6, "only {share:.3} of the 'car' heat is on the car");
}

#[test]
fn heatmaps_fitted_on_distinct_edits_equal_the_per_sample_fit() {
    // 64 samples over 4 words repeat masks many times; the spatial fit merges repeats into weighted rows.
    let l = load();
    let config = ExplainConfig { samples: 12, strategy: gsmile::perturb::Strategy::Lime, ..ExplainConfig::default() };
    let r = run(&l, "scene-01", "make the car red", &config);
    assert!(r.edits.dim().0 < r.edit_of_sample.len(), "the case must repeat masks");
    let reference = r.input.view();
    let maps: Vec<_> = r
        .edit_of_sample
        .iter()
        .map(|&e| gsmile::spatial::change_map(r.edits.index_axis(ndarray::Axis(0), e), reference, config.patch))
        .collect();
    let views: Vec<_> = maps.iter().map(|m| m.view()).collect();
    let stacked = ndarray::stack(ndarray::Axis(0), &views).unwrap();
    let sign = config.spatial_reference.target_sign();
    let per_sample = gsmile::spatial::word_maps(r.masks.view(), stacked.view(), r.weights.view(), sign, None).unwrap();
    let merged = r.heatmaps.as_ref().unwrap();
    let scale = per_sample.iter().fold(0.0f32, |a, v| a.max(v.abs()));
    let worst = merged.iter().zip(&per_sample).fold(0.0f32, |a, (m, p)| a.max((m - p).abs()));
    assert!(scale > 0.0 && worst <= 1e-5 * scale, "merged fit differs by {worst} (scale {scale})");
}

#[test]
fn lpips_spatial_maps_sit_on_the_car_and_differ_from_rgb_maps() {
    let needs = ExplainConfig { spatial_space: explain::SpatialSpace::Lpips, ..ExplainConfig::default() }.needs();
    assert!(needs.lpips, "lpips spatial maps need the LPIPS network");
    let open = OpenOptions { lpips: Some(repo("onnx/lpips-alex")), ..OpenOptions::default() };
    let l = Models::open(&repo("onnx/tiny-editor"), &repo("onnx/tiny-clip"), needs, &open).unwrap();
    let config = ExplainConfig { samples: 64, spatial_space: explain::SpatialSpace::Lpips, ..ExplainConfig::default() };
    let r = run(&l, "scene-01", "make the car red", &config);
    let rgb = run(&l, "scene-01", "make the car red", &ExplainConfig { samples: 64, ..ExplainConfig::default() });
    let car = r.explanation.words.iter().find(|w| w.word.text == "car").unwrap();
    let (maps, rgb_maps) = (r.heatmaps.as_ref().unwrap(), rgb.heatmaps.as_ref().unwrap());
    assert_eq!(maps.dim(), rgb_maps.dim(), "LPIPS maps come back at the edits' size");
    let heat = maps.index_axis(ndarray::Axis(0), car.word.index);
    let m = mask("scene-01", "car");
    let grid = ndarray::Array2::from_shape_fn(heat.dim(), |(y, x)| m[y][x]);
    let share = gsmile::spatial::mass_share(heat, grid.view());
    let area = grid.iter().filter(|&&b| b).count() as f64 / grid.len() as f64;
    println!("share of 'car' LPIPS heat inside the car mask: {share:.3} (the car is {area:.3} of the image)");
    // LPIPS's maps are coarser than RGB's (its layers pool), so they are held to ten times
    // the car's share of the image rather than RGB's 0.6.
    assert!(share >= 10.0 * area, "only {share:.3} of the 'car' LPIPS heat is on the car ({area:.3} of the image)");
    let gap = maps.iter().zip(rgb_maps.iter()).fold(0.0f32, |a, (x, y)| a.max((x - y).abs()));
    assert!(gap > 1e-3, "LPIPS maps equal the RGB maps (gap {gap})");
    // The attributions themselves are unchanged: only the maps' measure differs.
    assert_eq!(r.explanation.words, rgb.explanation.words);
}
