//! The image grid: images scaled up as nearest-neighbour blocks, with row and column labels.

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::DrawResult;
use super::*;

/// An image grid with its layout worked out.
pub(super) struct ImageGrid<'a> {
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
    pub(super) fn new(
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
pub(super) fn pixel(image: &[f32], channels: usize, plane: usize, k: usize) -> RGBColor {
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
