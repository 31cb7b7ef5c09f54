//! The dense f64 linear algebra the batched statistics share: products through the
//! `gemm` crate's f64 kernel (what makes a bootstrap replicate a matrix product rather
//! than a loop over rows), and buffers kept between calls.

use crate::kernels::gemm::{matmul, View};

/// A row-major `rows × cols` f64 matrix.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Dense {
    pub rows: usize,
    pub cols: usize,
    pub data: Vec<f64>,
}

impl Dense {
    pub fn view(&self) -> View<'_, f64> {
        View::rows(&self.data, self.rows, self.cols)
    }
}

/// `a · b` as a new row-major matrix (threads: rayon's, unless `serial`).
pub(crate) fn product(a: View<f64>, b: View<f64>, serial: bool) -> Dense {
    let mut data = vec![0.0; a.rows * b.cols];
    let threads = if serial { 1 } else { rayon::current_num_threads() };
    matmul(&mut data, false, a, b, threads);
    Dense {
        rows: a.rows,
        cols: b.cols,
        data,
    }
}

/// Buffers kept between calls for the large matrices of the statistics (distances,
/// kernel matrices): a fresh buffer's first write faults in every page, which the kernel
/// clears (perf: `clear_page_erms`, a third of the 2-D statistics' time before); a buffer
/// taken from a pool has its pages already. Buffers are taken and given back whole, so
/// calls that run at once each get their own; a buffer not given back is simply freed.
pub(crate) struct Pool<T>(std::sync::Mutex<Vec<Vec<T>>>);

/// The most buffers a pool keeps.
const POOL_KEEPS: usize = 4;

impl<T: Copy + Default> Pool<T> {
    pub const fn new() -> Self {
        Self(std::sync::Mutex::new(Vec::new()))
    }

    /// A buffer of `len` values (their contents unspecified: the caller overwrites them):
    /// the kept buffer with the least capacity that holds `len`, else the largest one (so
    /// that a small request does not take the buffer a large one needs).
    pub fn take(&self, len: usize) -> Vec<T> {
        let mut v = self
            .0
            .lock()
            .map(|mut p| {
                let fits = (0..p.len())
                    .filter(|&i| p[i].capacity() >= len)
                    .min_by_key(|&i| p[i].capacity());
                let pick = fits.or_else(|| (0..p.len()).max_by_key(|&i| p[i].capacity()));
                pick.map(|i| p.swap_remove(i)).unwrap_or_default()
            })
            .unwrap_or_default();
        v.resize(len, T::default());
        v
    }

    /// Keeps `buffer` for a later [`Pool::take`] (up to [`POOL_KEEPS`] buffers).
    pub fn give(&self, buffer: Vec<T>) {
        if let Ok(mut pool) = self.0.lock() {
            if pool.len() < POOL_KEEPS {
                pool.push(buffer);
            }
        }
    }
}

/// The f64 buffers of the distance blocks.
pub(crate) static F64_BUFFERS: Pool<f64> = Pool::new();
/// The f32 buffers of the kernel matrices.
pub(crate) static F32_BUFFERS: Pool<f32> = Pool::new();

/// The rows of a flat f32 sample as f64 (row-major, unchanged layout).
pub(crate) fn to_f64(x: &[f32]) -> Vec<f64> {
    x.iter().map(|&v| v as f64).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn product_matches_a_hand_computation() {
        // [[1, 2, 3], [4, 5, 6]] · [[1, 0], [0, 1], [1, 1]] = [[4, 5], [10, 11]]
        let a = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0];
        let b = [1.0, 0.0, 0.0, 1.0, 1.0, 1.0];
        let p = product(View::rows(&a, 2, 3), View::rows(&b, 3, 2), false);
        assert_eq!(p.data, vec![4.0, 5.0, 10.0, 11.0]);
        // aᵀ · a through a transposed view: [[17, 22, 27], [22, 29, 36], [27, 36, 45]]
        let g = product(View::rows(&a, 2, 3).t(), View::rows(&a, 2, 3), true);
        assert_eq!(g.data, vec![17.0, 22.0, 27.0, 22.0, 29.0, 36.0, 27.0, 36.0, 45.0]);
    }

    #[test]
    fn a_pool_hands_back_what_it_was_given() {
        let pool: Pool<f64> = Pool::new();
        let a = pool.take(3);
        assert_eq!(a, vec![0.0; 3]);
        let mut b = pool.take(5);
        b.fill(7.0);
        let kept = b.as_ptr();
        pool.give(b);
        let c = pool.take(4);
        assert_eq!((c.as_ptr(), c.len()), (kept, 4), "the same allocation, resized");
        // best fit: the smallest buffer that holds the request, else the largest
        let pool: Pool<f64> = Pool::new();
        let (small, large) = (vec![0.0; 10], vec![0.0; 100]);
        let (small_at, large_at) = (small.as_ptr(), large.as_ptr());
        pool.give(large);
        pool.give(small);
        let got = pool.take(50);
        assert_eq!(got.as_ptr(), large_at, "a request of 50 takes the buffer of 100");
        let got_small = pool.take(5);
        assert_eq!(got_small.as_ptr(), small_at, "and one of 5 the buffer of 10");
        pool.give(got_small);
        assert_eq!(pool.take(500).len(), 500, "none fits: the largest kept, grown");
        assert!(pool.0.lock().unwrap().is_empty());
        for _ in 0..10 {
            pool.give(vec![1.0]);
        }
        assert_eq!(pool.0.lock().unwrap().len(), POOL_KEEPS);
        drop(a);
    }
}
