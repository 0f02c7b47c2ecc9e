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

/// Smallest short side at which [`Lpips::change_maps`] measures images.
pub const MAP_SIDE: usize = 256;

/// `h`×`w` scaled up (aspect kept, rounded) until the short side is at least `min`.
/// The long side stops at [`crate::bundle::MAX_MODEL_SIDE`], so a very thin image stays bounded.
fn enlarged(h: usize, w: usize, min: usize) -> (usize, usize) {
    let scale = min as f64 / h.min(w).max(1) as f64;
    let cap = crate::bundle::MAX_MODEL_SIDE as usize;
    let side = |s: usize| ((s as f64 * scale).round() as usize).max(min).min(cap.max(min));
    (side(h), side(w))
}

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

    /// `images` (`[B,3,H,W]` in `[0,1]`) mapped to `[-1, 1]`, enlarged (keeping their aspect)
    /// until their short side is at least `min`.
    fn inputs(images: ArrayView4<f32>, min: usize) -> Array4<f32> {
        let (b, c, h, w) = images.dim();
        let batch = if h.min(w) >= min {
            images.to_owned()
        } else {
            let (nh, nw) = enlarged(h, w, min);
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
        self.pairs(images, reference, self.section.min_side as usize, false)
    }

    /// Each of `images`' per-pixel LPIPS distance map to `reference`, `[B,H,W]` at the images'
    /// size, for spatial heatmaps. Images are measured with their short side at least
    /// [`MAP_SIDE`]: LPIPS was trained on 64-pixel patches, and at that size its deepest layers
    /// see the whole image, so a map of a small image smears every change over it.
    pub fn change_maps(&self, images: ArrayView4<f32>, reference: ArrayView3<f32>) -> Result<Array3<f32>> {
        let side = MAP_SIDE.max(self.section.min_side as usize);
        Ok(self.pairs(images, reference, side, true)?.1)
    }

    /// Distances and maps of `images` against `reference`, measured with short sides of at
    /// least `side`, a chunk of [`BATCH`] pairs at a time (only a chunk is ever enlarged);
    /// maps come back at the images' own size when `own_size`.
    fn pairs(
        &self,
        images: ArrayView4<f32>,
        reference: ArrayView3<f32>,
        side: usize,
        own_size: bool,
    ) -> Result<(Vec<f64>, Array3<f32>)> {
        let (b, c, h, w) = images.dim();
        if c != 3 || reference.dim() != (c, h, w) {
            return Err(Error::InvalidInput(format!(
                "LPIPS {} compares [B,3,H,W] images with a [3,H,W] reference of the same size, got [{b},{c},{h},{w}] and {:?}",
                self.name,
                reference.dim()
            )));
        }
        let r = Self::inputs(reference.insert_axis(Axis(0)), side);
        let (gh, gw) = (r.dim().2, r.dim().3);
        let (mh, mw) = if own_size { (h, w) } else { (gh, gw) };
        let mut distances = Vec::with_capacity(b);
        let mut maps = Array3::zeros((b, mh, mw));
        let s = self.session.get()?;
        for start in (0..b).step_by(BATCH) {
            let end = (start + BATCH).min(b);
            let chunk = Self::inputs(images.slice(s![start..end, .., .., ..]), side);
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
            for (k, map) in m.index_axis(Axis(1), 0).outer_iter().enumerate() {
                let mut out = maps.index_axis_mut(Axis(0), start + k);
                if (mh, mw) == (gh, gw) {
                    out.assign(&map);
                } else {
                    // Bilinear, like LPIPS's own upsampling of its layer maps.
                    let plane = map.insert_axis(Axis(0));
                    let grey = plane.broadcast((3, gh, gw)).expect("one plane to three");
                    out.assign(&imaging::resize_tensor(grey, mh as u32, mw as u32).index_axis_move(Axis(0), 0));
                }
            }
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
