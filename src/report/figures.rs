//! Figures for experiment reports: plain data in, `<stem>.png` and `<stem>.svg` out.
//!
//! Every function draws the same figure twice, once into a PNG (bitmap) and once into an SVG
//! (vector, text kept as `<text>` elements). Odd data never panics: NaN and infinite values are
//! skipped, empty inputs are drawn as nothing, and a figure without any drawable value still
//! comes out as a valid file with a "no data" note. Text is set in the bundled DejaVu Sans
//! (`assets/fonts/`), registered once with plotters as `sans-serif`, so no system font lookup
//! is needed.

use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use plotters::coord::ranged1d::{KeyPointHint, NoDefaultFormatting, Ranged, ValueFormatter};
use plotters::coord::types::RangedCoordf64;
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use plotters::style::{register_font, FontDesc, FontFamily, FontStyle};

use crate::error::{Error, Result};

/// The bundled font (DejaVu Sans, licence in `assets/fonts/LICENSE-DejaVu.txt`).
static FONT_BYTES: &[u8] = include_bytes!("../../assets/fonts/DejaVuSans.ttf");
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

/// Padded axis range around `[lo, hi]` (5 % either side; a unit-ish range for a single value).
fn padded(lo: f64, hi: f64) -> Range<f64> {
    let span = hi - lo;
    if !span.is_finite() {
        // Values near ±f64::MAX: keep a finite span so that the axis maths stays finite.
        return (lo / 4.0).max(-f64::MAX / 4.0)..(hi / 4.0).min(f64::MAX / 4.0);
    }
    let pad = if span > 0.0 {
        span * 0.05
    } else if lo == 0.0 {
        1.0
    } else {
        lo.abs() * 0.1
    };
    let range = (lo - pad)..(hi + pad);
    if range.end - range.start > 0.0 && (range.end - range.start).is_finite() {
        range
    } else {
        lo..hi + 1.0_f64.max(hi.abs() * 1e-6)
    }
}

/// Extent of finite values, if any.
fn extent(values: impl Iterator<Item = f64>) -> Option<(f64, f64)> {
    values.filter(|v| v.is_finite()).fold(None, |acc, v| match acc {
        None => Some((v, v)),
        Some((lo, hi)) => Some((lo.min(v), hi.max(v))),
    })
}

/// Tick positions and labels for one axis.
struct Ticks {
    /// Labelled tick positions (axis coordinates).
    bold: Vec<f64>,
    /// Unlabelled grid lines (axis coordinates).
    light: Vec<f64>,
    /// Labels of `bold`, in order.
    labels: Vec<(f64, String)>,
}

impl Ticks {
    /// The label of tick `v` (the nearest labelled tick).
    fn label(&self, v: f64) -> String {
        self.labels
            .iter()
            .min_by(|a, b| (a.0 - v).abs().total_cmp(&(b.0 - v).abs()))
            .map(|(_, s)| s.clone())
            .unwrap_or_default()
    }

    /// "Nice" linear ticks (steps of 1, 2 or 5 × 10^k), about `target` of them and at least 3.
    fn linear(range: &Range<f64>, target: usize) -> Ticks {
        let span = range.end - range.start;
        let raw = span / target.max(1) as f64;
        let magnitude = 10f64.powf(raw.log10().floor());
        let ladder = [0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0];
        let mut rung = ladder
            .iter()
            .position(|m| m * magnitude >= raw)
            .unwrap_or(ladder.len() - 1);
        let ticks_at = |step: f64| -> Vec<f64> {
            let mut ticks = Vec::new();
            if step.is_finite() && step > 0.0 {
                let mut k = (range.start / step).ceil();
                while k * step <= range.end && ticks.len() < 100 {
                    ticks.push(k * step);
                    k += 1.0;
                }
            }
            ticks
        };
        let mut step = ladder[rung] * magnitude;
        let mut bold = ticks_at(step);
        while bold.len() < 3 && rung > 0 {
            rung -= 1;
            step = ladder[rung] * magnitude;
            bold = ticks_at(step);
        }
        let decimals = (-step.log10().floor()).clamp(0.0, 12.0) as usize;
        let big = step.abs() >= 1e5 || step.abs() < 1e-4;
        let labels = bold
            .iter()
            .map(|&v| {
                let v = if v.abs() < step * 1e-9 { 0.0 } else { v };
                let text = match (v == 0.0, big) {
                    (true, _) => "0".to_string(),
                    (false, true) => format!("{v:.1e}"),
                    (false, false) => format!("{v:.decimals$}"),
                };
                (v, text)
            })
            .collect();
        Ticks {
            bold,
            light: Vec::new(),
            labels,
        }
    }

    /// Ticks for a log10 axis; `range` is in log10 units, labels show 10^v.
    ///
    /// Powers of ten (every n-th one over many decades, at most about 8 labels), with 2 and 5
    /// in between under two decades, and 1..9 in between under one; light lines at 1..9 × 10^k
    /// when the range spans at most 12 decades (at powers of ten up to 100 decades).
    fn log10(range: &Range<f64>) -> Ticks {
        let first = range.start.floor() as i64;
        let last = range.end.ceil() as i64;
        let span = range.end - range.start;
        let inside = |v: &f64| *v >= range.start && *v <= range.end;
        let decades = |ms: &[f64], every: i64| -> Vec<f64> {
            (first..=last)
                .filter(|k| k.rem_euclid(every) == 0)
                .flat_map(|k| ms.iter().map(move |m| k as f64 + m.log10()))
                .filter(inside)
                .collect()
        };
        let all: Vec<f64> = (1..=9).map(f64::from).collect();
        let every = ((span / 8.0).ceil() as i64).max(1);
        let mut bold = decades(&[1.0], every);
        if span < 2.0 {
            bold = decades(&[1.0, 2.0, 5.0], 1);
        }
        if bold.len() < 2 {
            bold = decades(&all, 1);
        }
        let light = if span <= 12.0 {
            decades(&all, 1)
        } else if span <= 100.0 {
            decades(&[1.0], 1)
        } else {
            Vec::new()
        };
        let labels = bold.iter().map(|&v| (v, format_power(v))).collect();
        Ticks { bold, light, labels }
    }
}

/// A linear axis (in axis coordinates, i.e. log10 units on a log axis) with our own ticks.
struct Axis {
    coord: RangedCoordf64,
    ticks: Ticks,
}

impl Axis {
    /// An axis over `range` with `ticks`.
    fn new(range: Range<f64>, ticks: Ticks) -> Axis {
        Axis {
            coord: range.into(),
            ticks,
        }
    }
}

impl Ranged for Axis {
    type FormatOption = NoDefaultFormatting;
    type ValueType = f64;

    fn map(&self, value: &f64, limit: (i32, i32)) -> i32 {
        self.coord.map(value, limit)
    }

    fn key_points<Hint: KeyPointHint>(&self, hint: Hint) -> Vec<f64> {
        if hint.weight().allow_light_points() {
            self.ticks.light.clone()
        } else {
            self.ticks.bold.clone()
        }
    }

    fn range(&self) -> Range<f64> {
        self.coord.range()
    }
}

impl ValueFormatter<f64> for Axis {
    fn format_ext(&self, value: &f64) -> String {
        self.ticks.label(*value)
    }
}

/// 10^v with three significant digits, plain for 0.001 ≤ x < 100000, else like "1e6".
fn format_power(v: f64) -> String {
    let x = 10f64.powf(v);
    if (1e-3..1e5).contains(&x) {
        let decimals = (2.0 - x.log10().floor()).max(0.0) as usize;
        let s = format!("{x:.decimals$}");
        if s.contains('.') {
            s.trim_end_matches('0').trim_end_matches('.').to_string()
        } else {
            s
        }
    } else if (v - v.round()).abs() < 1e-9 {
        format!("1e{}", v.round() as i64)
    } else {
        format!("{x:.0e}")
    }
}

/// A line chart ready to draw.
struct LineChart<'a> {
    title: &'a str,
    x_label: &'a str,
    y_label: &'a str,
    series: &'a [Series],
    log_x: bool,
    log_y: bool,
}

impl LineChart<'_> {
    /// Maps a value to axis coordinates, or `None` where it cannot be drawn.
    fn axis_value(v: f64, log: bool) -> Option<f64> {
        match (v.is_finite(), log) {
            (false, _) => None,
            (true, false) => Some(v),
            (true, true) if v > 0.0 => Some(v.log10()),
            (true, true) => None,
        }
    }

    /// The drawable runs of one series, in axis coordinates, sorted by x.
    fn segments(&self, series: &Series) -> Vec<Vec<(f64, f64)>> {
        let mut points = series.points.clone();
        points.sort_by(|a, b| a.0.total_cmp(&b.0));
        let mut runs: Vec<Vec<(f64, f64)>> = vec![Vec::new()];
        for (x, y) in points {
            match (Self::axis_value(x, self.log_x), Self::axis_value(y, self.log_y)) {
                (Some(x), Some(y)) => {
                    if let Some(run) = runs.last_mut() {
                        run.push((x, y));
                    }
                }
                _ => runs.push(Vec::new()),
            }
        }
        runs.retain(|run| !run.is_empty());
        runs
    }

    /// The band of `series` in axis coordinates, sorted by x; empty on a log y axis
    /// (a band reaching 0 has no log) or when any end is not finite.
    fn band(&self, series: &Series) -> Vec<(f64, f64, f64)> {
        if self.log_y {
            return Vec::new();
        }
        let mut band: Vec<(f64, f64, f64)> = series
            .band
            .iter()
            .filter_map(|&(x, lo, hi)| {
                let x = Self::axis_value(x, self.log_x)?;
                (lo.is_finite() && hi.is_finite()).then_some((x, lo, hi))
            })
            .collect();
        band.sort_by(|a, b| a.0.total_cmp(&b.0));
        band
    }
}

impl Figure for LineChart<'_> {
    fn size(&self) -> (u32, u32) {
        LINE_CHART_SIZE
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult<DB> {
        root.fill(&WHITE)?;
        let body = draw_title(root, self.title, 50)?;

        let all: Vec<Vec<Vec<(f64, f64)>>> = self.series.iter().map(|s| self.segments(s)).collect();
        let bands: Vec<Vec<(f64, f64, f64)>> = self.series.iter().map(|s| self.band(s)).collect();
        let flat = || all.iter().flatten().flatten();
        let band_ends = || bands.iter().flatten().flat_map(|b| [b.1, b.2]);
        let x_extent = extent(flat().map(|p| p.0));
        let y_extent = extent(flat().map(|p| p.1).chain(band_ends()));
        let has_data = x_extent.is_some();
        let (x0, x1) = x_extent.unwrap_or((0.0, 1.0));
        let (y0, y1) = y_extent.unwrap_or((0.0, 1.0));
        let x_range = padded(x0, x1);
        let y_range = padded(y0, y1);
        let ticks = |range: &Range<f64>, log: bool, n: usize| {
            if log {
                Ticks::log10(range)
            } else {
                Ticks::linear(range, n)
            }
        };
        let x_ticks = ticks(&x_range, self.log_x, 8);
        let y_ticks = ticks(&y_range, self.log_y, 8);

        let max_text = 240;
        let (labels, legend_w) = legend_labels(&self.series, &all, max_text);
        let (body_w, _) = body.dim_in_pixel();
        let (plot_area, legend_area) = body.split_horizontally(body_w - legend_w);

        let mut chart = ChartBuilder::on(&plot_area)
            .margin(10)
            .margin_right(20)
            .x_label_area_size(64)
            .y_label_area_size(100)
            .build_cartesian_2d(Axis::new(x_range, x_ticks), Axis::new(y_range, y_ticks))?;
        chart
            .configure_mesh()
            .x_desc(self.x_label)
            .y_desc(self.y_label)
            .axis_desc_style(font(AXIS_PX))
            .label_style(font(LABEL_PX))
            .bold_line_style(RGBColor(210, 210, 210))
            .light_line_style(RGBColor(238, 238, 238))
            .draw()?;

        for (i, band) in bands.iter().enumerate().filter(|(_, b)| b.len() > 1) {
            let outline: Vec<(f64, f64)> = band
                .iter()
                .map(|b| (b.0, b.2))
                .chain(band.iter().rev().map(|b| (b.0, b.1)))
                .collect();
            chart.draw_series(std::iter::once(Polygon::new(outline, colour(i).mix(0.15).filled())))?;
        }
        for (i, runs) in all.iter().enumerate() {
            let c = colour(i);
            for run in runs {
                chart.draw_series(LineSeries::new(run.iter().copied(), c.stroke_width(2)))?;
                chart.draw_series(run.iter().map(|&p| Circle::new(p, 4, c.filled())))?;
            }
        }
        if !has_data {
            draw_no_data(&chart.plotting_area().strip_coord_spec())?;
        }

        // The legend box, aligned with the top of the plot.
        let drawn: Vec<bool> = all.iter().map(|runs| !runs.is_empty()).collect();
        draw_legend(&legend_area, &labels, &drawn, legend_w, max_text)
    }
}

/// The legend's rows ("(no data)" after a series without points) and its width: swatch
/// (40 px) + the widest label up to `max_text` px, to the right of the plot.
fn legend_labels(series: &[Series], all: &[Vec<Vec<(f64, f64)>>], max_text: u32) -> (Vec<String>, u32) {
    let labels: Vec<String> = series
        .iter()
        .zip(all)
        .map(|(s, runs)| {
            if runs.is_empty() {
                format!("{} (no data)", s.label)
            } else {
                s.label.clone()
            }
        })
        .collect();
    let widest = widest(labels.iter(), LABEL_PX).unwrap_or(0);
    let legend_w = if labels.is_empty() {
        0
    } else {
        widest.min(max_text) + 40 + 40
    };
    (labels, legend_w)
}

/// The legend of a line chart: one row per series (its swatch where it has data, its
/// label truncated to `max_text` px), as many rows as fit and "… N more".
fn draw_legend<DB: DrawingBackend>(
    legend_area: &DrawingArea<DB, Shift>,
    labels: &[String],
    drawn: &[bool],
    legend_w: u32,
    max_text: u32,
) -> DrawResult<DB> {
    if labels.is_empty() {
        return Ok(());
    }
    let row_h = 28;
    let (_, legend_h) = legend_area.dim_in_pixel();
    let fits = ((legend_h as i32 - 40) / row_h).max(1) as usize;
    let shown = if labels.len() > fits { fits - 1 } else { labels.len() };
    let rows = shown + usize::from(shown < labels.len());
    let (top, left, right) = (10, 4, legend_w as i32 - 12);
    let bottom = top + 12 + rows as i32 * row_h;
    legend_area.draw(&Rectangle::new([(left, top), (right, bottom)], WHITE.filled()))?;
    legend_area.draw(&Rectangle::new([(left, top), (right, bottom)], BLACK.stroke_width(1)))?;
    let text_style = font(LABEL_PX).color(&BLACK).pos(Pos::new(HPos::Left, VPos::Center));
    for (i, label) in labels.iter().take(shown).enumerate() {
        let y = top + 6 + i as i32 * row_h + row_h / 2;
        let c = colour(i);
        if drawn[i] {
            legend_area.draw(&PathElement::new(
                vec![(left + 10, y), (left + 40, y)],
                c.stroke_width(2),
            ))?;
            legend_area.draw(&Circle::new((left + 25, y), 4, c.filled()))?;
        }
        let text = truncate_to(label, LABEL_PX, max_text);
        legend_area.draw(&Text::new(text, (left + 50, y), text_style.clone()))?;
    }
    if shown < labels.len() {
        let y = top + 6 + shown as i32 * row_h + row_h / 2;
        let more = format!("… {} more", labels.len() - shown);
        legend_area.draw(&Text::new(more, (left + 50, y), text_style))?;
    }
    Ok(())
}

/// An image grid with its layout worked out.
struct ImageGrid<'a> {
    title: &'a str,
    rows: &'a [(String, Vec<Vec<f32>>)],
    column_labels: &'a [String],
    channels: usize,
    width: usize,
    scale: u32,
    pitch_x: u32,
    pitch_y: u32,
    label_w: u32,
    band: u32,
    size: (u32, u32),
}

impl<'a> ImageGrid<'a> {
    /// Checks the images and computes the layout (see [`image_grid`]).
    fn new(
        title: &'a str,
        rows: &'a [(String, Vec<Vec<f32>>)],
        (channels, height, width): (usize, usize, usize),
        column_labels: &'a [String],
    ) -> Result<Self> {
        ensure_font()?;
        if channels != 1 && channels != 3 {
            return Err(Error::invalid(
                "image channels",
                format!("{channels}: image grids draw 1 (grey) or 3 (RGB) channels"),
            ));
        }
        if height == 0 || width == 0 || height > 4096 || width > 4096 {
            return Err(Error::invalid(
                "image size",
                format!("{height} × {width}: height and width must be between 1 and 4096"),
            ));
        }
        for (label, images) in rows {
            let numel = channels * height * width;
            if let Some((j, image)) = images.iter().enumerate().find(|(_, im)| im.len() != numel) {
                return Err(Error::Shape(format!(
                    "image grid row {label:?}, image {j}: {} values, expected {channels} × {height} × {width} = {numel}",
                    image.len(),
                )));
            }
        }
        let scale = GRID_TARGET_CELL.div_ceil(height.max(width) as u32).max(1);
        let col_label_w = widest(column_labels.iter(), LABEL_PX)?;
        let row_label_w = widest(rows.iter().map(|(l, _)| l), LABEL_PX)?;
        let pitch_x = (width as u32 * scale).max(if col_label_w > 0 { col_label_w + 8 } else { 0 });
        let pitch_y = height as u32 * scale;
        let columns = rows
            .iter()
            .map(|(_, im)| im.len())
            .max()
            .unwrap_or(0)
            .max(column_labels.len())
            .max(1) as u32;
        let n_rows = rows.len().max(1) as u32;
        let label_w = GRID_MIN_LABEL_WIDTH.max(row_label_w + 16);
        let band = if column_labels.iter().any(|l| !l.is_empty()) {
            GRID_COLUMN_LABEL_BAND
        } else {
            0
        };
        let grid_w = 2 * GRID_MARGIN + label_w + columns * pitch_x + (columns - 1) * GRID_GAP;
        let title_w = text_size(title, TITLE_PX)?.0 + 2 * GRID_MARGIN;
        let size = (
            grid_w.max(title_w),
            2 * GRID_MARGIN + GRID_TITLE_BAND + band + n_rows * pitch_y + (n_rows - 1) * GRID_GAP,
        );
        Ok(ImageGrid {
            title,
            rows,
            column_labels,
            channels,
            width,
            scale,
            pitch_x,
            pitch_y,
            label_w,
            band,
            size,
        })
    }
}

/// The colour of pixel k (row-major over height × width) of a CHW image: grey for one
/// channel, RGB for three, each value in [−1, 1] mapped as the exports map it
/// ([`crate::store::export::to_u8`]: −1 → 0, +1 → 255); a NaN in any channel → red.
fn pixel(image: &[f32], channels: usize, plane: usize, k: usize) -> RGBColor {
    let v = |ch: usize| image[ch * plane + k];
    if (0..channels).any(|ch| v(ch).is_nan()) {
        return NAN_PIXEL;
    }
    let u = |ch: usize| crate::store::export::to_u8(v(ch));
    if channels == 3 {
        RGBColor(u(0), u(1), u(2))
    } else {
        RGBColor(u(0), u(0), u(0))
    }
}

impl Figure for ImageGrid<'_> {
    fn size(&self) -> (u32, u32) {
        self.size
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult<DB> {
        root.fill(&WHITE)?;
        let body = draw_title(&root.margin(GRID_MARGIN, 0, 0, 0), self.title, GRID_TITLE_BAND)?;
        let left = (GRID_MARGIN + self.label_w) as i32;
        let top = self.band as i32;
        let (px, py) = (self.pitch_x as i32, self.pitch_y as i32);
        let gap = GRID_GAP as i32;
        let img_w = (self.width as u32 * self.scale) as i32;
        let s = self.scale as i32;

        let centred = |h: HPos| font(LABEL_PX).color(&BLACK).pos(Pos::new(h, VPos::Center));
        for (j, label) in self.column_labels.iter().enumerate() {
            let x = left + j as i32 * (px + gap) + px / 2;
            body.draw(&Text::new(label.clone(), (x, top / 2), centred(HPos::Center)))?;
        }
        if self.rows.is_empty() {
            return draw_no_data(&body);
        }
        for (i, (label, images)) in self.rows.iter().enumerate() {
            let y0 = top + i as i32 * (py + gap);
            body.draw(&Text::new(
                label.clone(),
                (left - 12, y0 + py / 2),
                centred(HPos::Right),
            ))?;
            for (j, image) in images.iter().enumerate() {
                let x0 = left + j as i32 * (px + gap) + (px - img_w) / 2;
                let plane = image.len() / self.channels;
                for k in 0..plane {
                    let (r, c) = ((k / self.width) as i32, (k % self.width) as i32);
                    let corner = (x0 + c * s, y0 + r * s);
                    let block = [corner, (corner.0 + s, corner.1 + s)];
                    body.draw(&Rectangle::new(block, pixel(image, self.channels, plane, k).filled()))?;
                }
            }
        }
        Ok(())
    }
}

/// Scatter panels with their shared axis range.
struct ScatterPanels<'a> {
    title: &'a str,
    background: Vec<(f64, f64)>,
    panels: &'a [(String, Vec<(f64, f64)>)],
    columns: usize,
    x_range: Range<f64>,
    y_range: Range<f64>,
    size: (u32, u32),
}

impl<'a> ScatterPanels<'a> {
    /// Works out the shared range and the figure size.
    fn new(
        title: &'a str,
        background: &[(f64, f64)],
        panels: &'a [(String, Vec<(f64, f64)>)],
        columns: usize,
    ) -> Result<Self> {
        ensure_font()?;
        let finite = |p: &&(f64, f64)| p.0.is_finite() && p.1.is_finite();
        let background: Vec<(f64, f64)> = background.iter().filter(finite).copied().collect();
        let samples = || panels.iter().flat_map(|(_, pts)| pts.iter().filter(finite));
        let source: Vec<(f64, f64)> = if background.is_empty() {
            samples().copied().collect()
        } else {
            background.clone()
        };
        let (x0, x1) = extent(source.iter().map(|p| p.0)).unwrap_or((-1.0, 1.0));
        let (y0, y1) = extent(source.iter().map(|p| p.1)).unwrap_or((-1.0, 1.0));
        let columns = columns.clamp(1, panels.len().max(1));
        let rows = panels.len().div_ceil(columns).max(1) as u32;
        let width = (2 * PANEL_MARGIN + columns as u32 * PANEL_SIZE).max(text_size(title, TITLE_PX)?.0 + 40);
        let size = (width, PANEL_TITLE_BAND + rows * PANEL_SIZE + PANEL_MARGIN);
        Ok(ScatterPanels {
            title,
            background,
            panels,
            columns,
            x_range: padded(x0, x1),
            y_range: padded(y0, y1),
            size,
        })
    }
}

impl Figure for ScatterPanels<'_> {
    fn size(&self) -> (u32, u32) {
        self.size
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult<DB> {
        root.fill(&WHITE)?;
        let body = draw_title(root, self.title, PANEL_TITLE_BAND)?;
        if self.panels.is_empty() {
            return draw_no_data(&body);
        }
        let body = body.margin(0, PANEL_MARGIN, PANEL_MARGIN, PANEL_MARGIN);
        let sample_colour = colour(0);
        let (xr, yr) = (&self.x_range, &self.y_range);
        let inside = |p: &&(f64, f64)| xr.contains(&p.0) && yr.contains(&p.1);
        for (i, (label, points)) in self.panels.iter().enumerate() {
            let (row, col) = ((i / self.columns) as i32, (i % self.columns) as i32);
            let s = PANEL_SIZE as i32;
            let (px, py) = (col * s, row * s);
            let panel = body.clone().shrink((px, py), (PANEL_SIZE, PANEL_SIZE));
            let caption = truncate_to(label, LABEL_PX, PANEL_SIZE - 20);
            let mut chart = ChartBuilder::on(&panel)
                .caption(caption, font(LABEL_PX))
                .margin(6)
                .x_label_area_size(30)
                .y_label_area_size(52)
                .build_cartesian_2d(
                    Axis::new(self.x_range.clone(), Ticks::linear(&self.x_range, 4)),
                    Axis::new(self.y_range.clone(), Ticks::linear(&self.y_range, 4)),
                )?;
            chart
                .configure_mesh()
                .label_style(font(LABEL_PX))
                .bold_line_style(RGBColor(230, 230, 230))
                .draw()?;
            chart.draw_series(
                self.background
                    .iter()
                    .map(|&p| Circle::new(p, 1, BACKGROUND_GREY.filled())),
            )?;
            let visible: Vec<(f64, f64)> = points.iter().filter(inside).copied().collect();
            let off_axis = points.iter().filter(|p| p.0.is_finite() && p.1.is_finite()).count() - visible.len();
            chart.draw_series(
                visible
                    .iter()
                    .map(|&p| Circle::new(p, 2, sample_colour.mix(0.8).filled())),
            )?;
            let area = chart.plotting_area().strip_coord_spec();
            if visible.is_empty() && off_axis == 0 {
                draw_no_data(&area)?;
            }
            if off_axis > 0 {
                let (w, _) = area.dim_in_pixel();
                let style = font(LABEL_PX)
                    .color(&RGBColor(180, 40, 40))
                    .pos(Pos::new(HPos::Right, VPos::Top));
                area.draw(&Text::new(format!("{off_axis} off-axis"), (w as i32 - 4, 4), style))?;
            }
        }
        Ok(())
    }
}
