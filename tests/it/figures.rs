//! Figures: every function writes a valid PNG and SVG of the expected size, odd data included.
//!
//! Set `DDIMLAB_KEEP_FIGURES=1` to keep the rendered files (their directory is printed).

use ddimlab::report::figures::{
    image_grid, line_chart, scatter_panels, Series, GRID_COLUMN_LABEL_BAND, GRID_GAP, GRID_MARGIN,
    GRID_MIN_LABEL_WIDTH, GRID_TARGET_CELL, GRID_TITLE_BAND,
};
use std::path::{Path, PathBuf};

/// A fresh output directory for one test, removed on drop unless `DDIMLAB_KEEP_FIGURES` is set.
struct OutDir(PathBuf);

impl OutDir {
    fn new(name: &str) -> OutDir {
        let dir = std::env::temp_dir().join(format!("ddimlab-figures-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        OutDir(dir)
    }

    fn stem(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for OutDir {
    fn drop(&mut self) {
        if std::env::var_os("DDIMLAB_KEEP_FIGURES").is_some() {
            eprintln!("figures kept in {}", self.0.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

fn with_ext(stem: &Path, ext: &str) -> PathBuf {
    let mut s = stem.as_os_str().to_owned();
    s.push(".");
    s.push(ext);
    PathBuf::from(s)
}

/// Width and height from a PNG's signature and IHDR chunk, checked by hand.
fn png_size(path: &Path) -> (u32, u32) {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert!(bytes.len() > 33, "{}: too short for a PNG", path.display());
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n", "PNG signature");
    assert_eq!(u32::from_be_bytes(bytes[8..12].try_into().unwrap()), 13, "IHDR length");
    assert_eq!(&bytes[12..16], b"IHDR", "first chunk is IHDR");
    let w = u32::from_be_bytes(bytes[16..20].try_into().unwrap());
    let h = u32::from_be_bytes(bytes[20..24].try_into().unwrap());
    (w, h)
}

/// Checks the SVG's root element, its size attributes and that it contains `text`.
fn check_svg(path: &Path, size: (u32, u32), text: &str) {
    let svg = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut body = svg.trim_start();
    if body.starts_with("<?xml") {
        body = body[body.find("?>").expect("closed XML prolog") + 2..].trim_start();
    }
    assert!(
        body.starts_with("<svg"),
        "SVG root element: {:?}",
        &body[..body.len().min(60)]
    );
    let root_tag = &body[..body.find('>').unwrap()];
    assert!(root_tag.contains(&format!("width=\"{}\"", size.0)), "{root_tag}");
    assert!(root_tag.contains(&format!("height=\"{}\"", size.1)), "{root_tag}");
    assert!(svg.contains(text), "SVG lacks {text:?}");
}

/// Both files exist, the PNG has `size`, the SVG matches it and contains `title`.
fn check_outputs(stem: &Path, size: (u32, u32), title: &str) {
    assert_eq!(png_size(&with_ext(stem, "png")), size, "PNG size");
    check_svg(&with_ext(stem, "svg"), size, title);
}

fn sweep() -> Vec<Series> {
    let steps = [10.0, 20.0, 50.0, 100.0, 200.0, 500.0, 1000.0];
    [0.0, 0.2, 0.5, 1.0]
        .iter()
        .map(|&eta| Series {
            label: format!("η = {eta:.1}"),
            band: vec![],
            points: steps
                .iter()
                .map(|&s: &f64| (s, 5.0 + 40.0 * eta / s.sqrt() + 30.0 / s))
                .collect(),
        })
        .collect()
}

#[test]
fn line_chart_writes_png_and_svg() {
    let out = OutDir::new("line");
    let stem = out.stem("fid_vs_steps");
    line_chart(
        &stem,
        "Sample error vs steps",
        "steps S",
        "error",
        &sweep(),
        true,
        false,
    )
    .unwrap();
    check_outputs(&stem, (900, 600), "Sample error vs steps");
    let svg = std::fs::read_to_string(with_ext(&stem, "svg")).unwrap();
    for text in ["steps S", "error", "η = 0.5", ">\n100\n<", ">\n1000\n<"] {
        assert!(svg.contains(text), "SVG lacks {text:?}");
    }

    let stem = out.stem("log_log");
    line_chart(&stem, "log-log", "S", "MSE", &sweep(), true, true).unwrap();
    check_outputs(&stem, (900, 600), "log-log");

    // A stem with a dot keeps its dot: the extension is appended, not substituted.
    let stem = out.stem("linear.eta0.5");
    line_chart(&stem, "linear", "S", "MSE", &sweep(), false, false).unwrap();
    check_outputs(&stem, (900, 600), "linear");
}

#[test]
fn line_chart_survives_nan_empty_and_extreme_data() {
    let out = OutDir::new("line-odd");
    let mut series = sweep();
    series[0].points[2].1 = f64::NAN;
    series[1].points[3].0 = f64::INFINITY;
    series[2].points.push((-5.0, 1.0)); // not drawable on a log x axis
    series.push(Series {
        label: "empty".into(),
        band: vec![],
        points: vec![],
    });
    series.push(Series {
        label: "all NaN".into(),
        band: vec![],
        points: vec![(f64::NAN, f64::NAN); 3],
    });
    let stem = out.stem("odd");
    line_chart(&stem, "odd data", "S", "error", &series, true, true).unwrap();
    check_outputs(&stem, (900, 600), "odd data");

    let stem = out.stem("nothing");
    let nothing = vec![Series {
        label: "η = 1".into(),
        band: vec![],
        points: vec![(f64::NAN, 1.0), (10.0, f64::NEG_INFINITY)],
    }];
    line_chart(&stem, "all NaN", "S", "error", &nothing, true, false).unwrap();
    check_outputs(&stem, (900, 600), "all NaN");
    assert!(std::fs::read_to_string(with_ext(&stem, "svg"))
        .unwrap()
        .contains("no data"));

    let stem = out.stem("no_series");
    line_chart(&stem, "no series", "S", "error", &[], false, false).unwrap();
    check_outputs(&stem, (900, 600), "no series");

    let stem = out.stem("extreme");
    let extreme = vec![
        Series {
            label: "huge".into(),
            band: vec![],
            points: vec![(1.0, f64::MAX), (2.0, -f64::MAX), (3.0, 0.0)],
        },
        Series {
            label: "constant".into(),
            band: vec![],
            points: vec![(5.0, 2.0), (5.0, 2.0)],
        },
        Series {
            label: "tiny".into(),
            band: vec![],
            points: vec![(1e-300, 1e-300), (2e-300, 3e-300)],
        },
    ];
    line_chart(&stem, "extreme", "S", "error", &extreme, false, false).unwrap();
    check_outputs(&stem, (900, 600), "extreme");
    let stem = out.stem("extreme_log");
    line_chart(&stem, "extreme log", "S", "error", &extreme, true, true).unwrap();
    check_outputs(&stem, (900, 600), "extreme log");
}

/// An 8 × 8 "digit": a bright ring on a dark background, shifted by `k`.
fn digit(k: usize) -> Vec<f32> {
    (0..64)
        .map(|i| {
            let (r, c) = ((i / 8) as f32 - 3.5, (i % 8) as f32 - 3.5 + (k % 3) as f32 * 0.5);
            let d = (r * r + c * c).sqrt();
            if (1.5..3.2).contains(&d) {
                1.0
            } else {
                -1.0
            }
        })
        .collect()
}

#[test]
fn image_grid_size_follows_the_layout_formula() {
    let out = OutDir::new("grid");
    let stem = out.stem("grid");
    let steps = [10, 20, 50, 100];
    let rows: Vec<(String, Vec<Vec<f32>>)> = [0.0, 0.5, 1.0]
        .iter()
        .map(|eta| (format!("η = {eta:.1}"), (0..4).map(digit).collect()))
        .collect();
    let columns: Vec<String> = steps.iter().map(|s| format!("S={s}")).collect();
    image_grid(&stem, "Same x_T", &rows, (1, 8, 8), &columns).unwrap();

    // Short labels: label column at its minimum; 8×8 images scaled ×8 = 64 px, wider than
    // the column labels; R = 3, C = 4.
    let (r, c, cell) = (3, 4, 64);
    assert_eq!(GRID_TARGET_CELL, cell);
    let width = 2 * GRID_MARGIN + GRID_MIN_LABEL_WIDTH + c * cell + (c - 1) * GRID_GAP;
    let height = 2 * GRID_MARGIN + GRID_TITLE_BAND + GRID_COLUMN_LABEL_BAND + r * cell + (r - 1) * GRID_GAP;
    assert_eq!((width, height), (426, 314));
    check_outputs(&stem, (width, height), "Same x_T");
    check_svg(&with_ext(&stem, "svg"), (width, height), "S=100");

    // No column labels: no label band. 16×16 images scale ×4 = 64 px as well; a short row
    // counts as many columns as the longest.
    let stem = out.stem("grid16");
    let big = vec![0.25f32; 256];
    let rows = vec![("a".to_string(), vec![big.clone(); 2]), ("b".to_string(), vec![big])];
    image_grid(&stem, "g16", &rows, (1, 16, 16), &[]).unwrap();
    let (r, c) = (2, 2);
    let width = 2 * GRID_MARGIN + GRID_MIN_LABEL_WIDTH + c * cell + (c - 1) * GRID_GAP;
    let height = 2 * GRID_MARGIN + GRID_TITLE_BAND + r * cell + (r - 1) * GRID_GAP;
    check_outputs(&stem, (width, height), "g16");
}

#[test]
fn image_grid_odd_data() {
    let out = OutDir::new("grid-odd");
    // Out-of-range, infinite and NaN pixels are drawn (clamped / red), not a panic.
    let mut odd = digit(0);
    odd[0] = f32::NAN;
    odd[1] = f32::INFINITY;
    odd[2] = -7.0;
    let stem = out.stem("odd");
    image_grid(
        &stem,
        "odd pixels",
        &[("odd".into(), vec![odd])],
        (1, 8, 8),
        &["S = 10".into()],
    )
    .unwrap();
    assert!(with_ext(&stem, "png").exists() && with_ext(&stem, "svg").exists());

    // No rows at all: a valid, nearly empty figure.
    let stem = out.stem("empty");
    image_grid(&stem, "empty grid", &[], (1, 8, 8), &[]).unwrap();
    assert!(std::fs::read_to_string(with_ext(&stem, "svg"))
        .unwrap()
        .contains("no data"));
    png_size(&with_ext(&stem, "png"));

    // A wrongly sized image or a zero size is an error, not a panic.
    let stem = out.stem("bad");
    assert!(image_grid(&stem, "bad", &[("x".into(), vec![vec![0.0; 63]])], (1, 8, 8), &[]).is_err());
    assert!(image_grid(&stem, "bad", &[], (1, 0, 8), &[]).is_err());
    assert!(image_grid(&stem, "bad", &[], (2, 8, 8), &[]).is_err());
}

#[test]
fn rgb_images_are_drawn_in_colour_not_as_separate_planes() {
    let out = OutDir::new("grid-rgb");
    // One 2×2 CHW image: red, green / blue, white.
    let planes = [
        [1.0f32, -1.0, -1.0, 1.0], // R
        [-1.0, 1.0, -1.0, 1.0],    // G
        [-1.0, -1.0, 1.0, 1.0],    // B
    ];
    let image: Vec<f32> = planes.concat();
    let stem = out.stem("rgb");
    image_grid(&stem, "rgb", &[("x".into(), vec![image.clone()])], (3, 2, 2), &[]).unwrap();
    let svg = std::fs::read_to_string(with_ext(&stem, "svg")).unwrap().to_uppercase();
    for colour in ["#FF0000", "#00FF00", "#0000FF", "#FFFFFF"] {
        assert!(svg.contains(colour), "{colour} missing");
    }
    // Read as one channel it is refused: 12 values are not a 2×2 grey image.
    assert!(image_grid(&stem, "grey", &[("x".into(), vec![image])], (1, 2, 2), &[]).is_err());
}

fn moons(n: usize) -> Vec<(f64, f64)> {
    (0..n)
        .map(|i| {
            let t = std::f64::consts::PI * i as f64 / n as f64 * 2.0;
            if i % 2 == 0 {
                (t.cos() / 1.5, t.sin().abs() / 1.5 - 0.25)
            } else {
                ((1.0 - t.cos()) / 1.5 - 0.66, -t.sin().abs() / 1.5 + 0.25)
            }
        })
        .collect()
}

#[test]
fn scatter_panels_write_png_and_svg() {
    let out = OutDir::new("scatter");
    let background = moons(1000);
    let mut panels = Vec::new();
    for eta in [0.0, 1.0] {
        for s in [10, 100, 1000] {
            let jitter = 0.3 / (s as f64).sqrt() * (1.0 + eta);
            let pts: Vec<(f64, f64)> = moons(200)
                .iter()
                .enumerate()
                .map(|(i, p)| (p.0 + jitter * ((i * 7 % 13) as f64 / 13.0 - 0.5), p.1))
                .collect();
            panels.push((format!("η = {eta:.1}, S = {s}"), pts));
        }
    }
    panels[5].1.push((40.0, 0.0)); // off-axis
    panels[5].1.push((f64::NAN, 0.0));
    let stem = out.stem("moons");
    scatter_panels(&stem, "Two moons samples", &background, &panels, 3).unwrap();
    check_outputs(&stem, (2 * 12 + 3 * 300, 50 + 2 * 300 + 12), "Two moons samples");
    let svg = std::fs::read_to_string(with_ext(&stem, "svg")).unwrap();
    assert!(svg.contains("η = 1.0, S = 1000") && svg.contains("1 off-axis"));

    // Odd inputs: no background, empty panels, zero columns, nothing at all.
    let stem = out.stem("odd");
    let odd = vec![
        ("empty".to_string(), vec![]),
        ("nan".to_string(), vec![(f64::NAN, f64::INFINITY)]),
    ];
    scatter_panels(&stem, "odd", &[], &odd, 0).unwrap();
    check_outputs(&stem, (2 * 12 + 300, 50 + 2 * 300 + 12), "odd");
    let stem = out.stem("nothing");
    scatter_panels(&stem, "nothing", &[(f64::NAN, 1.0)], &[], 4).unwrap();
    check_outputs(&stem, (2 * 12 + 300, 50 + 300 + 12), "nothing");
}
