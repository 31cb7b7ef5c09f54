//! Figures for experiment reports: plain data in, `<stem>.png` and `<stem>.svg` out.
//!
//! Every function draws the same figure twice, once into a PNG (bitmap) and once into an SVG
//! (vector, text kept as `<text>` elements). Odd data never panics: NaN and infinite values are
//! skipped, empty inputs are drawn as nothing, and a figure without any drawable value still
//! comes out as a valid file with a "no data" note. Text is set in the bundled DejaVu Sans
//! (`assets/fonts/`), registered once with plotters as `sans-serif`, so no system font lookup
//! is needed.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use plotters::style::{register_font, FontDesc, FontFamily, FontStyle};

use crate::error::{Error, Result};

mod axis;
mod grid;
mod line;
mod scatter;

use grid::ImageGrid;
use line::LineChart;
use scatter::ScatterPanels;

/// The bundled font (DejaVu Sans, licence in `assets/fonts/LICENSE-DejaVu.txt`).
static FONT_BYTES: &[u8] = include_bytes!("../../../assets/fonts/DejaVuSans.ttf");
/// The family name under which the bundled font is registered.
const FONT: &str = "sans-serif";

// Font sizes are plotters sizes: the glyph box height in the PNG; the SVG gets `size / 1.24`
// as its `font-size`, so the smallest size, 18, is a 14.5 px font there.

/// Title size.
const TITLE_PX: f64 = 30.0;
/// Axis description size.
const AXIS_PX: f64 = 22.0;
/// Tick label, legend, row/column label and note size; the smallest size used.
const LABEL_PX: f64 = 18.0;

/// Line chart size.
const LINE_CHART_SIZE: (u32, u32) = (900, 600);

/// Image grid: outer margin on every side.
pub const GRID_MARGIN: u32 = 16;
/// Image grid: height of the title band.
pub const GRID_TITLE_BAND: u32 = 48;
/// Image grid: height of the column label band (only when a column label is non-empty).
pub const GRID_COLUMN_LABEL_BAND: u32 = 30;
/// Image grid: gap between neighbouring images, horizontally and vertically.
pub const GRID_GAP: u32 = 6;
/// Image grid: smallest width of the row label column.
pub const GRID_MIN_LABEL_WIDTH: u32 = 120;
/// Image grid: an image's longer side is scaled up to at least this many pixels.
pub const GRID_TARGET_CELL: u32 = 64;

/// Scatter panels: size of one panel (square).
const PANEL_SIZE: u32 = 300;
/// Scatter panels: outer margin.
const PANEL_MARGIN: u32 = 12;
/// Scatter panels: height of the title band.
const PANEL_TITLE_BAND: u32 = 50;

/// Distinct line colours (the "tab10" palette); further series continue with `Palette99`.
const COLOURS: [RGBColor; 10] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
];

/// Colour of a scatter panel's reference data.
const BACKGROUND_GREY: RGBColor = RGBColor(205, 205, 205);
/// Colour of NaN pixels in an image grid.
const NAN_PIXEL: RGBColor = RGBColor(220, 30, 30);

/// One line of a [`line_chart`]: a legend label and its (x, y) points.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    /// Legend text, e.g. `"η = 0.0"`.
    pub label: String,
    /// The points; they are drawn in order of increasing x, non-finite ones are skipped.
    pub points: Vec<(f64, f64)>,
    /// An interval band (x, lo, hi) drawn shaded under the line (linear y axes only).
    pub band: Vec<(f64, f64, f64)>,
}

/// Draws a line chart (e.g. a metric against the number of steps S, one line per η) into
/// `<stem>.png` and `<stem>.svg`, 900 × 600 pixels.
///
/// Each series is a line with a marker at every point, in its own colour, and gets an entry in
/// a legend drawn to the right of the plot (so it never hides a line). Points are sorted by x;
/// a point with a NaN or infinite coordinate (or, on a log axis, a coordinate ≤ 0) is skipped
/// and breaks the line there. A series without drawable points is listed in the legend as
/// "(no data)". Axis ranges cover the drawable points with 5 % padding; log axes are labelled
/// at powers of ten (10, 100, 1000), with 2 and 5 in between when the range spans less than
/// two decades.
pub fn line_chart(
    stem: &Path,
    title: &str,
    x_label: &str,
    y_label: &str,
    series: &[Series],
    log_x: bool,
    log_y: bool,
) -> Result<()> {
    let chart = LineChart {
        title,
        x_label,
        y_label,
        series,
        log_x,
        log_y,
    };
    render(stem, &chart)
}

/// Draws a grid of greyscale images into `<stem>.png` and `<stem>.svg`: one row per entry of
/// `rows` (label, images), labelled on the left, with optional `column_labels` on top.
///
/// Each image is `height × width` values in row-major order. Values are clamped to [−1, 1] and
/// mapped linearly to grey, −1 → black and +1 → white (so UCI digits, ink = +1, come out as
/// white strokes on black); NaN pixels are drawn red. An image of the wrong length is an
/// [`Error::Shape`]. Pixels are scaled up by an integer factor as nearest-neighbour blocks.
///
/// Layout (all in pixels, with the `GRID_*` constants of this module):
///
/// * scale `s = max(1, ceil(GRID_TARGET_CELL / max(height, width)))`, image `w·s × h·s`;
/// * column pitch `cw = max(w·s, widest column label + 8)`, row pitch `ch = h·s`;
/// * `C = max(1, longest row, column_labels.len())` columns, `R = max(1, rows.len())` rows;
/// * label column `L = max(GRID_MIN_LABEL_WIDTH, widest row label + 16)`;
/// * band `B = GRID_COLUMN_LABEL_BAND` if some column label is non-empty, else 0;
/// * width `W = max(2·GRID_MARGIN + L + C·cw + (C−1)·GRID_GAP, widest title line + 2·GRID_MARGIN)`;
/// * height `H = 2·GRID_MARGIN + GRID_TITLE_BAND + B + R·ch + (R−1)·GRID_GAP`.
///
/// For 8 × 8 images: `s = 8`, 64-pixel images.
pub fn image_grid(
    stem: &Path,
    title: &str,
    rows: &[(String, Vec<Vec<f32>>)],
    (channels, height, width): (usize, usize, usize),
    column_labels: &[String],
) -> Result<()> {
    let grid = ImageGrid::new(title, rows, (channels, height, width), column_labels)?;
    render(stem, &grid)
}

/// Draws a grid of 2-D scatter panels into `<stem>.png` and `<stem>.svg`, `columns` panels a
/// row (at least 1, at most the number of panels), 300 × 300 pixels each.
///
/// Every panel shows the reference data `background` as light grey dots and its own samples
/// as small coloured dots, under its title (e.g. `"η = 0.0, S = 10"`). All panels share one
/// axis range: the extent of the finite background points with 5 % padding (or of the
/// samples, when the background has none). Samples outside that range are left out and
/// counted in a note ("3 off-axis") in the panel's corner; non-finite points are skipped.
pub fn scatter_panels(
    stem: &Path,
    title: &str,
    background: &[(f64, f64)],
    panels: &[(String, Vec<(f64, f64)>)],
    columns: usize,
) -> Result<()> {
    let figure = ScatterPanels::new(title, background, panels, columns)?;
    render(stem, &figure)
}

/// The result of drawing onto a plotters area.
type DrawResult<DB> = std::result::Result<(), DrawingAreaErrorKind<<DB as DrawingBackend>::ErrorType>>;

/// A figure that can be drawn onto any plotters backend.
trait Figure {
    /// Size in pixels (width, height).
    fn size(&self) -> (u32, u32);
    /// Draws the whole figure onto `root`.
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult<DB>;
}

/// Registers the bundled font once.
fn ensure_font() -> Result<()> {
    static REGISTERED: OnceLock<bool> = OnceLock::new();
    if *REGISTERED.get_or_init(|| register_font(FONT, FontStyle::Normal, FONT_BYTES).is_ok()) {
        Ok(())
    } else {
        Err(Error::invalid(
            "assets/fonts/DejaVuSans.ttf",
            "the bundled font could not be parsed",
        ))
    }
}

/// `stem` with `.ext` appended (not replacing anything after a dot in the stem).
fn with_suffix(stem: &Path, ext: &str) -> PathBuf {
    let mut name = stem.as_os_str().to_owned();
    name.push(".");
    name.push(ext);
    PathBuf::from(name)
}

/// Draws `figure` into `<stem>.png` and `<stem>.svg`, creating the parent directory if needed.
fn render(stem: &Path, figure: &impl Figure) -> Result<()> {
    ensure_font()?;
    if let Some(parent) = stem.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
    }
    let size = figure.size();
    let png = with_suffix(stem, "png");
    {
        let root = BitMapBackend::new(&png, size).into_drawing_area();
        figure
            .draw(&root)
            .and_then(|()| root.present())
            .map_err(|e| Error::file(&png, e))?;
    }
    let svg = with_suffix(stem, "svg");
    let root = SVGBackend::new(&svg, size).into_drawing_area();
    figure
        .draw(&root)
        .and_then(|()| root.present())
        .map_err(|e| Error::file(&svg, e))
}

/// The text style of the bundled font at `size` pixels.
fn font(size: f64) -> FontDesc<'static> {
    FontDesc::new(FontFamily::Name(FONT), size, FontStyle::Normal)
}

/// Width and height of `text` at `size` pixels.
fn text_size(text: &str, size: f64) -> Result<(u32, u32)> {
    font(size).box_size(text).map_err(|e| Error::invalid("font", e))
}

/// The largest size ≤ `preferred` (and ≥ `LABEL_PX`) at which `text` fits into `max_width`.
fn fitting_size(text: &str, preferred: f64, max_width: u32) -> f64 {
    let mut size = preferred;
    while size > LABEL_PX && text_size(text, size).is_ok_and(|(w, _)| w > max_width) {
        size -= 1.0;
    }
    size
}

/// Width of the widest of `texts` at `size` pixels (0 for none).
fn widest<'t>(texts: impl Iterator<Item = &'t String>, size: f64) -> Result<u32> {
    texts
        .map(|t| text_size(t, size).map(|(w, _)| w))
        .try_fold(0, |acc, w| Ok(acc.max(w?)))
}

/// `text` shortened with "…" until it is at most `max_width` pixels wide at `size`.
fn truncate_to(text: &str, size: f64, max_width: u32) -> String {
    if text_size(text, size).is_ok_and(|(w, _)| w <= max_width) {
        return text.to_string();
    }
    let mut chars: Vec<char> = text.chars().collect();
    while !chars.is_empty() {
        chars.pop();
        let candidate: String = chars.iter().collect::<String>() + "…";
        if text_size(&candidate, size).is_ok_and(|(w, _)| w <= max_width) {
            return candidate;
        }
    }
    String::new()
}

/// The i-th line colour.
fn colour(i: usize) -> RGBColor {
    if i < COLOURS.len() {
        COLOURS[i]
    } else {
        let (r, g, b) = Palette99::pick(i).rgb();
        RGBColor(r, g, b)
    }
}

/// Draws the centred title at the top of `root` and returns the area below `band` pixels.
fn draw_title<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    title: &str,
    band: u32,
) -> std::result::Result<DrawingArea<DB, Shift>, DrawingAreaErrorKind<DB::ErrorType>> {
    let (w, _) = root.dim_in_pixel();
    let size = fitting_size(title, TITLE_PX, w.saturating_sub(20));
    let style = font(size).color(&BLACK).pos(Pos::new(HPos::Center, VPos::Center));
    root.draw(&Text::new(title.to_string(), (w as i32 / 2, band as i32 / 2), style))?;
    Ok(root.split_vertically(band).1)
}

/// Draws a grey "no data" note centred in `area`.
fn draw_no_data<DB: DrawingBackend>(area: &DrawingArea<DB, Shift>) -> DrawResult<DB> {
    let (w, h) = area.dim_in_pixel();
    let style = font(AXIS_PX)
        .color(&RGBColor(110, 110, 110))
        .pos(Pos::new(HPos::Center, VPos::Center));
    area.draw(&Text::new("no data", (w as i32 / 2, h as i32 / 2), style))
}
