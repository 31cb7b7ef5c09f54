//! The line chart: one line per series with its interval band, and its legend.

use std::ops::Range;

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::axis::{extent, padded, Axis, Ticks};
use super::DrawResult;
use super::*;

/// A line chart ready to draw.
pub(super) struct LineChart<'a> {
    pub(super) title: &'a str,
    pub(super) x_label: &'a str,
    pub(super) y_label: &'a str,
    pub(super) series: &'a [Series],
    pub(super) log_x: bool,
    pub(super) log_y: bool,
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
        let (labels, legend_w) = legend_labels(self.series, &all, max_text);
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
pub(super) fn legend_labels(series: &[Series], all: &[Vec<Vec<(f64, f64)>>], max_text: u32) -> (Vec<String>, u32) {
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
pub(super) fn draw_legend<DB: DrawingBackend>(
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
