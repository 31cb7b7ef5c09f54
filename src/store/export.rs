//! Sample export for FID tools (`sweep.export`): `exports/<point_id>.npz` holding `arr_0`,
//! uint8 NHWC, the format of OpenAI guided-diffusion's `evaluator.py` (convertible for
//! pytorch-fid and clean-fid), and `exports/<point_id>.png`, a grid of the first samples.

use std::path::Path;

use ndarray::Array4;
use ndarray_npy::NpzWriter;

use crate::atomic::write_atomic;
use crate::error::{Error, Result};
use crate::shape::DataShape;

crate::named_enum! {
    /// A file format of `sweep.export` (image data): every point's samples, for FID tools.
    pub enum ExportFormat {
        /// `exports/<point_id>.npz`: `arr_0`, uint8 NHWC (guided-diffusion's evaluator.py).
        Npz = "npz",
        /// `exports/<point_id>.png`: a grid of the first 64 samples, 8 per row.
        Png = "png",
    }
}

/// Samples in the PNG grid: the first 64, 8 per row.
pub const GRID_SAMPLES: usize = 64;
/// Tiles per row of the PNG grid.
pub const GRID_COLUMNS: usize = 8;
/// The folder of the exports inside a results folder.
pub const EXPORT_DIR: &str = "exports";

/// A value in [−1, 1] as uint8: round((x + 1) · 127.5), clamped to 0 ..= 255 (NaN gives 0).
pub fn to_u8(v: f32) -> u8 {
    ((v as f64 + 1.0) * 127.5).round().clamp(0.0, 255.0) as u8
}

/// Images `[n, c, h, w]` (values in [−1, 1]) as uint8 `[n, h, w, c]` by [`to_u8`].
pub fn to_uint8_nhwc(samples: &[f32], shape: DataShape) -> Result<Array4<u8>> {
    let DataShape::Image {
        channels: c,
        height: h,
        width: w,
    } = shape
    else {
        return Err(Error::Shape(format!("sample export needs image data, not {shape}")));
    };
    let n = samples.len() / shape.numel();
    Ok(Array4::from_shape_fn((n, h, w, c), |(i, y, x, ch)| {
        to_u8(samples[((i * c + ch) * h + y) * w + x])
    }))
}

/// The npz file of `images` (`arr_0`, uint8 NHWC), as bytes.
pub fn npz_bytes(images: &Array4<u8>) -> Result<Vec<u8>> {
    let mut npz = NpzWriter::new(std::io::Cursor::new(Vec::new()));
    let err = |e: ndarray_npy::WriteNpzError| Error::Shape(format!("npz: {e}"));
    npz.add_array("arr_0", images).map_err(err)?;
    Ok(npz.finish().map_err(err)?.into_inner())
}

/// A PNG of the first [`GRID_SAMPLES`] of `images` tiled [`GRID_COLUMNS`] per row
/// (fewer columns when there are fewer images), grey or RGB as the images are.
pub fn grid_png_bytes(images: &Array4<u8>) -> Result<Vec<u8>> {
    let (n, h, w, c) = images.dim();
    let n = n.min(GRID_SAMPLES);
    if n == 0 {
        return Err(Error::Shape("no samples to draw".into()));
    }
    let cols = n.min(GRID_COLUMNS);
    let rows = n.div_ceil(cols);
    let (width, height) = (cols * w, rows * h);
    let mut pixels = vec![0u8; width * height * c];
    for ((i, y, x, ch), &v) in images.indexed_iter().filter(|((i, ..), _)| *i < n) {
        let (py, px) = ((i / cols) * h + y, (i % cols) * w + x);
        pixels[(py * width + px) * c + ch] = v;
    }
    let color = match c {
        1 => png::ColorType::Grayscale,
        3 => png::ColorType::Rgb,
        _ => return Err(Error::Shape(format!("a PNG grid needs 1 or 3 channels, not {c}"))),
    };
    let mut out = Vec::new();
    let mut encoder = png::Encoder::new(&mut out, width as u32, height as u32);
    encoder.set_color(color);
    encoder.set_depth(png::BitDepth::Eight);
    let err = |e: png::EncodingError| Error::Shape(format!("png: {e}"));
    let mut writer = encoder.write_header().map_err(err)?;
    writer.write_image_data(&pixels).map_err(err)?;
    writer.finish().map_err(err)?;
    Ok(out)
}

/// Writes `<out>/exports/<point_id>.<format>` for every format, each atomically.
pub fn export_point(
    out: &Path,
    point_id: &str,
    samples: &[f32],
    shape: DataShape,
    formats: &[ExportFormat],
) -> Result<()> {
    if formats.is_empty() {
        return Ok(());
    }
    let dir = out.join(EXPORT_DIR);
    std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
    let images = to_uint8_nhwc(samples, shape)?;
    for format in formats {
        let (ext, bytes) = match format {
            ExportFormat::Npz => ("npz", npz_bytes(&images)?),
            ExportFormat::Png => ("png", grid_png_bytes(&images)?),
        };
        write_atomic(&dir.join(format!("{point_id}.{ext}")), &bytes)?;
    }
    Ok(())
}
