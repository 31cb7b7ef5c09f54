//! 2-D convolution (NCHW, one group, no dilation) as candle custom ops: im2col per image
//! into a reused thread-local buffer, then one GEMM, y_b = W · col(x_b) + b, written
//! straight into the NCHW output; 1×1 stride-1 convolutions multiply x_b itself.
//!
//! The forward pass of 3 × 3 "same" convolutions on images of 16 columns or more is
//! Winograd's F(2×2, 3×3) instead ([`super::winograd`]: 16 GEMMs over transformed tiles,
//! 2.25× fewer multiplications).
//!
//! The gradients are GEMMs too (no `conv_transpose2d`):
//! ∂x_b = col2im(Wᵀ · ∂y_b), ∂W = Σ_b ∂y_b · col(x_b)ᵀ, ∂b = Σ_{b,h,w} ∂y.

use std::cell::RefCell;

use candle_core::{CpuStorage, CustomOp2, CustomOp3, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use super::gemm::{matmul, View};
use super::winograd::{self, Tiles};
use super::{contiguous_f32, threads};

/// Padding of each side; `pad_end` differs from `pad_begin` for TensorFlow-style `SAME`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Padding {
    /// Rows added above and columns added left.
    pub begin: usize,
    /// Rows added below and columns added right.
    pub end: usize,
}

/// Stride and padding of a convolution (square kernels, same along both axes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConvParams {
    /// Stride along both spatial axes.
    pub stride: usize,
    /// Zero padding along both spatial axes.
    pub padding: Padding,
}

/// Every size of one convolution.
#[derive(Debug, Clone, Copy)]
struct Geometry {
    n: usize,
    cin: usize,
    h: usize,
    w: usize,
    cout: usize,
    kh: usize,
    kw: usize,
    ho: usize,
    wo: usize,
    p: ConvParams,
}

impl Geometry {
    fn new(x: &[usize], w: &[usize], p: ConvParams) -> Result<Self> {
        let (&[n, cin, h, wd], &[cout, wcin, kh, kw]) = (x, w) else {
            candle_core::bail!("conv2d: x must be [n, c, h, w] and the weight [cout, cin, kh, kw], got {x:?} and {w:?}")
        };
        let (hp, wp) = (
            h + p.padding.begin + p.padding.end,
            wd + p.padding.begin + p.padding.end,
        );
        if wcin != cin || p.stride == 0 || kh > hp || kw > wp {
            candle_core::bail!("conv2d: input {x:?} does not fit weight {w:?} with {p:?}")
        }
        Ok(Self {
            n,
            cin,
            h,
            w: wd,
            cout,
            kh,
            kw,
            ho: (hp - kh) / p.stride + 1,
            wo: (wp - kw) / p.stride + 1,
            p,
        })
    }

    /// Rows of the im2col matrix: cin · kh · kw.
    fn k(&self) -> usize {
        self.cin * self.kh * self.kw
    }
    fn out_hw(&self) -> usize {
        self.ho * self.wo
    }
    fn in_len(&self) -> usize {
        self.cin * self.h * self.w
    }
    fn out_len(&self) -> usize {
        self.cout * self.out_hw()
    }
    /// A 3 × 3, stride-1 convolution with one row and column of zeros on every side, on
    /// even sizes of at least [`WINOGRAD_MIN_WIDTH`] columns and with at least
    /// [`WINOGRAD_MIN_CHANNELS`] inputs: its forward pass is Winograd's F(2×2, 3×3)
    /// ([`winograd`]).
    fn winograd(&self) -> bool {
        let same = Padding { begin: 1, end: 1 };
        self.kh == 3
            && self.kw == 3
            && self.p.stride == 1
            && self.p.padding == same
            && self.h.is_multiple_of(2)
            && self.w.is_multiple_of(2)
            && self.cin >= WINOGRAD_MIN_CHANNELS
            && self.w >= WINOGRAD_MIN_WIDTH
    }

    /// A 1×1, stride-1, unpadded convolution: col(x_b) is x_b itself.
    fn pointwise(&self) -> bool {
        self.kh == 1 && self.kw == 1 && self.p.stride == 1 && self.p.padding == Padding { begin: 0, end: 0 }
    }

    /// For kernel offset `k` along an axis of input length `len`: the output positions
    /// whose input index `o · stride + k − begin` lies inside, and that index's first value.
    fn valid(&self, k: usize, len: usize, out: usize) -> (usize, usize) {
        let (s, b) = (self.p.stride, self.p.padding.begin);
        // first o with o·s + k ≥ b; last o with o·s + k − b ≤ len − 1
        let first = if k >= b { 0 } else { (b - k).div_ceil(s) };
        let end = if len + b > k {
            ((len + b - 1 - k) / s + 1).min(out)
        } else {
            0
        };
        (first, end.max(first))
    }

    /// col(x_b): row (c, ky, kx), column (oy, ox) holds x_b[c, oy·s + ky − pb, ox·s + kx − pb]
    /// or 0; rows `ld` apart in `col` (several images side by side share one matrix).
    fn im2col(&self, x: &[f32], col: &mut [f32], ld: usize) {
        if self.same_size() {
            return self.im2col_shifted(x, col, ld);
        }
        let (ohw, s, b) = (self.out_hw(), self.p.stride, self.p.padding.begin);
        for c in 0..self.cin {
            let plane = &x[c * self.h * self.w..(c + 1) * self.h * self.w];
            for ky in 0..self.kh {
                let (oy0, oy1) = self.valid(ky, self.h, self.ho);
                for kx in 0..self.kw {
                    let (ox0, ox1) = self.valid(kx, self.w, self.wo);
                    let row = &mut col[((c * self.kh + ky) * self.kw + kx) * ld..][..ohw];
                    row[..oy0 * self.wo].fill(0.0);
                    row[oy1 * self.wo..].fill(0.0);
                    for oy in oy0..oy1 {
                        let src = &plane[(oy * s + ky - b) * self.w..][..self.w];
                        let dst = &mut row[oy * self.wo..][..self.wo];
                        // Element loops, not memset/memcpy calls: rows are often 4–32 values.
                        dst[..ox0].iter_mut().for_each(|d| *d = 0.0);
                        dst[ox1..].iter_mut().for_each(|d| *d = 0.0);
                        if s == 1 {
                            let start = ox0 + kx - b;
                            let src = &src[start..start + ox1 - ox0];
                            dst[ox0..ox1].iter_mut().zip(src).for_each(|(d, v)| *d = *v);
                        } else {
                            for (ox, d) in dst.iter_mut().enumerate().take(ox1).skip(ox0) {
                                *d = src[ox * s + kx - b];
                            }
                        }
                    }
                }
            }
        }
    }

    /// Stride 1 with the output as large as the input ("same" padding): every row of col
    /// is the whole plane shifted by (ky − pb)·w + (kx − pb).
    fn same_size(&self) -> bool {
        self.p.stride == 1 && self.ho == self.h && self.wo == self.w
    }

    /// Rows and columns of the zero-padded plane of a channel: (h + pb + pe, w + pb + pe).
    fn padded_size(&self) -> (usize, usize) {
        let pad = self.p.padding.begin + self.p.padding.end;
        (self.h + pad, self.w + pad)
    }

    /// [`Self::im2col`] for same-size convolutions. Channel by channel, the image is copied
    /// into a zero-padded plane, (h + pb + pe) × (w + pb + pe), and row (c, ky, kx) of col is
    /// then h runs of w values of that plane, starting at (ky, kx): no zero fills and no
    /// wrap-around columns to clear (perf: the many short `memset`/`memmove` calls of the
    /// previous per-row fills were 13 % of the digits U-Net's evaluation).
    fn im2col_shifted(&self, x: &[f32], col: &mut [f32], ld: usize) {
        match self.w {
            4 => self.im2col_width::<4>(x, col, ld),
            8 => self.im2col_width::<8>(x, col, ld),
            16 => self.im2col_width::<16>(x, col, ld),
            32 => self.im2col_width::<32>(x, col, ld),
            _ => self.im2col_width::<0>(x, col, ld),
        }
    }

    /// The width as a constant `W` (0: known only at run time).
    fn width<const W: usize>(&self) -> usize {
        if W == 0 {
            self.w
        } else {
            W
        }
    }

    /// [`Self::im2col_shifted`] for images of width `W` ([`Self::width`]): the usual widths
    /// (4, 8, 16, 32) are compiled each on their own, so that every run is a few vector
    /// moves inside the loops over a channel (perf: a function call per row of col, 9 per
    /// channel, was 15 % of the digits U-Net's evaluation at 8×8 and 4×4).
    fn im2col_width<const W: usize>(&self, x: &[f32], col: &mut [f32], ld: usize) {
        let (h, w, b, taps) = (self.h, self.width::<W>(), self.p.padding.begin, self.kh * self.kw);
        let (ph, pw) = self.padded_size();
        PADDED.with_borrow_mut(|plane| {
            // The border stays 0; every channel overwrites the inside.
            plane.clear();
            plane.resize(ph * pw, 0.0);
            let p = plane.as_mut_slice();
            for (c, img) in x.chunks_exact(h * w).enumerate() {
                for (y, src) in img.chunks_exact(w).enumerate() {
                    run::<W>(&mut p[(y + b) * pw + b..], src, w, |d, s| *d = s);
                }
                for t in 0..taps {
                    let (ky, kx) = (t / self.kw, t % self.kw);
                    let row = &mut col[(c * taps + t) * ld..][..h * w];
                    for (y, dst) in row.chunks_exact_mut(w).enumerate() {
                        run::<W>(dst, &p[(y + ky) * pw + kx..], w, |d, s| *d = s);
                    }
                }
            }
        });
    }

    /// The adjoint of [`Self::im2col`]: dx_b = col2im(dcol), rows `ld` apart in `col`.
    fn col2im(&self, col: &[f32], ld: usize, dx: &mut [f32]) {
        if self.same_size() {
            return self.col2im_shifted(col, ld, dx); // writes every value of dx
        }
        dx.fill(0.0);
        let (ohw, s, b) = (self.out_hw(), self.p.stride, self.p.padding.begin);
        for c in 0..self.cin {
            let plane = &mut dx[c * self.h * self.w..(c + 1) * self.h * self.w];
            for ky in 0..self.kh {
                let (oy0, oy1) = self.valid(ky, self.h, self.ho);
                for kx in 0..self.kw {
                    let (ox0, ox1) = self.valid(kx, self.w, self.wo);
                    let row = &col[((c * self.kh + ky) * self.kw + kx) * ld..][..ohw];
                    for oy in oy0..oy1 {
                        let dst = &mut plane[(oy * s + ky - b) * self.w..][..self.w];
                        let src = &row[oy * self.wo..][..self.wo];
                        for ox in ox0..ox1 {
                            dst[ox * s + kx - b] += src[ox];
                        }
                    }
                }
            }
        }
    }

    /// [`Self::col2im`] for same-size convolutions, the adjoint of [`Self::im2col_shifted`]:
    /// every row of col is added as h runs of w values into a zero-padded plane at (ky, kx),
    /// and the plane's inside is the channel of dx.
    fn col2im_shifted(&self, col: &[f32], ld: usize, dx: &mut [f32]) {
        match self.w {
            4 => self.col2im_width::<4>(col, ld, dx),
            8 => self.col2im_width::<8>(col, ld, dx),
            16 => self.col2im_width::<16>(col, ld, dx),
            32 => self.col2im_width::<32>(col, ld, dx),
            _ => self.col2im_width::<0>(col, ld, dx),
        }
    }

    /// [`Self::col2im_shifted`] for images of width `W` ([`Self::width`]), compiled for each
    /// usual width as [`Self::im2col_width`] is.
    fn col2im_width<const W: usize>(&self, col: &[f32], ld: usize, dx: &mut [f32]) {
        let (h, w, b, taps) = (self.h, self.width::<W>(), self.p.padding.begin, self.kh * self.kw);
        let (ph, pw) = self.padded_size();
        PADDED.with_borrow_mut(|plane| {
            plane.resize(ph * pw, 0.0);
            let p = plane.as_mut_slice();
            for (c, out) in dx.chunks_exact_mut(h * w).enumerate() {
                p.fill(0.0);
                for t in 0..taps {
                    let (ky, kx) = (t / self.kw, t % self.kw);
                    let row = &col[(c * taps + t) * ld..][..h * w];
                    for (y, src) in row.chunks_exact(w).enumerate() {
                        run::<W>(&mut p[(y + ky) * pw + kx..], src, w, |d, s| *d += s);
                    }
                }
                for (y, dst) in out.chunks_exact_mut(w).enumerate() {
                    run::<W>(dst, &p[(y + b) * pw + b..], w, |d, s| *d = s);
                }
            }
        });
    }
}

thread_local! {
    /// The im2col scratch of this thread, grown to the largest convolution and reused.
    static SCRATCH: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
    /// The zero-padded plane of a channel of the same-size im2col and col2im, reused.
    static PADDED: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

/// `op(d, s)` over the first `w` values of `dst` and `src`, with `w` = `W` known at compile
/// time when `W` > 0: both runs are loaded before the result is stored, so that the compiler
/// need not fear that `dst` overlaps `src` and moves whole vectors (perf: element by element
/// otherwise).
#[inline(always)]
fn run<const W: usize>(dst: &mut [f32], src: &[f32], w: usize, op: impl Fn(&mut f32, f32)) {
    if W > 0 {
        let s: [f32; W] = src[..W].try_into().expect("a run of W values");
        let mut d: [f32; W] = dst[..W].try_into().expect("a run of W values");
        d.iter_mut().zip(s).for_each(|(d, s)| op(d, s));
        dst[..W].copy_from_slice(&d);
    } else {
        dst[..w].iter_mut().zip(&src[..w]).for_each(|(d, s)| op(d, *s));
    }
}

/// Runs `f` with this thread's scratch buffer of at least `len` elements (shared with
/// [`winograd`]'s transformed tiles).
pub(super) fn with_scratch<R>(len: usize, f: impl FnOnce(&mut [f32]) -> R) -> R {
    SCRATCH.with(|s| {
        let mut s = s.borrow_mut();
        if s.len() < len {
            s.resize(len, 0.0);
        }
        f(&mut s[..len])
    })
}

/// Input channels from which a 3 × 3 convolution goes through [`winograd`].
const WINOGRAD_MIN_CHANNELS: usize = 8;

/// Image width from which a 3 × 3 convolution goes through [`winograd`] (a row of 8 tiles).
/// Measured, alternating runs: the CIFAR-10 U-Net at batch 8 took 218–240 ms per
/// evaluation with 16, 221–242 with 8, 237–245 with 32 and 228–262 with 4, against 303–318
/// ms without Winograd; the digits U-Net (8 × 8 and 4 × 4, 32–64 channels) 120–138 ms with
/// it against 82–97 without: there the transforms cost more than the products save.
const WINOGRAD_MIN_WIDTH: usize = 16;

/// Columns of one GEMM at least (several small images share it).
///
/// Measured on the digits U-Net at batch 500 (8×8 and 4×4, 32–128 channels), one thread,
/// alternating runs: 64 columns took 348–367 ms per evaluation against 381–436 ms for 256.
/// The im2col matrix of 64 columns (k × 64, 73–295 KB) stays in the core's L2 cache between
/// its writing and the GEMM's reading; at 8×8, one image is one GEMM, written straight into
/// the output without the gather and scatter of several images.
const GEMM_COLUMNS: usize = 64;

/// Images that share one GEMM: at least [`GEMM_COLUMNS`] columns, but no more than one
/// thread's share of the batch.
fn images_per_gemm(n: usize, out_hw: usize) -> usize {
    GEMM_COLUMNS.div_ceil(out_hw.max(1)).min(n.div_ceil(threads())).max(1)
}

/// Runs `f(first image, its inputs, its outputs, GEMM threads)` for chunks of `nb` images:
/// chunks spread over the threads when there are enough of them (each GEMM then
/// single-threaded), otherwise one after another with every thread inside each GEMM.
fn per_chunk<F>(nb: usize, input: (&[f32], usize), out: (&mut [f32], usize), f: F)
where
    F: Fn(usize, &[f32], &mut [f32], usize) + Sync,
{
    let (t, (input, in_len), (out, out_len)) = (threads(), input, out);
    if input.len() / in_len.max(1) >= nb * t && t > 1 {
        out.par_chunks_mut(nb * out_len)
            .zip(input.par_chunks(nb * in_len))
            .enumerate()
            .for_each(|(c, (o, i))| f(c * nb, i, o, 1));
    } else {
        out.chunks_mut(nb * out_len)
            .zip(input.chunks(nb * in_len))
            .enumerate()
            .for_each(|(c, (o, i))| f(c * nb, i, o, t));
    }
}

impl Geometry {
    /// col of `nb` images side by side: [k, nb · out_hw] (`x` holds the images).
    fn im2col_chunk(&self, x: &[f32], col: &mut [f32]) {
        let ld = x.len() / self.in_len() * self.out_hw();
        for (i, xb) in x.chunks(self.in_len()).enumerate() {
            self.im2col(xb, &mut col[i * self.out_hw()..], ld);
        }
    }

    /// The GEMM operand col(x) of a chunk of images, [k, nb · out_hw]: x itself for one
    /// image of a pointwise convolution, otherwise built in `col`.
    fn col_matrix<'a>(&self, xc: &'a [f32], col: &'a mut [f32]) -> View<'a> {
        let nb = xc.len() / self.in_len();
        if nb == 1 && self.pointwise() {
            return View::rows(xc, self.k(), self.out_hw());
        }
        self.im2col_chunk(xc, col);
        View::rows(col, self.k(), nb * self.out_hw())
    }

    /// ∂y of a chunk of images as one [cout, nb · out_hw] matrix: ∂y itself for one image,
    /// otherwise gathered into `tmp`.
    fn dy_matrix<'a>(&self, dyc: &'a [f32], tmp: &'a mut [f32]) -> View<'a> {
        let nb = dyc.len() / self.out_len();
        if nb == 1 {
            return View::rows(dyc, self.cout, self.out_hw());
        }
        self.gather(dyc, tmp);
        View::rows(tmp, self.cout, nb * self.out_hw())
    }

    /// Output-shaped NCHW data of several images ([nb, cout, hw]) as one [cout, nb · hw] matrix.
    fn gather(&self, nchw: &[f32], mat: &mut [f32]) {
        let (hw, nb) = (self.out_hw(), nchw.len() / self.out_len());
        for (i, img) in nchw.chunks(self.out_len()).enumerate() {
            for (c, plane) in img.chunks(hw).enumerate() {
                mat[(c * nb + i) * hw..][..hw].copy_from_slice(plane);
            }
        }
    }

    /// The inverse of [`Self::gather`].
    fn scatter(&self, mat: &[f32], nchw: &mut [f32]) {
        let (hw, nb) = (self.out_hw(), nchw.len() / self.out_len());
        for (i, img) in nchw.chunks_mut(self.out_len()).enumerate() {
            for (c, plane) in img.chunks_mut(hw).enumerate() {
                plane.copy_from_slice(&mat[(c * nb + i) * hw..][..hw]);
            }
        }
    }
}

/// The forward convolution `y = conv(x, W) + b` (arguments x, W, b).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Conv2d(pub ConvParams);

impl CustomOp3 for Conv2d {
    fn name(&self) -> &'static str {
        "ddimlab-conv2d"
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
        let g = Geometry::new(xl.dims(), wl.dims(), self.0)?;
        let (x, w, bias) = (
            contiguous_f32(xs, xl)?,
            contiguous_f32(ws, wl)?,
            contiguous_f32(bs, bl)?,
        );
        // b is [cout], or [n, cout] for a bias per image (e.g. a time embedding).
        let per_image = bl.dims().len() == 2;
        if bias.len() != if per_image { g.n * g.cout } else { g.cout } {
            candle_core::bail!(
                "conv2d: bias {:?} does not fit {} images of {} channels",
                bl.dims(),
                g.n,
                g.cout
            )
        }
        let bias_of = |img: usize, c: usize| if per_image { bias[img * g.cout + c] } else { bias[c] };
        let mut y = vec![0f32; g.n * g.out_len()];
        if g.winograd() {
            let u = winograd::transform_kernels(w, g.cout, g.cin);
            let s = Tiles {
                cin: g.cin,
                cout: g.cout,
                h: g.h,
                w: g.w,
            };
            let nb = images_per_gemm(g.n, s.per_image());
            per_chunk(nb, (x, g.in_len()), (&mut y, g.out_len()), |i0, xc, yc, t| {
                winograd::forward_chunk(s, xc, &u, yc, |i, c| bias_of(i0 + i, c), t)
            });
            return Ok((CpuStorage::F32(y), Shape::from((g.n, g.cout, g.ho, g.wo))));
        }
        let (wv, hw, k) = (View::rows(w, g.cout, g.k()), g.out_hw(), g.k());
        let nb = images_per_gemm(g.n, hw);
        per_chunk(nb, (x, g.in_len()), (&mut y, g.out_len()), |i0, xc, yc, t| {
            let nb = xc.len() / g.in_len();
            with_scratch(k * nb * hw + g.cout * nb * hw, |buf| {
                let (col, tmp) = buf.split_at_mut(k * nb * hw);
                let colv = g.col_matrix(xc, col);
                if nb == 1 {
                    fill_bias(yc, hw, 1, |_, c| bias_of(i0, c));
                    matmul(yc, true, wv, colv, t);
                } else {
                    fill_bias(tmp, hw, nb, |j, c| bias_of(i0 + j, c));
                    matmul(tmp, true, wv, colv, t);
                    g.scatter(tmp, yc);
                }
            });
        });
        Ok((CpuStorage::F32(y), Shape::from((g.n, g.cout, g.ho, g.wo))))
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
        let (h, wd) = (x.dim(2)?, x.dim(3)?);
        let dx = dy.apply_op2_no_bwd(w, &ConvInputGrad { p: self.0, h, w: wd })?;
        let cout = w.dim(0)?;
        let k = w.elem_count() / cout.max(1);
        let dwb = dy.apply_op2_no_bwd(
            x,
            &ConvWeightGrad {
                p: self.0,
                kh: w.dim(2)?,
                kw: w.dim(3)?,
            },
        )?;
        let dw = dwb.narrow(0, 0, cout * k)?.reshape(w.shape())?;
        let db = if b.rank() == 2 {
            dy.sum(3)?.sum(2)?
        } else {
            dwb.narrow(0, cout * k, cout)?
        };
        Ok((Some(dx), Some(dw), Some(db)))
    }
}

/// A [cout, nb · hw] matrix whose segment (c, image j) is `bias(j, c)`.
fn fill_bias(mat: &mut [f32], hw: usize, nb: usize, bias: impl Fn(usize, usize) -> f32) {
    for (i, seg) in mat.chunks_mut(hw).enumerate() {
        seg.fill(bias(i % nb, i / nb));
    }
}

/// ∂x from ∂y and W: per chunk of images col2im(Wᵀ · ∂y). Arguments ∂y, W.
#[derive(Debug, Clone, Copy)]
struct ConvInputGrad {
    p: ConvParams,
    h: usize,
    w: usize,
}

impl CustomOp2 for ConvInputGrad {
    fn name(&self) -> &'static str {
        "ddimlab-conv2d-grad-input"
    }

    fn cpu_fwd(&self, ds: &CpuStorage, dl: &Layout, ws: &CpuStorage, wl: &Layout) -> Result<(CpuStorage, Shape)> {
        let (&[n, _, _, _], &[_, cin, _, _]) = (dl.dims(), wl.dims()) else {
            candle_core::bail!("conv2d grad: bad ranks {:?} {:?}", dl.dims(), wl.dims())
        };
        let g = Geometry::new(&[n, cin, self.h, self.w], wl.dims(), self.p)?;
        let (dy, w) = (contiguous_f32(ds, dl)?, contiguous_f32(ws, wl)?);
        let mut dx = vec![0f32; n * g.in_len()];
        let (wt, hw, k) = (View::rows(w, g.cout, g.k()).t(), g.out_hw(), g.k());
        let nb = images_per_gemm(n, hw);
        per_chunk(nb, (dy, g.out_len()), (&mut dx, g.in_len()), |_, dyc, dxc, t| {
            let nb = dyc.len() / g.out_len();
            if nb == 1 && g.pointwise() {
                return matmul(dxc, false, wt, View::rows(dyc, g.cout, hw), t);
            }
            with_scratch(k * nb * hw + g.cout * nb * hw, |buf| {
                let (col, tmp) = buf.split_at_mut(k * nb * hw);
                matmul(col, false, wt, g.dy_matrix(dyc, tmp), t);
                for (i, dxb) in dxc.chunks_mut(g.in_len()).enumerate() {
                    g.col2im(&col[i * hw..], nb * hw, dxb);
                }
            });
        });
        Ok((CpuStorage::F32(dx), Shape::from((n, cin, self.h, self.w))))
    }
}

/// ∂W and ∂b from ∂y and x, flattened as [∂W (cout·k) | ∂b (cout)]. Arguments ∂y, x.
#[derive(Debug, Clone, Copy)]
struct ConvWeightGrad {
    p: ConvParams,
    kh: usize,
    kw: usize,
}

impl CustomOp2 for ConvWeightGrad {
    fn name(&self) -> &'static str {
        "ddimlab-conv2d-grad-weight"
    }

    fn cpu_fwd(&self, ds: &CpuStorage, dl: &Layout, xs: &CpuStorage, xl: &Layout) -> Result<(CpuStorage, Shape)> {
        let (&[_, cout, _, _], &[_, cin, _, _]) = (dl.dims(), xl.dims()) else {
            candle_core::bail!("conv2d grad: bad ranks {:?} {:?}", dl.dims(), xl.dims())
        };
        let g = Geometry::new(xl.dims(), &[cout, cin, self.kh, self.kw], self.p)?;
        let (dy, x) = (contiguous_f32(ds, dl)?, contiguous_f32(xs, xl)?);
        let (len, hw, k) = (cout * g.k() + cout, g.out_hw(), g.k());
        // One partial sum per thread's share of the images, added at the end.
        let t = threads();
        let share = g.n.div_ceil(t.max(1)).max(1);
        let inner = if g.n >= t { 1 } else { t };
        let nb = images_per_gemm(g.n, hw);
        let partials: Vec<Vec<f32>> = (0..g.n.div_ceil(share))
            .into_par_iter()
            .map(|c| {
                let mut acc = vec![0f32; len];
                let (dw, db) = acc.split_at_mut(cout * k);
                let images = c * share..((c + 1) * share).min(g.n);
                let dys = &dy[images.start * g.out_len()..images.end * g.out_len()];
                let xs = &x[images.start * g.in_len()..images.end * g.in_len()];
                for (dyc, xc) in dys.chunks(nb * g.out_len()).zip(xs.chunks(nb * g.in_len())) {
                    let nb = xc.len() / g.in_len();
                    with_scratch(k * nb * hw + cout * nb * hw, |buf| {
                        let (col, tmp) = buf.split_at_mut(k * nb * hw);
                        let dyv = g.dy_matrix(dyc, tmp);
                        matmul(dw, true, dyv, g.col_matrix(xc, col).t(), inner);
                        for (d, row) in db.iter_mut().zip(dyv.data[..cout * nb * hw].chunks(nb * hw)) {
                            *d += row.iter().sum::<f32>();
                        }
                    });
                }
                acc
            })
            .collect();
        let mut out = vec![0f32; len];
        for p in &partials {
            out.iter_mut().zip(p).for_each(|(o, v)| *o += v);
        }
        Ok((CpuStorage::F32(out), Shape::from(len)))
    }
}
