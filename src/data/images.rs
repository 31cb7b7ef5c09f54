//! Image data sets from files (`data: {kind: images, path: …}`): a folder of PNGs or an
//! `.npz` of uint8 images, NHWC or NCHW, as the CIFAR-10 test set is usually stored.
//! Pixels are scaled to [−1, 1] (x / 127.5 − 1) and returned NCHW, row-major.

use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};

use ndarray::{ArrayD, IxDyn};
use ndarray_npy::NpzReader;

use crate::error::{Error, Result};

/// Side of the images when `image_size` is not given (CIFAR-10).
pub const DEFAULT_IMAGE_SIZE: usize = 32;
/// Channels of the images when `channels` is not given (RGB).
pub const DEFAULT_CHANNELS: usize = 3;
/// The array names tried first in an `.npz`, in order, before its first array.
pub const NPZ_KEYS: [&str; 2] = ["arr_0", "x"];

/// The pixels of square `channels × size × size` images.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImageFormat {
    /// Side length.
    pub size: usize,
    /// Channels (1 grey, 3 RGB).
    pub channels: usize,
}

impl ImageFormat {
    fn numel(&self) -> usize {
        self.channels * self.size * self.size
    }
}

/// At most `limit` images (all when `None`) of `path` — a folder of `.png` files, taken
/// in file-name order, or an `.npz` — as NCHW values in [−1, 1], with their count.
pub fn load(path: &Path, format: ImageFormat, limit: Option<usize>) -> Result<(Vec<f32>, usize)> {
    let (pixels, n) = if !path.exists() {
        return Err(Error::file(
            path,
            "not found (data.path: a folder of .png files or an .npz file)",
        ));
    } else if path.is_dir() {
        read_png_folder(path, format, limit)?
    } else if path.extension().is_some_and(|e| e == "npz") {
        read_npz(path, format, limit)?
    } else {
        return Err(Error::file(path, "expected a folder of .png files or an .npz file"));
    };
    Ok((pixels.iter().map(|&p| p as f32 / 127.5 - 1.0).collect(), n))
}

/// The `.png` files of `dir`, sorted by name.
fn png_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| Error::io(dir, e))?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e.eq_ignore_ascii_case("png")))
        .collect();
    files.sort();
    Ok(files)
}

/// uint8 NCHW pixels of the PNGs in `dir` (palette and 16-bit images are converted to
/// 8-bit grey or RGB first).
fn read_png_folder(dir: &Path, format: ImageFormat, limit: Option<usize>) -> Result<(Vec<u8>, usize)> {
    let mut files = png_files(dir)?;
    if files.is_empty() {
        return Err(Error::file(dir, "holds no .png files"));
    }
    files.truncate(limit.unwrap_or(usize::MAX));
    let mut out = Vec::with_capacity(files.len() * format.numel());
    for file in &files {
        let f = File::open(file).map_err(|e| Error::io(file, e))?;
        let mut decoder = png::Decoder::new(BufReader::new(f));
        decoder.set_transformations(png::Transformations::normalize_to_color8());
        let mut reader = decoder.read_info().map_err(|e| Error::file(file, e))?;
        let mut buf = vec![0; reader.output_buffer_size()];
        let info = reader.next_frame(&mut buf).map_err(|e| Error::file(file, e))?;
        let channels = info.color_type.samples();
        let (w, h) = (info.width as usize, info.height as usize);
        if (w, h, channels) != (format.size, format.size, format.channels) {
            return Err(Error::file(
                file,
                format!(
                    "{w}×{h} with {channels} channel(s) ({:?}); expected {s}×{s} with {c} (data.image_size, data.channels)",
                    info.color_type,
                    s = format.size,
                    c = format.channels
                ),
            ));
        }
        out.extend(hwc_to_chw(&buf[..info.buffer_size()], format));
    }
    Ok((out, files.len()))
}

/// One HWC image as CHW.
fn hwc_to_chw(hwc: &[u8], format: ImageFormat) -> impl Iterator<Item = u8> + '_ {
    let (c, s) = (format.channels, format.size);
    (0..c).flat_map(move |ch| (0..s * s).map(move |i| hwc[i * c + ch]))
}

/// uint8 NCHW pixels of the image array of an `.npz` ([`NPZ_KEYS`], else its first
/// array), stored as `[n, h, w, c]` or `[n, c, h, w]`.
fn read_npz(path: &Path, format: ImageFormat, limit: Option<usize>) -> Result<(Vec<u8>, usize)> {
    let file = File::open(path).map_err(|e| Error::io(path, e))?;
    let mut npz = NpzReader::new(BufReader::new(file)).map_err(|e| Error::file(path, e))?;
    let names = npz.names().map_err(|e| Error::file(path, e))?;
    let name = NPZ_KEYS
        .iter()
        .find(|k| names.iter().any(|n| n == *k))
        .map(|k| k.to_string())
        .or_else(|| names.first().cloned())
        .ok_or_else(|| Error::file(path, "holds no arrays"))?;
    let array: ArrayD<u8> = npz
        .by_name(&name)
        .map_err(|e| Error::file(path, format!("array {name:?}: {e} (expected uint8 images)")))?;
    let (s, c) = (format.size, format.channels);
    let nchw = match *array.shape() {
        [_, h, w, ch] if (h, w, ch) == (s, s, c) => array.permuted_axes(IxDyn(&[0, 3, 1, 2])),
        [_, ch, h, w] if (ch, h, w) == (c, s, s) => array,
        ref shape => {
            return Err(Error::file(
                path,
                format!(
                "array {name:?} has shape {shape:?}; expected [n, {s}, {s}, {c}] (NHWC) or [n, {c}, {s}, {s}] (NCHW) \
                     (data.image_size, data.channels)"
            ),
            ))
        }
    };
    let n = nchw.shape()[0].min(limit.unwrap_or(usize::MAX));
    if n == 0 {
        return Err(Error::file(path, format!("array {name:?} holds no images")));
    }
    let pixels = nchw
        .slice_axis(ndarray::Axis(0), (0..n).into())
        .iter()
        .copied()
        .collect();
    Ok((pixels, n))
}
