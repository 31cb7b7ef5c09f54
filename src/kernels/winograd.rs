//! Winograd's minimal filtering F(2×2, 3×3) (Lavin & Gray 2016, *Fast Algorithms for
//! Convolutional Neural Networks*, §4) for the forward pass of 3 × 3, stride-1 convolutions
//! with one row and column of zero padding on every side (the U-Nets' "same" convolutions).
//!
//! Each 2 × 2 block of outputs of channel o is
//!
//!   Y = Aᵀ [ Σ_c (G g_oc Gᵀ) ⊙ (Bᵀ d_c B) ] A,
//!
//! with g_oc the 3 × 3 kernel from input channel c and d_c the 4 × 4 input patch whose
//! inner 2 × 2 lies under the block (one patch per "tile"). For each of the 16 entries p of
//! the 4 × 4 transforms, the sum over c is one GEMM, M_p [cout × tiles] = U_p [cout × cin] ·
//! V_p [cin × tiles]: 16 products per output block and channel pair where im2col needs
//! 4 · 9 = 36, at the cost of the transforms of the inputs (Bᵀ d B) and outputs (Aᵀ M A),
//! which are additions. The kernel transform U = G g Gᵀ is made once per call.
//!
//!   Bᵀ = [1 0 −1 0; 0 1 1 0; 0 −1 1 0; 0 1 0 −1],  G = [1 0 0; ½ ½ ½; ½ −½ ½; 0 0 1],
//!   Aᵀ = [1 1 1 0; 0 1 −1 −1]
//!
//! (the 1-D identities, e.g. y_0 = m_0 + m_1 + m_2 = g_0 d_0 + g_1 d_1 + g_2 d_2, are checked
//! by hand in the tests). The gradients stay im2col GEMMs (`conv.rs`): the forward values
//! agree with the im2col product to f32 round-off, not bit for bit.

use std::cell::RefCell;

use rayon::prelude::*;

use super::conv::with_scratch;
use super::gemm::{matmul, View};

/// Entries of a 4 × 4 transform.
const P: usize = 16;

/// Bᵀ applied to a column (d_0, d_1, d_2, d_3) of a patch.
#[inline(always)]
fn bt(d: [f32; 4]) -> [f32; 4] {
    [d[0] - d[2], d[1] + d[2], d[2] - d[1], d[1] - d[3]]
}

/// G applied to a column (g_0, g_1, g_2) of a kernel (the tests' two-stage form of
/// [`transform_kernels`]).
#[cfg(test)]
fn g(k: [f32; 3]) -> [f32; 4] {
    [k[0], 0.5 * (k[0] + k[1] + k[2]), 0.5 * (k[0] - k[1] + k[2]), k[2]]
}

/// Aᵀ applied to a column (m_0, m_1, m_2, m_3) of a transformed product.
#[inline(always)]
fn at(m: [f32; 4]) -> [f32; 2] {
    [m[0] + m[1] + m[2], m[1] - m[2] - m[3]]
}

/// Kernels transformed together by [`transform_kernels`] (their values stay in L1).
const KERNEL_BLOCK: usize = 128;

/// U = G g Gᵀ of every kernel of `w` ([cout, cin, 3, 3]), laid out [16][cout][cin]. Blocks
/// of [`KERNEL_BLOCK`] kernels in parallel; inside a block the nine taps are gathered into
/// planes so that both stages (t = G g, then u = t Gᵀ) run along a block of kernels.
pub(super) fn transform_kernels(w: &[f32], cout: usize, cin: usize) -> Vec<f32> {
    let n = cout * cin;
    let mut u = vec![0f32; P * n];
    // Task b owns the runs [b · KERNEL_BLOCK ..] of the 16 entries' planes.
    let mut planes: Vec<_> = u.chunks_mut(n.max(1)).map(|p| p.chunks_mut(KERNEL_BLOCK)).collect();
    let tasks: Vec<[&mut [f32]; P]> = (0..n.div_ceil(KERNEL_BLOCK))
        .map(|_| std::array::from_fn(|p| planes[p].next().expect("one run per block")))
        .collect();
    tasks
        .into_par_iter()
        .zip(w.par_chunks(9 * KERNEL_BLOCK))
        .for_each(|(out, k)| {
            let len = k.len() / 9;
            // taps[a][b][i] = g_ab of kernel i of the block
            let mut taps = [[[0f32; KERNEL_BLOCK]; 3]; 3];
            for (i, ki) in k.chunks_exact(9).enumerate() {
                for (ab, v) in ki.iter().enumerate() {
                    taps[ab / 3][ab % 3][i] = *v;
                }
            }
            // t[r][b] = (G g)_rb, then u[r][c] = (t Gᵀ)_rc, each along the block.
            let t: [[[f32; KERNEL_BLOCK]; 3]; 4] =
                std::array::from_fn(|r| std::array::from_fn(|b| g_row(r, |a| &taps[a][b])));
            for r in 0..4 {
                for c in 0..4 {
                    out[4 * r + c][..len].copy_from_slice(&g_row(c, |b| &t[r][b])[..len]);
                }
            }
        });
    u
}

/// Row `r` of G applied along a block: Σ_a G_ra x_a, with x_a = `x(a)`.
#[inline(always)]
fn g_row<'a>(r: usize, x: impl Fn(usize) -> &'a [f32; KERNEL_BLOCK]) -> [f32; KERNEL_BLOCK] {
    let (x0, x1, x2) = (x(0), x(1), x(2));
    match r {
        0 => *x0,
        1 => std::array::from_fn(|i| 0.5 * (x0[i] + x1[i] + x2[i])),
        2 => std::array::from_fn(|i| 0.5 * (x0[i] - x1[i] + x2[i])),
        _ => *x2,
    }
}

/// The sizes of one chunk of images.
#[derive(Clone, Copy)]
pub(super) struct Tiles {
    /// Input channels.
    pub cin: usize,
    /// Output channels.
    pub cout: usize,
    /// Image rows and columns (both even).
    pub h: usize,
    pub w: usize,
}

impl Tiles {
    /// Tiles (2 × 2 output blocks) of one image.
    pub fn per_image(&self) -> usize {
        (self.h / 2) * (self.w / 2)
    }

    /// Scratch values for `nb` images: V [cin][16][tiles] and M [16][cout][tiles].
    fn scratch(&self, nb: usize) -> (usize, usize) {
        let t = nb * self.per_image();
        (self.cin * P * t, P * self.cout * t)
    }
}

/// y = conv(x, W) + b for a chunk of images (`x`: [nb, cin, h, w], `y`: [nb, cout, h, w]),
/// with `u` from [`transform_kernels`], `bias(image of the chunk, channel)`, and `threads`
/// for the GEMMs and transforms (1 when the chunks themselves run in parallel).
pub(super) fn forward_chunk(
    s: Tiles,
    x: &[f32],
    u: &[f32],
    y: &mut [f32],
    bias: impl Fn(usize, usize) -> f32 + Sync,
    threads: usize,
) {
    let nb = x.len() / (s.cin * s.h * s.w);
    let tiles = nb * s.per_image();
    let (v_len, m_len) = s.scratch(nb);
    with_scratch(v_len + m_len, |buf| {
        let (v, m) = buf.split_at_mut(v_len);
        // 1. V = Bᵀ d B for every channel and tile, channel by channel.
        let input = |(c, vc): (usize, &mut [f32])| {
            for i in 0..nb {
                let plane = &x[(i * s.cin + c) * s.h * s.w..][..s.h * s.w];
                transform_input(s, plane, vc, i * s.per_image(), tiles);
            }
        };
        if threads > 1 {
            v.par_chunks_mut(P * tiles).enumerate().for_each(input);
        } else {
            v.chunks_mut(P * tiles).enumerate().for_each(input);
        }
        // 2. M_p = U_p · V_p, one GEMM per entry p of the transform.
        for p in 0..P {
            let up = View::rows(&u[p * s.cout * s.cin..][..s.cout * s.cin], s.cout, s.cin);
            let vp = View {
                data: &v[p * tiles..],
                rows: s.cin,
                cols: tiles,
                rs: P * tiles,
                cs: 1,
            };
            matmul(&mut m[p * s.cout * tiles..][..s.cout * tiles], false, up, vp, threads);
        }
        // 3. Y = Aᵀ M A + b, written into the NCHW output.
        let out = &*m;
        let output = |(ic, yc): (usize, &mut [f32])| {
            let (i, c) = (ic / s.cout, ic % s.cout);
            transform_output(s, out, c, i * s.per_image(), tiles, bias(i, c), yc);
        };
        if threads > 1 {
            y.par_chunks_mut(s.h * s.w).enumerate().for_each(output);
        } else {
            y.chunks_mut(s.h * s.w).enumerate().for_each(output);
        }
    });
}

thread_local! {
    /// One channel's plane with its border of zeros, split into even and odd columns.
    static PADDED: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

/// Tiles of one row transformed together (the vector loops' length).
const BLOCK: usize = 16;

/// Bᵀ d B of every tile of one channel's `plane` (h × w) into `vc` ([16][tiles] of this
/// channel), the image's tiles from `first` on. The plane, bordered by zeros, is split into
/// its even and odd columns, so that column j of the tiles of a row is a contiguous run
/// (j = 0, 1, 2, 3: even, odd, even shifted by one, odd shifted by one) and both stages
/// run along a row of tiles.
fn transform_input(s: Tiles, plane: &[f32], vc: &mut [f32], first: usize, tiles: usize) {
    let (th, tw) = (s.h / 2, s.w / 2);
    let half = tw + 1;
    PADDED.with_borrow_mut(|buf| {
        buf.clear();
        buf.resize(2 * (s.h + 2) * half, 0.0);
        let (even, odd) = buf.split_at_mut((s.h + 2) * half);
        // padded column 2q + 1 is column 2q of the plane, 2q (q ≥ 1) its column 2q − 1
        for (r, src) in plane.chunks_exact(s.w).enumerate() {
            let (e, o) = (&mut even[(r + 1) * half..][..half], &mut odd[(r + 1) * half..][..half]);
            for (q, pair) in src.chunks_exact(2).enumerate() {
                o[q] = pair[0];
                e[q + 1] = pair[1];
            }
        }
        let columns = [(&*even, 0), (&*odd, 0), (&*even, 1), (&*odd, 1)];
        for ty in 0..th {
            let outs = split_entries(vc, tiles, first + ty * tw, tw);
            for x0 in (0..tw).step_by(BLOCK) {
                let n = BLOCK.min(tw - x0);
                // v[j][i] = (Bᵀ column j)_i along the block
                let mut v = [[[0f32; BLOCK]; 4]; 4];
                for (vj, &(plane, shift)) in v.iter_mut().zip(&columns) {
                    let row = |r: usize| &plane[(2 * ty + r) * half + x0 + shift..][..n];
                    let rows = [row(0), row(1), row(2), row(3)];
                    for l in 0..n {
                        let t = bt([rows[0][l], rows[1][l], rows[2][l], rows[3][l]]);
                        (0..4).for_each(|i| vj[i][l] = t[i]);
                    }
                }
                for i in 0..4 {
                    for l in 0..n {
                        let t = bt([v[0][i][l], v[1][i][l], v[2][i][l], v[3][i][l]]);
                        (0..4).for_each(|j| outs[4 * i + j][x0 + l] = t[j]);
                    }
                }
            }
        }
    });
}

/// Aᵀ M A + `b` of every tile of output channel `c` of one image (tiles from `first` on)
/// into its plane `yc` (h × w), along rows of tiles as [`transform_input`].
fn transform_output(s: Tiles, m: &[f32], c: usize, first: usize, tiles: usize, b: f32, yc: &mut [f32]) {
    let (tw, stride) = (s.w / 2, s.cout * tiles);
    let base = c * tiles + first;
    for (ty, rows) in yc.chunks_exact_mut(2 * s.w).enumerate() {
        let t0 = base + ty * tw;
        let e: [&[f32]; P] = std::array::from_fn(|p| &m[p * stride + t0..][..tw]);
        let (top, bottom) = rows.split_at_mut(s.w);
        for x0 in (0..tw).step_by(BLOCK) {
            let n = BLOCK.min(tw - x0);
            // Aᵀ on the columns (cols[j][i] along the block), then on the rows.
            let mut cols = [[[0f32; BLOCK]; 2]; 4];
            for (j, cj) in cols.iter_mut().enumerate() {
                for l in 0..n {
                    let t = at([e[j][x0 + l], e[4 + j][x0 + l], e[8 + j][x0 + l], e[12 + j][x0 + l]]);
                    cj[0][l] = t[0];
                    cj[1][l] = t[1];
                }
            }
            for (i, out) in [&mut *top, &mut *bottom].into_iter().enumerate() {
                let out = &mut out[2 * x0..][..2 * n];
                for l in 0..n {
                    let r = at([cols[0][i][l], cols[1][i][l], cols[2][i][l], cols[3][i][l]]);
                    out[2 * l] = r[0] + b;
                    out[2 * l + 1] = r[1] + b;
                }
            }
        }
    }
}

/// The runs `vc[p · tiles + t0 ..][.. len]` of the 16 entries p (`vc`: 16 × `tiles`),
/// as separate slices.
fn split_entries(vc: &mut [f32], tiles: usize, t0: usize, len: usize) -> [&mut [f32]; P] {
    let mut entries = vc.chunks_exact_mut(tiles);
    std::array::from_fn(|_| &mut entries.next().expect("16 entries")[t0..t0 + len])
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The 1-D identities behind the 2-D ones, in exact small integers:
    /// Aᵀ [(G g) ⊙ (Bᵀ d)] = (g_0 d_0 + g_1 d_1 + g_2 d_2, g_0 d_1 + g_1 d_2 + g_2 d_3).
    #[test]
    fn the_one_dimensional_minimal_filter_is_a_correlation() {
        let (d, k) = ([3.0, -1.0, 4.0, 2.0], [2.0, -6.0, 4.0]);
        let (gd, bd) = (g(k), bt(d));
        let y = at(std::array::from_fn(|i| gd[i] * bd[i]));
        let want = [
            k[0] * d[0] + k[1] * d[1] + k[2] * d[2],
            k[0] * d[1] + k[1] * d[2] + k[2] * d[3],
        ];
        assert_eq!(y, want);
    }

    /// The 2-D forward of one chunk against the convolution summed directly (f64).
    #[test]
    fn a_chunk_equals_the_direct_sum() {
        let s = Tiles {
            cin: 3,
            cout: 2,
            h: 4,
            w: 6,
        };
        let nb = 2;
        let x: Vec<f32> = (0..nb * s.cin * s.h * s.w)
            .map(|i| ((i * 37 % 23) as f32 - 11.0) / 7.0)
            .collect();
        let w: Vec<f32> = (0..s.cout * s.cin * 9)
            .map(|i| ((i * 53 % 19) as f32 - 9.0) / 5.0)
            .collect();
        let u = transform_kernels(&w, s.cout, s.cin);
        for threads in [1, 2] {
            let mut y = vec![0f32; nb * s.cout * s.h * s.w];
            forward_chunk(s, &x, &u, &mut y, |i, c| (10 * i + c) as f32, threads);
            for i in 0..nb {
                for o in 0..s.cout {
                    for r in 0..s.h {
                        for q in 0..s.w {
                            let mut want = (10 * i + o) as f64;
                            for c in 0..s.cin {
                                for (ky, kx) in (0..3).flat_map(|a| (0..3).map(move |b| (a, b))) {
                                    let (yy, xx) = (r as isize + ky as isize - 1, q as isize + kx as isize - 1);
                                    if yy >= 0 && xx >= 0 && (yy as usize) < s.h && (xx as usize) < s.w {
                                        let xv = x[((i * s.cin + c) * s.h + yy as usize) * s.w + xx as usize];
                                        want += w[((o * s.cin + c) * 3 + ky) * 3 + kx] as f64 * xv as f64;
                                    }
                                }
                            }
                            let got = y[((i * s.cout + o) * s.h + r) * s.w + q] as f64;
                            assert!((got - want).abs() < 1e-5 * (1.0 + want.abs()), "{got} vs {want}");
                        }
                    }
                }
            }
        }
    }
}
