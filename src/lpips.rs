//! LPIPS (Zhang et al. 2018), a learned perceptual distance between two images, from an
//! `kind = "lpips"` bundle: the ImageNet-pretrained AlexNet of `onnx/lpips-alex`, or the VGG16
//! one `onnx/export_lpips.py --net vgg` makes.
//!
//! The wrapper owns the session and the pre-processing (`[0, 1]` to `[-1, 1]`, images smaller
//! than the network's `min_side` enlarged to it); callers see `[3,H,W]` images and distances.

use ndarray::{Array3, Array4, ArrayView3, ArrayView4, Axis, s};

use crate::bundle::{Bundle, BundleKind, Description};
use crate::runtime::{Dim, Lazy, ModelSession, RuntimeOptions, TensorContract, read_f32};
use crate::{Error, Result, imaging};

/// Image pairs per graph call.
const BATCH: usize = 16;

/// A loaded LPIPS network.
#[derive(Debug)]
pub struct Lpips {
    name: String,
    session: Lazy<ModelSession>,
    section: crate::bundle::LpipsSection,
}

impl Lpips {
    /// Opens an LPIPS bundle; its graph loads, and is checked against the manifest, on first use.
    pub fn load(bundle: &Bundle, options: &RuntimeOptions) -> Result<Self> {
        bundle.expect_kind(BundleKind::Lpips, "--lpips")?;
        let section =
            bundle.manifest().lpips.clone().ok_or_else(|| Error::InvalidInput("lpips section missing".into()))?;
        let image = [Dim::Any, Dim::Fixed(3), Dim::Any, Dim::Any];
        let session = ModelSession::deferred(
            bundle.dir(),
            &bundle.file(&section.file),
            vec![
                TensorContract::float("lpips.image_0", &section.image_0, &image),
                TensorContract::float("lpips.image_1", &section.image_1, &image),
            ],
            vec![
                TensorContract::float("lpips.distance", &section.distance, &[Dim::Any]),
                TensorContract::float(
                    "lpips.distance_map",
                    &section.distance_map,
                    &[Dim::Any, Dim::Fixed(1), Dim::Any, Dim::Any],
                ),
            ],
            options,
        );
        Ok(Lpips { name: bundle.manifest().name.clone(), session, section })
    }

    /// The bundle's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Loads the graph now, so a broken bundle is reported before long work starts.
    pub fn prepare(&self) -> Result<()> {
        self.session.get().map(|_| ())
    }

    /// `images` (`[B,3,H,W]` in `[0,1]`) mapped to `[-1, 1]`, enlarged to `min_side` where smaller.
    fn inputs(&self, images: ArrayView4<f32>) -> Array4<f32> {
        let (b, c, h, w) = images.dim();
        let min = self.section.min_side as usize;
        let batch = if h.min(w) >= min {
            images.to_owned()
        } else {
            let scale = min as f64 / h.min(w) as f64;
            let (nh, nw) =
                (((h as f64 * scale).round() as usize).max(min), ((w as f64 * scale).round() as usize).max(min));
            let mut out = Array4::zeros((b, c, nh, nw));
            for (k, img) in images.axis_iter(Axis(0)).enumerate() {
                out.index_axis_mut(Axis(0), k).assign(&imaging::resize_tensor(img, nh as u32, nw as u32));
            }
            out
        };
        batch.mapv_into(|v| v * 2.0 - 1.0)
    }

    /// LPIPS distance of each of `images` to `reference`, and each pair's per-pixel distance
    /// map `[B,H,W]` at the images' size (the graph's size where `min_side` enlarged them).
    pub fn measure(&self, images: ArrayView4<f32>, reference: ArrayView3<f32>) -> Result<(Vec<f64>, Array3<f32>)> {
        let (b, c, h, w) = images.dim();
        if c != 3 || reference.dim() != (c, h, w) {
            return Err(Error::InvalidInput(format!(
                "LPIPS {} compares [B,3,H,W] images with a [3,H,W] reference of the same size, got [{b},{c},{h},{w}] and {:?}",
                self.name,
                reference.dim()
            )));
        }
        let x = self.inputs(images);
        let r = self.inputs(reference.insert_axis(Axis(0)));
        let (gh, gw) = (x.dim().2, x.dim().3);
        let mut distances = Vec::with_capacity(b);
        let mut maps = Array3::zeros((b, gh, gw));
        let s = self.session.get()?;
        for start in (0..b).step_by(BATCH) {
            let end = (start + BATCH).min(b);
            let chunk = x.slice(s![start..end, .., .., ..]).as_standard_layout().to_owned();
            let refs = r.broadcast(chunk.dim()).map(|v| v.as_standard_layout().to_owned());
            let refs = refs.ok_or_else(|| Error::InvalidInput("reference does not broadcast".into()))?;
            let (i0, i1) = (&self.section.image_0, &self.section.image_1);
            let inputs =
                ort::inputs![i0.as_str() => s.float_input(i0, &chunk)?, i1.as_str() => s.float_input(i1, &refs)?];
            let n = end - start;
            let (d, m) = s.run(inputs, |o| {
                Ok((
                    read_f32(o, &self.section.distance, ndarray::Dim([n]))?,
                    read_f32(o, &self.section.distance_map, ndarray::Dim([n, 1, gh, gw]))?,
                ))
            })?;
            distances.extend(d.iter().map(|&v| f64::from(v)));
            maps.slice_mut(s![start..end, .., ..]).assign(&m.index_axis(Axis(1), 0));
        }
        Ok((distances, maps))
    }

    /// What `gsmile models` shows: the graph's signature (loads it).
    pub fn describe(&self) -> Result<Description> {
        Ok(Description {
            image: format!("any size, at least {} a side, in [-1, 1]", self.section.min_side),
            signature: self.session.get()?.signature().to_vec(),
        })
    }
}
