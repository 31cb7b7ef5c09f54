//! `images` data from PNG folders and .npz files, and the sample export for FID tools.

use std::path::{Path, PathBuf};

use ddimlab::data::{DataKind, DataSpec};
use ddimlab::shape::DataShape;
use ddimlab::store::export::{export_point, ExportFormat};
use ndarray::{Array4, ArrayD};
use ndarray_npy::{NpzReader, NpzWriter};

fn workdir(tag: &str) -> PathBuf {
    crate::common::workdir("images", tag)
}

/// Pixel (i, y, x, c) of the test images.
fn pixel(i: usize, y: usize, x: usize, c: usize) -> u8 {
    ((i * 37 + y * 11 + x * 5 + c * 80) % 256) as u8
}

fn nhwc(n: usize, size: usize) -> Array4<u8> {
    Array4::from_shape_fn((n, size, size, 3), |(i, y, x, c)| pixel(i, y, x, c))
}

fn write_png(path: &Path, width: usize, height: usize, color: png::ColorType, data: &[u8]) {
    let file = std::fs::File::create(path).unwrap();
    let mut encoder = png::Encoder::new(std::io::BufWriter::new(file), width as u32, height as u32);
    encoder.set_color(color);
    encoder.set_depth(png::BitDepth::Eight);
    encoder.write_header().unwrap().write_image_data(data).unwrap();
}

fn write_npz(path: &Path, name: &str, array: &ArrayD<u8>) {
    let mut npz = NpzWriter::new(std::fs::File::create(path).unwrap());
    npz.add_array(name, array).unwrap();
    npz.finish().unwrap();
}

fn spec(path: &Path, size: usize) -> DataSpec {
    DataSpec {
        path: Some(path.to_path_buf()),
        image_size: Some(size),
        ..DataSpec::of_kind(DataKind::Images)
    }
}

/// The expected held-out values: NCHW, x / 127.5 − 1.
fn expected(n: usize, size: usize) -> Vec<f32> {
    let mut v = Vec::new();
    for i in 0..n {
        for c in 0..3 {
            for y in 0..size {
                for x in 0..size {
                    v.push(pixel(i, y, x, c) as f32 / 127.5 - 1.0);
                }
            }
        }
    }
    v
}

#[test]
fn png_folders_and_npz_files_load_as_heldout_images() {
    let dir = workdir("load");
    let images = nhwc(5, 4);
    let pngs = dir.join("pngs");
    std::fs::create_dir_all(&pngs).unwrap();
    for i in 0..5 {
        let data: Vec<u8> = images.index_axis(ndarray::Axis(0), i).iter().copied().collect();
        write_png(&pngs.join(format!("img{i:03}.png")), 4, 4, png::ColorType::Rgb, &data);
    }
    std::fs::write(pngs.join("notes.txt"), "not an image").unwrap();
    let data = spec(&pngs, 4).load(0).unwrap();
    let shape = DataShape::Image {
        channels: 3,
        height: 4,
        width: 4,
    };
    assert_eq!((data.shape(), data.heldout.shape), (shape, shape));
    assert!(data.train.is_empty() && data.heldout.labels.is_none());
    assert_eq!(data.heldout.values, expected(5, 4));

    // NHWC under arr_0, NCHW under x, n_heldout takes the first images.
    let npz = dir.join("nhwc.npz");
    write_npz(&npz, "arr_0", &images.clone().into_dyn());
    assert_eq!(spec(&npz, 4).load(0).unwrap().heldout.values, expected(5, 4));
    let nchw = dir.join("nchw.npz");
    write_npz(
        &nchw,
        "x",
        &images
            .clone()
            .permuted_axes([0, 3, 1, 2])
            .as_standard_layout()
            .to_owned()
            .into_dyn(),
    );
    let three = DataSpec {
        n_heldout: Some(3),
        ..spec(&nchw, 4)
    };
    assert_eq!(three.load(0).unwrap().heldout.values, expected(3, 4));
}

#[test]
fn wrong_sizes_channels_and_keys_name_the_file() {
    let dir = workdir("errors");
    let pngs = dir.join("grey");
    std::fs::create_dir_all(&pngs).unwrap();
    write_png(&pngs.join("a.png"), 4, 4, png::ColorType::Grayscale, &[7; 16]);
    let err = spec(&pngs, 4).load(0).unwrap_err().to_string();
    assert!(err.contains("a.png") && err.contains("1 channel"), "{err}");
    let err = spec(&pngs, 8).load(0).unwrap_err().to_string();
    assert!(err.contains("4×4") && err.contains("expected 8×8"), "{err}");
    let grey = DataSpec {
        channels: Some(1),
        ..spec(&pngs, 4)
    };
    assert_eq!(grey.load(0).unwrap().heldout.values, vec![7.0 / 127.5 - 1.0; 16]);

    let npz = dir.join("small.npz");
    write_npz(&npz, "arr_0", &nhwc(2, 4).into_dyn());
    let err = spec(&npz, 32).load(0).unwrap_err().to_string();
    assert!(err.contains("small.npz") && err.contains("[2, 4, 4, 3]"), "{err}");

    let err = spec(&dir.join("missing.npz"), 4).load(0).unwrap_err().to_string();
    assert!(err.contains("missing.npz") && err.contains("not found"), "{err}");
    let err = DataSpec {
        n_train: Some(10),
        ..spec(&npz, 4)
    }
    .validate()
    .unwrap_err()
    .to_string();
    assert!(err.starts_with("data.n_train: not used by kind"), "{err}");
}

#[test]
fn exports_hold_uint8_nhwc_samples_and_a_grid() {
    let dir = workdir("export");
    let shape = DataShape::Image {
        channels: 3,
        height: 4,
        width: 2,
    };
    let n = 10;
    // Values across and beyond [−1, 1]: they round to (x + 1)·127.5 and clamp to 0..=255.
    let samples: Vec<f32> = (0..n * shape.numel()).map(|k| (k % 23) as f32 / 10.0 - 1.1).collect();
    export_point(&dir, "p1", &samples, shape, &[ExportFormat::Npz, ExportFormat::Png]).unwrap();

    let mut npz = NpzReader::new(std::fs::File::open(dir.join("exports/p1.npz")).unwrap()).unwrap();
    assert_eq!(npz.names().unwrap(), vec!["arr_0".to_string()]);
    let arr: ArrayD<u8> = npz.by_name("arr_0").unwrap();
    assert_eq!(arr.shape(), &[n, 4, 2, 3]);
    for ((i, y, x, c), &v) in arr.into_dimensionality::<ndarray::Ix4>().unwrap().indexed_iter() {
        let s = samples[((i * 3 + c) * 4 + y) * 2 + x] as f64;
        assert_eq!(v, ((s + 1.0) * 127.5).round().clamp(0.0, 255.0) as u8);
    }

    // 10 samples: 8 per row, 2 rows.
    let decoder = png::Decoder::new(std::fs::File::open(dir.join("exports/p1.png")).unwrap());
    let info = decoder.read_info().unwrap().info().clone();
    assert_eq!((info.width, info.height, info.color_type), (16, 8, png::ColorType::Rgb));
}
