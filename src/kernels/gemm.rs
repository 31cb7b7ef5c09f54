//! A checked, row-major view of the `gemm` crate's kernels (the ones candle's CPU matmul
//! calls), so the custom ops (f32) and the bootstrap's batched statistics (f64) can
//! multiply strided views without copies.

use ::gemm::Parallelism;

/// The element types the kernel serves.
pub(crate) trait Element: Copy + 'static {
    /// The multiplicative unit (gemm's α and β).
    const ONE: Self;
    /// The additive unit.
    const ZERO: Self;
}

impl Element for f32 {
    const ONE: Self = 1.0;
    const ZERO: Self = 0.0;
}

impl Element for f64 {
    const ONE: Self = 1.0;
    const ZERO: Self = 0.0;
}

/// A read-only strided matrix view: element (i, j) is `data[i * rs + j * cs]`.
#[derive(Clone, Copy)]
pub(crate) struct View<'a, T = f32> {
    pub data: &'a [T],
    pub rows: usize,
    pub cols: usize,
    pub rs: usize,
    pub cs: usize,
}

impl<'a, T> View<'a, T> {
    /// A contiguous row-major `rows × cols` matrix.
    pub fn rows(data: &'a [T], rows: usize, cols: usize) -> Self {
        Self {
            data,
            rows,
            cols,
            rs: cols,
            cs: 1,
        }
    }

    /// A row-major `rows × cols` matrix whose rows start `stride` apart (a block of a
    /// larger row-major matrix, from its first element).
    pub fn strided(data: &'a [T], rows: usize, cols: usize, stride: usize) -> Self {
        Self {
            data,
            rows,
            cols,
            rs: stride,
            cs: 1,
        }
    }

    /// The transpose (no copy).
    pub fn t(self) -> Self {
        Self {
            data: self.data,
            rows: self.cols,
            cols: self.rows,
            rs: self.cs,
            cs: self.rs,
        }
    }

    fn check(&self) {
        let last = if self.rows == 0 || self.cols == 0 {
            0
        } else {
            (self.rows - 1) * self.rs + (self.cols - 1) * self.cs + 1
        };
        assert!(last <= self.data.len(), "gemm view out of bounds");
    }
}

/// How a kernel spreads one product over threads.
pub(crate) fn parallelism(threads: usize) -> Parallelism {
    if threads > 1 {
        Parallelism::Rayon(threads)
    } else {
        Parallelism::None
    }
}

/// `dst = a · b` (or `dst += a · b` when `accumulate`), `dst` contiguous row-major `a.rows × b.cols`.
pub(crate) fn matmul<T: Element>(dst: &mut [T], accumulate: bool, a: View<T>, b: View<T>, threads: usize) {
    matmul_strided(dst, b.cols, accumulate, a, b, threads)
}

/// [`matmul`] into rows of `dst` that start `stride` ≥ `b.cols` apart (a block of a wider
/// row-major matrix).
pub(crate) fn matmul_strided<T: Element>(
    dst: &mut [T],
    stride: usize,
    accumulate: bool,
    a: View<T>,
    b: View<T>,
    threads: usize,
) {
    assert_eq!(a.cols, b.rows, "gemm inner dimensions");
    assert!(stride >= b.cols, "gemm destination stride");
    assert!(
        a.rows == 0 || dst.len() >= (a.rows - 1) * stride + b.cols,
        "gemm destination too small"
    );
    a.check();
    b.check();
    let (m, n, k) = (a.rows, b.cols, a.cols);
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !accumulate {
            dst.chunks_mut(stride).take(m).for_each(|row| row[..n].fill(T::ZERO));
        }
        return;
    }
    // SAFETY: the views were bounds-checked above and `dst` holds m × n elements;
    // gemm computes dst := 1·dst + 1·(a·b) (dst read only when `accumulate`).
    unsafe {
        ::gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            stride as isize,
            accumulate,
            a.data.as_ptr(),
            a.cs as isize,
            a.rs as isize,
            b.data.as_ptr(),
            b.cs as isize,
            b.rs as isize,
            T::ONE,
            T::ONE,
            false,
            false,
            false,
            parallelism(threads),
        )
    }
}
