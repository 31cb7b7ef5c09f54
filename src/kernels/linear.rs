//! The affine map y = x Wᵀ + b over the last axis as one candle custom op (b one vector,
//! or one per row: a time embedding added in the same pass): b is written
//! into y first and the GEMM accumulates onto it (no broadcast temporary). Gradients:
//! ∂x = ∂y W, ∂W = ∂yᵀ x, ∂b = Σ_rows ∂y — each one GEMM or sum.

use candle_core::{CpuStorage, CustomOp2, CustomOp3, Layout, Result, Shape, Tensor};

use super::gemm::{matmul, View};
use super::{contiguous_f32, threads};

/// Rows of x (all leading axes) and the two widths.
fn sizes(x: &[usize], w: &[usize]) -> Result<(usize, usize, usize)> {
    match (x.split_last(), w) {
        (Some((&d_in, lead)), &[d_out, w_in]) if w_in == d_in => Ok((lead.iter().product(), d_in, d_out)),
        _ => candle_core::bail!("linear: x {x:?} does not fit weight {w:?}"),
    }
}

/// y = x Wᵀ + b (arguments x, W, b).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Linear;

impl CustomOp3 for Linear {
    fn name(&self) -> &'static str {
        "ddimlab-linear"
    }

    fn cpu_fwd(
        &self,
        xs: &CpuStorage,
        xl: &Layout,
        ws: &CpuStorage,
        wl: &Layout,
        bs: &CpuStorage,
        bl: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (rows, d_in, d_out) = sizes(xl.dims(), wl.dims())?;
        let (x, w, b) = (
            contiguous_f32(xs, xl)?,
            contiguous_f32(ws, wl)?,
            contiguous_f32(bs, bl)?,
        );
        // b is [d_out], or [rows, d_out] for a bias per row.
        let per_row = bl.dims().len() == 2;
        if b.len() != if per_row { rows * d_out } else { d_out } {
            candle_core::bail!(
                "linear: bias {:?} does not fit {rows} rows of {d_out} outputs",
                bl.dims()
            )
        }
        let mut y: Vec<f32> = Vec::with_capacity(rows * d_out);
        if per_row {
            y.extend_from_slice(b);
        } else {
            for _ in 0..rows {
                y.extend_from_slice(b);
            }
        }
        matmul(
            &mut y,
            true,
            View::rows(x, rows, d_in),
            View::rows(w, d_out, d_in).t(),
            threads(),
        );
        let mut dims = xl.dims().to_vec();
        *dims.last_mut().expect("rank checked") = d_out;
        Ok((CpuStorage::F32(y), Shape::from(dims)))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        b: &Tensor,
        _y: &Tensor,
        dy: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let dy = dy.contiguous()?;
        let dx = dy.apply_op2_no_bwd(w, &LinearInputGrad)?.reshape(x.shape())?;
        let (d_out, d_in) = w.dims2()?;
        let all = dy.apply_op2_no_bwd(x, &LinearWeightGrad)?;
        let dw = all.narrow(0, 0, d_out * d_in)?.reshape((d_out, d_in))?;
        let db = if b.rank() == 2 {
            dy.reshape(b.shape())?
        } else {
            all.narrow(0, d_out * d_in, d_out)?
        };
        Ok((Some(dx), Some(dw), Some(db)))
    }
}

/// ∂x = ∂y W (arguments ∂y, W), as [rows, d_in].
struct LinearInputGrad;

impl CustomOp2 for LinearInputGrad {
    fn name(&self) -> &'static str {
        "ddimlab-linear-grad-input"
    }

    fn cpu_fwd(&self, ds: &CpuStorage, dl: &Layout, ws: &CpuStorage, wl: &Layout) -> Result<(CpuStorage, Shape)> {
        let (d_out, d_in) = wl.shape().dims2()?;
        let (dy, w) = (contiguous_f32(ds, dl)?, contiguous_f32(ws, wl)?);
        let rows = dy.len() / d_out.max(1);
        let mut dx = vec![0f32; rows * d_in];
        matmul(
            &mut dx,
            false,
            View::rows(dy, rows, d_out),
            View::rows(w, d_out, d_in),
            threads(),
        );
        Ok((CpuStorage::F32(dx), Shape::from((rows, d_in))))
    }
}

/// [∂W = ∂yᵀ x | ∂b = Σ_rows ∂y] flattened (arguments ∂y, x).
struct LinearWeightGrad;

impl CustomOp2 for LinearWeightGrad {
    fn name(&self) -> &'static str {
        "ddimlab-linear-grad-weight"
    }

    fn cpu_fwd(&self, ds: &CpuStorage, dl: &Layout, xs: &CpuStorage, xl: &Layout) -> Result<(CpuStorage, Shape)> {
        let d_out = *dl.dims().last().unwrap_or(&0);
        let d_in = *xl.dims().last().unwrap_or(&0);
        let (dy, x) = (contiguous_f32(ds, dl)?, contiguous_f32(xs, xl)?);
        let rows = dy.len() / d_out.max(1);
        let mut out = vec![0f32; d_out * d_in + d_out];
        let (dw, db) = out.split_at_mut(d_out * d_in);
        matmul(
            dw,
            false,
            View::rows(dy, rows, d_out).t(),
            View::rows(x, rows, d_in),
            threads(),
        );
        for row in dy.chunks(d_out.max(1)) {
            db.iter_mut().zip(row).for_each(|(s, v)| *s += v);
        }
        Ok((CpuStorage::F32(out), Shape::from(d_out * d_in + d_out)))
    }
}
