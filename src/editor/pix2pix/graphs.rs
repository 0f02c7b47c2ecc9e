//! Loading the pipeline's graphs: the component configs (VAE and UNet), the four ONNX
//! sessions with their tensor contracts, and the checks that they fit together.

// Errors here carry the paths, fields and fixes a user needs; they are returned on cold
// load paths only, so their size does not matter.
#![allow(clippy::result_large_err)]

use std::path::{Path, PathBuf};

use ndarray::{Array4, ArrayView4, Axis, s};
use serde::Deserialize;

use crate::bundle::{Bundle, BundleError};
use crate::runtime::{Dim, ModelSession, RuntimeOptions, TensorContract, read_f32_dyn};
use crate::{Error, Result};

#[derive(Debug, Deserialize)]
struct VaeConfig {
    #[serde(default = "default_scaling")]
    scaling_factor: f32,
    #[serde(default = "default_vae_blocks")]
    block_out_channels: Vec<usize>,
    #[serde(default = "default_latent_channels")]
    latent_channels: usize,
}

fn default_scaling() -> f32 {
    0.18215
}
fn default_latent_channels() -> usize {
    4
}
/// Stable Diffusion's VAE: four blocks, a downsampling factor of 8 (diffusers' default when the config is silent).
fn default_vae_blocks() -> Vec<usize> {
    vec![128, 256, 512, 512]
}

#[derive(Debug, Deserialize)]
struct UnetConfig {
    #[serde(default)]
    sample_size: Option<u32>,
    #[serde(default)]
    block_out_channels: Vec<usize>,
}

/// `2^(blocks − 1)`, the downsampling of a diffusers encoder with `blocks` resolution levels, if sane.
fn downsampling(blocks: usize) -> Option<u32> {
    (1..=8).contains(&blocks).then(|| 1u32 << (blocks - 1))
}

/// What the component configs say about the pipeline's shapes.
#[derive(Debug, Clone, Copy)]
pub(super) struct Layout {
    /// The VAE's latent scaling factor.
    pub scaling_factor: f32,
    /// Channels of the latents.
    pub latent_channels: usize,
    /// The VAE's downsampling factor.
    pub vae_factor: u32,
    /// Working sizes must be multiples of this: the VAE's and the UNet's downsampling together.
    pub multiple: u32,
    /// The UNet's sample size in pixels, the default working size.
    pub default_size: u32,
}

/// Reads and checks the VAE and UNet configs of a diffusers ONNX folder (diffusers' defaults where one is missing).
pub(super) fn read_layout(bundle: &Bundle) -> Result<Layout> {
    let dir = bundle.dir();
    let field = |rel: &str, field: &str, message: String| {
        Error::from(BundleError::Field { path: dir.join(rel), field: field.to_string(), message })
    };
    let vae_rel = if dir.join("vae_decoder/config.json").is_file() {
        "vae_decoder/config.json"
    } else {
        "vae_encoder/config.json"
    };
    let vae: VaeConfig = read_json(bundle, vae_rel)?.unwrap_or(VaeConfig {
        scaling_factor: default_scaling(),
        block_out_channels: default_vae_blocks(),
        latent_channels: default_latent_channels(),
    });
    let vae_factor = downsampling(vae.block_out_channels.len()).ok_or_else(|| {
        field(vae_rel, "block_out_channels", "must list 1 to 8 blocks (Stable Diffusion's VAE has 4)".into())
    })?;
    if !(vae.scaling_factor.is_finite() && vae.scaling_factor > 0.0) {
        return Err(field(
            vae_rel,
            "scaling_factor",
            format!("is {}, but must be a positive number (Stable Diffusion: 0.18215)", vae.scaling_factor),
        ));
    }
    if !(1..=64).contains(&vae.latent_channels) {
        return Err(field(
            vae_rel,
            "latent_channels",
            format!("is {}, expected 1 to 64 (Stable Diffusion: 4)", vae.latent_channels),
        ));
    }
    let unet_config: Option<UnetConfig> = read_json(bundle, "unet/config.json")?;
    let unet_factor = match unet_config.as_ref().map(|u| u.block_out_channels.len()) {
        None | Some(0) => 8,
        Some(n) => downsampling(n)
            .ok_or_else(|| field("unet/config.json", "block_out_channels", "must list 1 to 8 blocks".into()))?,
    };
    // The UNet halves its input at every level but the last, so sizes must divide by both factors.
    let multiple = vae_factor * unet_factor;
    let default_size = match unet_config.as_ref().and_then(|u| u.sample_size) {
        Some(s) => s.checked_mul(vae_factor).filter(|&px| px <= 16_384).ok_or_else(|| {
            field("unet/config.json", "sample_size", format!("{s} latents is not a usable image size"))
        })?,
        None => 512,
    };
    Ok(Layout {
        scaling_factor: vae.scaling_factor,
        latent_channels: vae.latent_channels,
        vae_factor,
        multiple,
        default_size,
    })
}

/// The pipeline's ONNX graphs and the tensor names read from their signatures.
#[derive(Debug)]
pub(super) struct Graphs {
    pub text_encoder: ModelSession,
    pub unet: ModelSession,
    pub vae_encoder: ModelSession,
    pub vae_decoder: ModelSession,
    /// The VAE encoder's latents output: `latent_sample` (the mode), or `latent_parameters` (mean and log-variance).
    pub vae_encoder_output: String,
    pub text_output: String,
    /// The text encoder's attention-mask input, when its export has one.
    pub text_mask: Option<String>,
}

/// What loading the graphs needs from the bundle's configs.
pub(super) struct GraphSpec {
    pub dir: PathBuf,
    pub options: RuntimeOptions,
    pub latent_channels: usize,
    /// The tokenizer's sequence length, which the text encoder must take.
    pub max_length: usize,
    /// Side of the probe image of the VAE-encoder check: the smallest size the pipeline takes.
    pub probe_size: u32,
    pub vae_factor: u32,
}

/// A component's JSON config, `None` when the file is absent.
fn read_json<T: for<'de> Deserialize<'de>>(bundle: &Bundle, rel: &str) -> std::result::Result<Option<T>, BundleError> {
    let path = bundle.dir().join(rel);
    if !path.is_file() {
        return Ok(None);
    }
    let text = std::fs::read_to_string(&path)
        .map_err(|e| BundleError::Manifest { path: path.clone(), message: e.to_string() })?;
    serde_json::from_str(&text)
        .map(Some)
        .map_err(|e| BundleError::Manifest { path, message: format!("not a diffusers config: {e}") })
}

/// Loads the pipeline's four graphs and checks them: contracts, the text encoder's length
/// against the tokenizer, the UNet's timestep shape, and a VAE encoder that returns the mode.
pub(super) fn load_graphs(spec: &GraphSpec) -> Result<Graphs> {
    let dir = spec.dir.as_path();
    let field = |rel: &str, field: &str, message: String| {
        Error::from(BundleError::Field { path: dir.join(rel), field: field.to_string(), message })
    };
    let c = spec.latent_channels as i64;
    let l = spec.max_length as i64;
    let any4 = [Dim::Any, Dim::Any, Dim::Any, Dim::Any];
    let session = |rel: &str, inputs: &[TensorContract], outputs: &[TensorContract]| {
        ModelSession::load(dir, &dir.join(rel), inputs, outputs, &spec.options)
    };
    let text_encoder = session(
        "text_encoder/model.onnx",
        &[TensorContract::ids("text_encoder.input_ids", "input_ids", &[Dim::Any, Dim::Any])],
        &[],
    )?;
    if let Some(&[_, n]) = text_encoder.declared_shape("input_ids")
        && n > 0
        && n != l
    {
        return Err(field(
            "tokenizer/tokenizer_config.json",
            "model_max_length",
            format!("is {l}, but text_encoder/model.onnx takes {n} tokens. Fix: set model_max_length to {n}"),
        ));
    }
    let text_output = first_output(&text_encoder, "last_hidden_state");
    let text_mask = text_encoder_mask(&text_encoder);
    let unet = session(
        "unet/model.onnx",
        &[
            TensorContract::float("unet.sample", "sample", &[Dim::Any, Dim::Fixed(2 * c), Dim::Any, Dim::Any]),
            TensorContract::float("unet.timestep", "timestep", &[Dim::Any]).or(ort::value::TensorElementType::Int64),
            TensorContract::float(
                "unet.encoder_hidden_states",
                "encoder_hidden_states",
                &[Dim::Any, Dim::Fixed(l), Dim::Any],
            ),
        ],
        &[TensorContract::float("unet.out_sample", "out_sample", &[Dim::Any, Dim::Fixed(c), Dim::Any, Dim::Any])],
    )?;
    if let Some(&[n]) = unet.declared_shape("timestep")
        && n > 1
    {
        return Err(field(
            "unet/model.onnx",
            "timestep",
            format!(
                "has a fixed length {n}; gsmile feeds one timestep per row or a single one. Fix: re-export the UNet with a dynamic or length-1 timestep"
            ),
        ));
    }
    let vae_encoder =
        session("vae_encoder/model.onnx", &[TensorContract::float("vae_encoder.sample", "sample", &any4)], &[])?;
    let vae_encoder_output = first_output(&vae_encoder, "latent_sample");
    let vae_decoder = session(
        "vae_decoder/model.onnx",
        &[TensorContract::float(
            "vae_decoder.latent_sample",
            "latent_sample",
            &[Dim::Any, Dim::Fixed(c), Dim::Any, Dim::Any],
        )],
        &[TensorContract::float("vae_decoder.sample", "sample", &[Dim::Any, Dim::Fixed(3), Dim::Any, Dim::Any])],
    )?;
    let graphs = Graphs { text_encoder, unet, vae_encoder, vae_decoder, vae_encoder_output, text_output, text_mask };
    check_deterministic_encoder(&graphs, spec)?;
    Ok(graphs)
}

/// Image latents of `images` through `g`'s VAE encoder, `rows` images per call (see [`super::InstructPix2Pix::encode_images`]).
pub(super) fn encode_latents(
    g: &Graphs,
    images: ArrayView4<f32>,
    c: usize,
    rows: usize,
    vae_factor: u32,
) -> Result<Array4<f32>> {
    let s = &g.vae_encoder;
    let mut parts = Vec::new();
    for start in (0..images.dim().0).step_by(rows) {
        let end = (start + rows).min(images.dim().0);
        let pixels = images.slice(s![start..end, .., .., ..]).mapv(|x| 2.0 * x - 1.0);
        let inputs = ort::inputs!["sample" => s.float_input("sample", &pixels)?];
        let (shape, data) = s.run(inputs, |o| read_f32_dyn(o, &g.vae_encoder_output))?;
        if shape.len() != 4 || shape[0] != end - start || !(shape[1] == c || shape[1] == 2 * c) {
            return Err(s
                .error(format!(
                    "`{}` has shape {shape:?}, expected [{}, {c} or {}, h, w]",
                    g.vae_encoder_output,
                    end - start,
                    2 * c
                ))
                .into());
        }
        let all = Array4::from_shape_vec((shape[0], shape[1], shape[2], shape[3]), data).map_err(|e| s.error(e))?;
        // A `latent_parameters` output holds mean and log-variance; the mode is the mean.
        parts.push(all.slice_move(s![.., ..c, .., ..]));
    }
    let views: Vec<_> = parts.iter().map(|p| p.view()).collect();
    if views.is_empty() {
        let (_, _, h, w) = images.dim();
        let f = vae_factor as usize;
        return Ok(Array4::zeros((0, c, h / f, w / f)));
    }
    Ok(ndarray::concatenate(Axis(0), &views).map_err(|e| s.error(e))?)
}

/// Refuses VAE encoders that sample the latent distribution (older optimum exports put a
/// `RandomNormalLike` node there): InstructPix2Pix conditions on the mode, and random image
/// latents would make every edit differ from run to run.
fn check_deterministic_encoder(g: &Graphs, spec: &GraphSpec) -> Result<()> {
    let size = spec.probe_size as usize;
    let probe = Array4::from_shape_fn((1, 3, size, size), |(_, c, y, x)| ((c * 7 + y * 3 + x) % 11) as f32 / 10.0);
    let encode = || encode_latents(g, probe.view(), spec.latent_channels, 1, spec.vae_factor);
    let (a, b) = (encode()?, encode()?);
    if a != b {
        return Err(BundleError::Graph {
            bundle: g.vae_encoder.file().parent().and_then(Path::parent).map(Path::to_path_buf).unwrap_or_default(),
            file: g.vae_encoder.file().to_path_buf(),
            message: "gives different latents for the same image: it samples the latent distribution instead of returning its mode. Fix: re-export with onnx/export_ip2p.py, or with an optimum version whose vae_encoder returns `latent_parameters`".into(),
        }
        .into());
    }
    Ok(())
}

/// The graph's output named `preferred`, else its first output.
fn first_output(session: &ModelSession, preferred: &str) -> String {
    let names = session.output_names();
    if names.iter().any(|n| n == preferred) {
        preferred.to_string()
    } else {
        names.first().cloned().unwrap_or_else(|| preferred.to_string())
    }
}

/// The text encoder's attention-mask input, when its export has one.
fn text_encoder_mask(session: &ModelSession) -> Option<String> {
    session.element_type("attention_mask").map(|_| "attention_mask".to_string())
}
