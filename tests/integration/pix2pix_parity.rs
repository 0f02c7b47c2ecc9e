//! The Rust InstructPix2Pix pipeline reproduces diffusers' `StableDiffusionInstructPix2PixPipeline`.
//!
//! Fixtures in `tests/fixtures/ip2p/` were made by `tests/fixtures/ip2p/make_ip2p_fixtures.py`:
//! the tiny random-weight pipeline of `onnx/make_tiny_ip2p.py` run by diffusers 0.42 in
//! float32 with injected initial latents and per-step noise, for two guidance settings × two
//! step counts (plus one without guidance), and diffusers' Euler ancestral scheduler itself.

use crate::common::{self, repo};
use gsmile::bundle::Bundle;
use gsmile::editor::DiffusionSettings;
use gsmile::editor::pix2pix::{InstructPix2Pix, NoisePlan};
use gsmile::editor::scheduler::{EulerAncestral, Scheduler, SchedulerConfig};
use gsmile::imaging;
use gsmile::runtime::RuntimeOptions;
use ndarray::{Array3, Array4, Array5, Axis};
use ndarray_npy::read_npy;

fn fixture(rel: &str) -> std::path::PathBuf {
    repo("tests/fixtures/ip2p").join(rel)
}

fn json(rel: &str) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(fixture(rel)).unwrap()).unwrap()
}

fn max_abs_diff<D: ndarray::Dimension>(a: &ndarray::Array<f32, D>, b: &ndarray::Array<f32, D>) -> f32 {
    assert_eq!(a.shape(), b.shape());
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

fn psnr(a: &Array4<f32>, b: &Array4<f32>) -> f64 {
    let mse = a.iter().zip(b).map(|(x, y)| f64::from(x - y).powi(2)).sum::<f64>() / a.len() as f64;
    if mse == 0.0 { f64::INFINITY } else { 10.0 * (1.0 / mse).log10() }
}

fn pipeline(overrides: DiffusionSettings) -> InstructPix2Pix {
    InstructPix2Pix::load(&Bundle::open(repo("onnx/tiny-ip2p")).unwrap(), &RuntimeOptions::default(), overrides)
        .unwrap()
}

fn prompts() -> Vec<String> {
    json("cases.json")["prompts"].as_array().unwrap().iter().map(|p| p.as_str().unwrap().to_string()).collect()
}

fn input() -> Array4<f32> {
    imaging::to_tensor(&imaging::load_rgb(&fixture("input.png")).unwrap()).insert_axis(Axis(0))
}

#[test]
fn text_and_image_conditioning_equal_diffusers() {
    let p = pipeline(DiffusionSettings::default());
    let prompts = prompts();
    let refs: Vec<&str> = prompts.iter().map(String::as_str).collect();
    let embeds = p.encode_prompts(&refs).unwrap();
    let want: Array3<f32> = read_npy(fixture("prompt_embeds.npy")).unwrap();
    assert!(max_abs_diff(&embeds, &want) < 1e-4, "prompt embeds differ by {}", max_abs_diff(&embeds, &want));
    let uncond = p.encode_prompts(&[""]).unwrap();
    let want: Array3<f32> = read_npy(fixture("negative_prompt_embeds.npy")).unwrap();
    assert!(max_abs_diff(&uncond, &want) < 1e-4);
    let latents = p.encode_images(input().view()).unwrap();
    let want: Array4<f32> = read_npy(fixture("image_latents.npy")).unwrap();
    assert!(max_abs_diff(&latents, &want) < 1e-4, "image latents differ by {}", max_abs_diff(&latents, &want));
}

#[test]
fn denoising_and_decoding_equal_diffusers_for_every_case() {
    let cases = json("cases.json");
    let prompts = prompts();
    let refs: Vec<&str> = prompts.iter().map(String::as_str).collect();
    let initial: Array4<f32> = read_npy(fixture("latents.npy")).unwrap();
    let noise: Array5<f32> = read_npy(fixture("noise.npy")).unwrap();
    let mut settings = std::collections::HashSet::new();
    for case in cases["cases"].as_array().unwrap() {
        let name = case["name"].as_str().unwrap();
        let steps = case["num_inference_steps"].as_u64().unwrap() as usize;
        let (g, gi) =
            (case["guidance_scale"].as_f64().unwrap() as f32, case["image_guidance_scale"].as_f64().unwrap() as f32);
        let p = pipeline(DiffusionSettings {
            steps: Some(steps),
            guidance_scale: Some(g),
            image_guidance_scale: Some(gi),
            ..Default::default()
        })
        .with_max_batch(5); // rows of one UNet call: not a multiple of 3, so samples straddle batches
        let sched = p.scheduler();
        let want_t: Vec<f32> =
            case["timesteps"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap() as f32).collect();
        assert_eq!(sched.timesteps(), want_t.as_slice(), "{name}: timesteps");
        let plan = NoisePlan {
            initial: initial.clone(),
            steps: (0..steps).map(|k| noise.index_axis(Axis(0), k).to_owned()).collect(),
        };
        let embeds = p.encode_prompts(&refs).unwrap();
        let uncond = p.encode_prompts(&[""]).unwrap();
        let image = p.encode_images(input().view()).unwrap();
        let mut seen = 0;
        let latents =
            p.denoise(image.view(), embeds.view(), uncond.index_axis(Axis(0), 0), &plan, |_| seen += 1).unwrap();
        assert_eq!(seen, steps);
        let want: Array4<f32> = read_npy(fixture(case["latents_file"].as_str().unwrap())).unwrap();
        let diff = max_abs_diff(&latents, &want);
        assert!(diff <= 1e-3, "{name}: latents differ by {diff}");
        let images = p.decode(latents.view()).unwrap();
        let want: Array4<f32> = read_npy(fixture(case["images_file"].as_str().unwrap())).unwrap();
        let db = psnr(&images, &want);
        assert!(db >= 40.0, "{name}: decoded PSNR {db:.1} dB");
        eprintln!("{name}: latents max abs diff {diff:.2e}, image PSNR {db:.1} dB");
        settings.insert((g.to_bits(), gi.to_bits(), steps));
    }
    let guided: std::collections::HashSet<_> =
        settings.iter().filter(|(g, _, _)| f32::from_bits(*g) > 1.0).map(|(g, gi, _)| (*g, *gi)).collect();
    let step_counts: std::collections::HashSet<_> = settings.iter().map(|(_, _, s)| *s).collect();
    assert!(guided.len() >= 2 && step_counts.len() >= 2, "fixtures must cover ≥2 guidance settings and ≥2 step counts");
}

#[test]
fn a_sample_does_not_depend_on_its_batch() {
    // gSMILE caches edits per instruction: the same instruction must give the same image alone or among others.
    let p = pipeline(DiffusionSettings { steps: Some(3), ..Default::default() }).with_max_batch(4);
    let image = p.encode_images(input().view()).unwrap();
    let alone = p.edit_latents(image.view(), &["make the car red"]).unwrap();
    let among = p.edit_latents(image.view(), &["turn the sky orange", "", "make the car red"]).unwrap();
    let diff = max_abs_diff(&alone.index_axis(Axis(0), 0).to_owned(), &among.index_axis(Axis(0), 2).to_owned());
    assert!(diff < 1e-5, "batch changed a sample by {diff}");
    let other = max_abs_diff(&among.index_axis(Axis(0), 0).to_owned(), &among.index_axis(Axis(0), 2).to_owned());
    assert!(other > 1e-2, "different instructions should give different edits ({other})");
}

#[test]
fn scheduler_equals_diffusers() {
    let f = json("scheduler.json");
    let base = f["base_config"].clone();
    let mut checked = 0;
    for case in f["set_timesteps"].as_array().unwrap() {
        let mut config = base.clone();
        config["timestep_spacing"] = case["timestep_spacing"].clone();
        config["prediction_type"] = case["prediction_type"].clone();
        let c: SchedulerConfig = serde_json::from_value(config).unwrap();
        let steps = case["num_inference_steps"].as_u64().unwrap() as usize;
        let s = EulerAncestral::new(&c, steps);
        let vec =
            |k: &str| case[k].as_array().unwrap().iter().map(|v| v.as_f64().unwrap() as f32).collect::<Vec<f32>>();
        assert_eq!(s.timesteps(), vec("timesteps").as_slice(), "{case}");
        for (a, b) in s.sigmas().iter().zip(vec("sigmas")) {
            assert!((a - b).abs() <= 1e-6 * b.abs().max(1.0), "{case}: sigma {a} vs {b}");
        }
        let init = case["init_noise_sigma"].as_f64().unwrap() as f32;
        assert!((s.init_noise_sigma() - init).abs() <= 1e-6 * init.max(1.0));
        checked += 1;
    }
    assert!(checked >= 18, "{checked} scheduler configs");
    for example in f["step_examples"].as_array().unwrap() {
        let mut config = base.clone();
        config["timestep_spacing"] = example["timestep_spacing"].clone();
        config["prediction_type"] = example["prediction_type"].clone();
        let c: SchedulerConfig = serde_json::from_value(config).unwrap();
        let s = EulerAncestral::new(&c, example["num_inference_steps"].as_u64().unwrap() as usize);
        let shape: Vec<usize> =
            example["shape"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as usize).collect();
        let arr = |v: &serde_json::Value| {
            let data: Vec<f32> = v.as_array().unwrap().iter().map(|x| x.as_f64().unwrap() as f32).collect();
            Array4::from_shape_vec((shape[0], shape[1], shape[2], shape[3]), data).unwrap()
        };
        for link in example["chain"].as_array().unwrap() {
            let k = link["step_index"].as_u64().unwrap() as usize;
            let sample = arr(&link["sample"]);
            let scaled = s.scale_model_input(sample.view(), k);
            assert!(max_abs_diff(&scaled, &arr(&link["scaled_model_input"])) < 1e-6);
            let prev = s.step(arr(&link["model_output"]).view(), k, sample.view(), arr(&link["noise"]).view());
            let want = arr(&link["prev_sample"]);
            let tol = 1e-5 * want.iter().fold(1.0f32, |m, x| m.max(x.abs()));
            assert!(max_abs_diff(&prev, &want) <= tol, "step {k}: {}", max_abs_diff(&prev, &want));
        }
    }
}

#[test]
fn edit_cli_runs_the_diffusion_loop() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("edited.png");
    let args = [
        "edit",
        "--editor",
        "onnx/tiny-ip2p",
        "--image",
        "assets/scene-01.png",
        "--instruction",
        "make the car red",
        "--steps",
        "3",
        "--out",
    ];
    let run = |seed: &str| {
        let mut a: Vec<&str> = args.to_vec();
        a.push(out.to_str().unwrap());
        a.extend(["--seed", seed, "--model-size", "--force"]);
        let o = common::gsmile(&a);
        assert!(o.status.success(), "{}", common::stderr(&o));
        std::fs::read(&out).unwrap()
    };
    let (a, b, c) = (run("0"), run("0"), run("1"));
    assert_eq!(a, b, "same seed, same image");
    assert_ne!(a, c, "another seed, another image");
    let img = image::load_from_memory(&a).unwrap();
    assert_eq!((img.width(), img.height()), (32, 32));
}

#[test]
fn bad_settings_and_layouts_are_named() {
    let o = common::gsmile(&[
        "edit",
        "--editor",
        "onnx/tiny-ip2p",
        "--image",
        "assets/scene-01.png",
        "--instruction",
        "x",
        "--size",
        "33",
        "--out",
        "/tmp/never.png",
    ]);
    assert!(!o.status.success());
    assert!(common::stderr(&o).contains("multiple"), "{}", common::stderr(&o));
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("model_index.json"), r#"{"_class_name": "StableDiffusionInstructPix2PixPipeline"}"#)
        .unwrap();
    let err = Bundle::open(dir.path()).unwrap_err().to_string();
    assert!(err.contains("scheduler/scheduler_config.json") && err.contains("export_ip2p.py"), "{err}");
    let sched = dir.path().join("s.json");
    std::fs::write(&sched, r#"{"_class_name": "EulerAncestralDiscreteScheduler", "beta_start": 0.5, "beta_end": 0.1}"#)
        .unwrap();
    let err = SchedulerConfig::from_file(&sched).unwrap_err().to_string();
    assert!(err.contains("beta_start") && err.contains("s.json"), "{err}");
}

#[test]
fn explain_cli_runs_on_the_diffusion_editor() {
    let dir = tempfile::tempdir().unwrap();
    let run = |name: &str| {
        let out = dir.path().join(name);
        let o = common::gsmile(&[
            "explain",
            "--editor",
            "onnx/tiny-ip2p",
            "--encoder",
            "onnx/tiny-clip-hf",
            "--image",
            "assets/scene-01.png",
            "--instruction",
            "make the car red",
            "--samples",
            "12",
            "--steps",
            "2",
            "--bootstrap",
            "10",
            "--max-batch",
            "7",
            "--no-cache",
            "--quiet",
            "--out",
            out.to_str().unwrap(),
        ]);
        assert!(o.status.success(), "{}", common::stderr(&o));
        let v: serde_json::Value =
            serde_json::from_slice(&std::fs::read(out.join("explanation.json")).unwrap()).unwrap();
        let words: Vec<(String, f64)> = v["words"]
            .as_array()
            .unwrap()
            .iter()
            .map(|w| (w["text"].as_str().unwrap().to_string(), w["attribution"].as_f64().unwrap()))
            .collect();
        assert!(out.join("report.html").is_file() && out.join("overlays.png").is_file());
        assert_eq!(v["editor"]["params"]["steps"], 2, "the diffusion settings are recorded: {}", v["editor"]);
        words
    };
    let (a, b) = (run("a"), run("b"));
    assert_eq!(a.len(), 4, "{a:?}");
    assert_eq!(a, b, "same seeds, same attributions");
}

/// Copies a folder tree.
fn copy_tree(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap().flatten() {
        let dest = to.join(e.file_name());
        if e.path().is_dir() {
            copy_tree(&e.path(), &dest)
        } else {
            std::fs::copy(e.path(), dest).unwrap();
        }
    }
}

#[test]
fn float16_unet_and_vae_exports_run_with_conversion_at_the_boundary() {
    // tests/fixtures/ip2p/fp16/*.onnx: `onnx/export_ip2p.py /tmp/tiny-ip2p-ckpt OUT --fp16` of the same checkpoint
    // (float16 weights, inputs and outputs; the UNet's timestep stays float32).
    let dir = tempfile::tempdir().unwrap();
    let bundle = dir.path().join("tiny-ip2p-fp16");
    copy_tree(&repo("onnx/tiny-ip2p"), &bundle);
    for c in ["unet", "vae_encoder", "vae_decoder"] {
        std::fs::copy(fixture(&format!("fp16/{c}.onnx")), bundle.join(c).join("model.onnx")).unwrap();
    }
    let p = InstructPix2Pix::load(
        &Bundle::open(&bundle).unwrap(),
        &RuntimeOptions::default(),
        DiffusionSettings {
            steps: Some(3),
            guidance_scale: Some(7.5),
            image_guidance_scale: Some(1.5),
            ..Default::default()
        },
    )
    .unwrap();
    let signature = p.signature().unwrap();
    assert!(signature.iter().any(|l| l.contains("unet") && l.contains("float16")), "{signature:?}");
    let prompts = prompts();
    let refs: Vec<&str> = prompts.iter().map(String::as_str).collect();
    let initial: Array4<f32> = read_npy(fixture("latents.npy")).unwrap();
    let noise: Array5<f32> = read_npy(fixture("noise.npy")).unwrap();
    let plan = NoisePlan { initial, steps: (0..3).map(|k| noise.index_axis(Axis(0), k).to_owned()).collect() };
    let embeds = p.encode_prompts(&refs).unwrap();
    let uncond = p.encode_prompts(&[""]).unwrap();
    let image = p.encode_images(input().view()).unwrap();
    let latents = p.denoise(image.view(), embeds.view(), uncond.index_axis(Axis(0), 0), &plan, |_| {}).unwrap();
    let images = p.decode(latents.view()).unwrap();
    let want: Array4<f32> = read_npy(fixture("g7.5_i1.5_s3_images.npy")).unwrap();
    let db = psnr(&images, &want);
    eprintln!("fp16 UNet/VAE vs diffusers fp32: image PSNR {db:.1} dB");
    assert!(db >= 45.0, "fp16 pipeline PSNR {db:.1} dB");
}

#[test]
fn edit_shared_equals_editing_each_instruction_alone() {
    // The path `explain` takes (one image, many instructions, UNet rows split across calls)
    // must give each instruction the image it gets alone.
    use gsmile::editor::Editor;
    let p = pipeline(DiffusionSettings { steps: Some(2), ..Default::default() }).with_max_batch(4);
    let image = input().index_axis_move(Axis(0), 0);
    let texts = ["make the car red", "turn the sky orange", "", "please make the house blue at night"];
    let together = gsmile::editor::edit_many(&p, image.view(), &texts, 4).unwrap();
    for (k, t) in texts.iter().enumerate() {
        let alone = p.edit(image.view().insert_axis(Axis(0)), &[t]).unwrap();
        let diff = max_abs_diff(&alone.index_axis(Axis(0), 0).to_owned(), &together.index_axis(Axis(0), k).to_owned());
        assert!(diff < 1e-5, "{t:?}: {diff}");
    }
    assert_eq!(gsmile::editor::edit_many(&p, image.view(), &[], 4).unwrap().dim().0, 0);
}

/// A copy of the tiny bundle with `edit` applied to the JSON file `rel`.
fn edited_bundle(dir: &std::path::Path, rel: &str, edit: impl FnOnce(&mut serde_json::Value)) -> std::path::PathBuf {
    let bundle = dir.join("tiny-ip2p");
    copy_tree(&repo("onnx/tiny-ip2p"), &bundle);
    let path = bundle.join(rel);
    let mut v: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    edit(&mut v);
    std::fs::write(&path, serde_json::to_vec(&v).unwrap()).unwrap();
    bundle
}

#[test]
fn broken_component_configs_are_named_with_the_fix() {
    type Edit = Box<dyn FnOnce(&mut serde_json::Value)>;
    let cases: Vec<(&str, Edit, &str)> = vec![
        ("vae_decoder/config.json", Box::new(|v| v["scaling_factor"] = 0.0.into()), "scaling_factor"),
        (
            "vae_decoder/config.json",
            Box::new(|v| v["block_out_channels"] = serde_json::json!([])),
            "block_out_channels",
        ),
        (
            "vae_decoder/config.json",
            Box::new(|v| v["block_out_channels"] = serde_json::json!(vec![8; 40])),
            "block_out_channels",
        ),
        ("unet/config.json", Box::new(|v| v["sample_size"] = 3_000_000_000u64.into()), "sample_size"),
        ("tokenizer/tokenizer_config.json", Box::new(|v| v["model_max_length"] = 5.into()), "model_max_length"),
        ("scheduler/scheduler_config.json", Box::new(|v| v["num_train_timesteps"] = 0.into()), "num_train_timesteps"),
    ];
    for (rel, edit, field) in cases {
        let dir = tempfile::tempdir().unwrap();
        let bundle = edited_bundle(dir.path(), rel, edit);
        let o = common::gsmile(&[
            "edit",
            "--editor",
            bundle.to_str().unwrap(),
            "--image",
            "assets/scene-01.png",
            "--instruction",
            "x",
            "--out",
            dir.path().join("o.png").to_str().unwrap(),
        ]);
        let err = common::stderr(&o);
        assert!(!o.status.success(), "{rel}: accepted");
        assert!(err.contains(field) && err.contains(rel.split('/').next().unwrap()), "{rel}: {err}");
        assert!(!err.contains("panicked"), "{rel}: {err}");
        assert!(!dir.path().join("o.png").exists());
    }
}

#[test]
fn sizes_the_unet_cannot_take_and_flags_of_other_editors_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("o.png");
    let run = |args: &[&str]| {
        let mut a = vec!["edit", "--image", "assets/scene-01.png", "--instruction", "make the car red", "--out"];
        a.push(out.to_str().unwrap());
        a.extend_from_slice(args);
        common::gsmile(&a)
    };
    // 6 is a multiple of the VAE's factor 2 but not of the UNet's extra factor 2.
    let o = run(&["--editor", "onnx/tiny-ip2p", "--size", "6"]);
    assert!(!o.status.success() && common::stderr(&o).contains("multiples of 4"), "{}", common::stderr(&o));
    let o = run(&["--editor", "onnx/tiny-ip2p", "--steps", "5000"]);
    assert!(!o.status.success() && common::stderr(&o).contains("1 to 1000"), "{}", common::stderr(&o));
    let o = run(&["--editor", "onnx/tiny-editor", "--steps", "4"]);
    assert!(!o.status.success() && common::stderr(&o).contains("one-step editor"), "{}", common::stderr(&o));
    let o =
        run(&["--editor", "onnx/tiny-ip2p", "--size", "24x16", "--steps", "2", "--editor-seed", "3", "--model-size"]);
    assert!(o.status.success(), "{}", common::stderr(&o));
    let img = image::open(&out).unwrap();
    assert_eq!((img.width(), img.height()), (24, 16));
}
