//! Image I/O and conversions between `image` buffers and the `[3,H,W]` / `[B,3,H,W]`
//! float arrays in `[0, 1]` that the pipeline passes between stages.

use std::path::{Path, PathBuf};

use image::{ImageFormat, Rgb32FImage, RgbImage, imageops::FilterType};
use ndarray::{Array3, Array4, ArrayView3, ArrayView4, Axis};

use crate::bundle::ImageSpec;
use crate::io::{OutputError, write_atomic_as};

/// The most pixels an input image may have unless the user raises the limit
/// (`--max-pixels`): 50 megapixels, e.g. 8660 × 5773. Checked from the file's header before
/// anything is decoded, so a tiny file that claims a huge image allocates nothing.
pub const DEFAULT_MAX_PIXELS: u64 = 50_000_000;

/// An image that cannot be read or written.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    /// The file does not exist or cannot be opened.
    #[error("{path}: cannot open image: {message}. Fix: check the path")]
    Open {
        /// The file.
        path: PathBuf,
        /// What the system said.
        message: String,
    },
    /// The file could not be decoded.
    #[error(
        "{path}: cannot read image: {message}. Fix: pass a complete PNG or JPEG file (re-export it if it was cut short)"
    )]
    Read {
        /// The file.
        path: PathBuf,
        /// What the decoder said.
        message: String,
    },
    /// The header promises more pixels than the limit allows.
    #[error(
        "{path}: the image is {width}×{height} pixels, more than the limit of {max} pixels. Fix: scale it down, or raise the limit with --max-pixels {needed}"
    )]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// Width from the header.
        width: u32,
        /// Height from the header.
        height: u32,
        /// The limit in force.
        max: u64,
        /// The limit that would admit this image.
        needed: u64,
    },
    /// The output file name has an extension gsmile cannot write.
    #[error("{path}: cannot write this image format. Fix: end the file name with .png or .jpg")]
    UnsupportedOutput {
        /// The file.
        path: PathBuf,
    },
    /// Encoding failed.
    #[error(transparent)]
    Write(#[from] OutputError),
}

/// Reads a PNG or JPEG file as 8-bit RGB, whatever its extension says, refusing images of
/// more than [`DEFAULT_MAX_PIXELS`] pixels ([`load_rgb_limited`]).
pub fn load_rgb(path: &Path) -> Result<RgbImage, ImageError> {
    load_rgb_limited(path, DEFAULT_MAX_PIXELS)
}

/// Reads a PNG or JPEG file as 8-bit RGB, refusing images of more than `max_pixels`
/// pixels before decoding them.
///
/// A file that ends early or is corrupt is an error: a JPEG decodes in strict mode, where a
/// lenient decoder would fill what is missing with grey and an explanation of it would be
/// silently wrong.
pub fn load_rgb_limited(path: &Path, max_pixels: u64) -> Result<RgbImage, ImageError> {
    let err = |message: String| ImageError::Read { path: path.to_path_buf(), message };
    let bytes =
        std::fs::read(path).map_err(|e| ImageError::Open { path: path.to_path_buf(), message: e.to_string() })?;
    let reader = image::ImageReader::new(std::io::Cursor::new(&bytes[..]))
        .with_guessed_format()
        .map_err(|e| err(e.to_string()))?;
    let format = reader.format();
    let (width, height) = reader.into_dimensions().map_err(|e| err(e.to_string()))?;
    let pixels = u64::from(width) * u64::from(height);
    if pixels > max_pixels {
        return Err(ImageError::TooLarge { path: path.to_path_buf(), width, height, max: max_pixels, needed: pixels });
    }
    if format == Some(ImageFormat::Jpeg) {
        return decode_jpeg_strict(&bytes).map_err(err);
    }
    let mut reader = image::ImageReader::new(std::io::Cursor::new(&bytes[..]))
        .with_guessed_format()
        .map_err(|e| err(e.to_string()))?;
    // The pixel limit above is the one that matters; image's default allocation cap (512 MiB)
    // would refuse large images the limit admits.
    reader.no_limits();
    let img = reader.decode().map_err(|e| err(e.to_string()))?;
    Ok(img.to_rgb8())
}

/// Decodes a JPEG as 8-bit RGB with zune-jpeg's strict mode, which fails on a file that
/// ends before its last scan instead of padding the picture.
fn decode_jpeg_strict(bytes: &[u8]) -> Result<RgbImage, String> {
    use zune_core::{bytestream::ZCursor, colorspace::ColorSpace, options::DecoderOptions};
    let options = DecoderOptions::default()
        .set_strict_mode(true)
        .jpeg_set_out_colorspace(ColorSpace::RGB)
        .set_max_width(usize::MAX)
        .set_max_height(usize::MAX);
    let mut decoder = zune_jpeg::JpegDecoder::new_with_options(ZCursor::new(bytes), options);
    let pixels = decoder.decode().map_err(|e| format!("{e:?}"))?;
    let (w, h) = decoder.dimensions().ok_or("the JPEG has no frame header")?;
    let (w, h) = (u32::try_from(w).map_err(|e| e.to_string())?, u32::try_from(h).map_err(|e| e.to_string())?);
    RgbImage::from_raw(w, h, pixels).ok_or_else(|| "the JPEG decoder returned too few pixels".to_string())
}

/// The format an output path asks for, or an error naming the path.
pub fn output_format(path: &Path) -> Result<ImageFormat, ImageError> {
    match ImageFormat::from_path(path) {
        Ok(f @ (ImageFormat::Png | ImageFormat::Jpeg)) => Ok(f),
        _ => Err(ImageError::UnsupportedOutput { path: path.to_path_buf() }),
    }
}

/// Writes an image atomically, in the format its extension names.
pub fn save_rgb(img: &RgbImage, path: &Path) -> Result<(), ImageError> {
    save_rgb_as(img, path, true)
}

/// [`save_rgb`], which with `replace = false` never replaces a file at `path`, not even one
/// that appeared while the image was encoded.
pub fn save_rgb_as(img: &RgbImage, path: &Path, replace: bool) -> Result<(), ImageError> {
    let format = output_format(path)?;
    let mut bytes = std::io::Cursor::new(Vec::new());
    img.write_to(&mut bytes, format).map_err(|_| ImageError::UnsupportedOutput { path: path.to_path_buf() })?;
    write_atomic_as(path, replace, |f| std::io::Write::write_all(f, bytes.get_ref()))?;
    Ok(())
}

/// Converts 8-bit RGB to a `[3,H,W]` array in `[0,1]`.
pub fn to_tensor(img: &RgbImage) -> Array3<f32> {
    let (w, h) = img.dimensions();
    Array3::from_shape_fn((3, h as usize, w as usize), |(c, y, x)| {
        f32::from(img.get_pixel(x as u32, y as u32)[c]) / 255.0
    })
}

/// Converts a `[3,H,W]` array in `[0,1]` to 8-bit RGB, clamping and rounding.
pub fn from_tensor(t: ArrayView3<f32>) -> RgbImage {
    let (_, h, w) = t.dim();
    // Adding one half (in f64, where it is exact) and truncating rounds like `f32::round` on
    // [0, 255] without its libm call.
    let to_u8 = |v: &f32| (f64::from(v.clamp(0.0, 1.0) * 255.0) + 0.5) as u8;
    let (r, g, b) = (t.index_axis(Axis(0), 0), t.index_axis(Axis(0), 1), t.index_axis(Axis(0), 2));
    let mut raw = vec![0u8; h * w * 3];
    for (px, ((r, g), b)) in raw.chunks_exact_mut(3).zip(r.iter().zip(g.iter()).zip(b.iter())) {
        px.copy_from_slice(&[to_u8(r), to_u8(g), to_u8(b)]);
    }
    RgbImage::from_raw(w as u32, h as u32, raw).expect("three channels of H×W values fill an H×W RGB image")
}

/// Resizes a `[3,H,W]` array to `height`×`width` with a triangle (bilinear) filter; a no-op at the same size.
pub fn resize_tensor(t: ArrayView3<f32>, height: u32, width: u32) -> Array3<f32> {
    let (_, h, w) = t.dim();
    if h == height as usize && w == width as usize {
        return t.to_owned();
    }
    let img = Rgb32FImage::from_fn(w as u32, h as u32, |x, y| {
        image::Rgb([t[[0, y as usize, x as usize]], t[[1, y as usize, x as usize]], t[[2, y as usize, x as usize]]])
    });
    let out = image::imageops::resize(&img, width, height, FilterType::Triangle);
    Array3::from_shape_fn((3, height as usize, width as usize), |(c, y, x)| out.get_pixel(x as u32, y as u32)[c])
}

/// Maps a batch in `[0,1]` to what a graph takes: the spec's range, then `(x - mean) / std`.
pub fn normalize(batch: ArrayView4<f32>, spec: &ImageSpec) -> Array4<f32> {
    let [lo, hi] = spec.range;
    let mut out = batch.to_owned();
    for (c, mut plane) in out.axis_iter_mut(Axis(1)).enumerate() {
        let (m, s) = (spec.mean[c], spec.std[c]);
        plane.mapv_inplace(|v| (v * (hi - lo) + lo - m) / s);
    }
    out
}

/// Maps a graph's output in the spec's range back to `[0,1]`, clamped.
pub fn denormalize_range(batch: Array4<f32>, spec: &ImageSpec) -> Array4<f32> {
    let [lo, hi] = spec.range;
    batch.mapv_into(|v| ((v - lo) / (hi - lo)).clamp(0.0, 1.0))
}

/// `img` encoded as PNG, quickly (fast deflate, adaptive row filters): gsmile's pictures are
/// flat-colour charts and small images, where this costs a few percent of file size and saves
/// most of the encoding time. Zero-sized images, which PNG cannot hold, give an empty vector.
pub fn png_bytes(img: &RgbImage) -> Vec<u8> {
    // Room for a typical compressed size up front, instead of growing by copying.
    let mut bytes = Vec::with_capacity(img.as_raw().len() / 4 + 1024);
    let encoder = image::codecs::png::PngEncoder::new_with_quality(
        &mut bytes,
        image::codecs::png::CompressionType::Fast,
        image::codecs::png::FilterType::Sub,
    );
    if img.write_with_encoder(encoder).is_err() {
        bytes.clear();
    }
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tensor_round_trip_is_exact() {
        let img = RgbImage::from_fn(5, 3, |x, y| image::Rgb([(x * 40) as u8, (y * 80) as u8, 7]));
        let t = to_tensor(&img);
        assert_eq!(t.dim(), (3, 3, 5));
        assert_eq!(from_tensor(t.view()), img);
    }

    #[test]
    fn from_tensor_clamps_rounds_and_keeps_channel_order_of_any_layout() {
        let values =
            [-0.5f32, 0.0, 0.001, 0.5 / 255.0, 0.5, 1.5 / 255.0, 0.999, 1.0, 2.0, f32::NAN, 0.49999997 / 255.0];
        let t = Array3::from_shape_fn((3, 2, 5), |(c, y, x)| values[(c * 3 + y * 5 + x) % values.len()]);
        let expect = |v: f32| (v.clamp(0.0, 1.0) * 255.0).round() as u8;
        let img = from_tensor(t.view());
        for (x, y, px) in img.enumerate_pixels() {
            for c in 0..3 {
                assert_eq!(px[c], expect(t[[c, y as usize, x as usize]]), "({c}, {y}, {x})");
            }
        }
        // A transposed view (x and y swapped) is read in logical order, not memory order.
        let tt = t.view().permuted_axes([0, 2, 1]);
        let img_t = from_tensor(tt);
        assert_eq!(img_t.dimensions(), (2, 5));
        assert_eq!(img_t.get_pixel(1, 3), img.get_pixel(3, 1));
    }

    #[test]
    fn normalize_applies_range_mean_std() {
        let spec = ImageSpec { height: 1, width: 1, mean: [0.5, 0.0, 0.0], std: [0.5, 2.0, 1.0], range: [-1.0, 1.0] };
        let batch = Array4::from_elem((1, 3, 1, 1), 1.0f32);
        let out = normalize(batch.view(), &spec);
        assert_eq!(out[[0, 0, 0, 0]], (1.0 - 0.5) / 0.5);
        assert_eq!(out[[0, 1, 0, 0]], 0.5);
        let back = denormalize_range(Array4::from_elem((1, 3, 1, 1), 0.0), &spec);
        assert_eq!(back[[0, 0, 0, 0]], 0.5);
    }

    #[test]
    fn resize_keeps_constant_images_constant() {
        let t = Array3::from_elem((3, 8, 8), 0.25f32);
        let r = resize_tensor(t.view(), 4, 6);
        assert_eq!(r.dim(), (3, 4, 6));
        assert!(r.iter().all(|v| (v - 0.25).abs() < 1e-6));
    }

    #[test]
    fn non_image_file_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("fake.png");
        std::fs::write(&p, b"not an image at all").unwrap();
        let err = load_rgb(&p).unwrap_err().to_string();
        assert!(err.contains("fake.png") && err.contains("Fix"), "{err}");
    }

    #[test]
    fn unknown_output_extension_is_refused() {
        assert!(output_format(Path::new("x.bmpx")).is_err());
        assert!(output_format(Path::new("x.png")).is_ok());
    }
}
