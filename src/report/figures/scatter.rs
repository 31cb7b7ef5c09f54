//! Scatter panels: 2-D samples over the reference data, one panel per point.

use std::ops::Range;

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::axis::{extent, padded, Axis, Ticks};
use super::DrawResult;
use super::*;

/// Scatter panels with their shared axis range.
pub(super) struct ScatterPanels<'a> {
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
    pub(super) fn new(
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
