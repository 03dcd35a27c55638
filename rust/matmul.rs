//! Row-major matrix products on the `gemm` crate (pure Rust, SIMD kernels chosen at run
//! time, rayon-parallel). All matrices here are dense row-major; a transpose is a swap of
//! strides, never a copy.

use crate::real::Real;
use gemm::Parallelism;

/// A row-major operand, optionally read transposed.
#[derive(Clone, Copy)]
pub struct Mat<'a, T> {
    pub data: &'a [T],
    /// Rows and columns of the stored matrix.
    pub rows: usize,
    pub cols: usize,
    pub t: bool,
}

impl<'a, T> Mat<'a, T> {
    pub fn new(data: &'a [T], rows: usize, cols: usize) -> Self {
        Mat { data, rows, cols, t: false }
    }
    pub fn t(self) -> Self {
        Mat { t: !self.t, ..self }
    }
    /// Logical shape and (row, column) strides.
    fn view(&self) -> (usize, usize, isize, isize) {
        if self.t {
            (self.cols, self.rows, 1, self.cols as isize)
        } else {
            (self.rows, self.cols, self.cols as isize, 1)
        }
    }
}

/// c (m×n, row-major) = a·b, or c += a·b with `accumulate`. `threads` > 1 lets gemm split
/// the work over the current rayon pool; inside an already-parallel loop pass 1.
pub fn matmul<T: Real>(a: Mat<T>, b: Mat<T>, c: &mut [T], accumulate: bool, threads: usize) {
    let (m, k, a_rs, a_cs) = a.view();
    let (k2, n, b_rs, b_cs) = b.view();
    assert_eq!(k, k2, "matmul: inner dimensions differ");
    assert!(a.data.len() >= a.rows * a.cols && b.data.len() >= b.rows * b.cols);
    assert!(c.len() >= m * n, "matmul: output too small");
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !accumulate {
            c[..m * n].iter_mut().for_each(|v| *v = T::zero());
        }
        return;
    }
    let par = if threads > 1 { Parallelism::Rayon(threads) } else { Parallelism::None };
    // SAFETY: the asserts above keep every index gemm forms inside the three slices; T is
    // f32 or f64 (Real is sealed), the types gemm dispatches on.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            c.as_mut_ptr(),
            1,
            n as isize,
            accumulate,
            a.data.as_ptr(),
            a_cs,
            a_rs,
            b.data.as_ptr(),
            b_cs,
            b_rs,
            T::one(),
            T::one(),
            false,
            false,
            false,
            par,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(a: &[f64], b: &[f64], m: usize, k: usize, n: usize) -> Vec<f64> {
        let mut c = vec![0.0; m * n];
        for i in 0..m {
            for j in 0..n {
                c[i * n + j] = (0..k).map(|p| a[i * k + p] * b[p * n + j]).sum();
            }
        }
        c
    }

    fn transpose(x: &[f64], r: usize, c: usize) -> Vec<f64> {
        (0..c * r).map(|i| x[(i % r) * c + i / r]).collect()
    }

    #[test]
    fn all_transposes_match_naive() {
        let (m, k, n) = (37, 19, 23);
        let a: Vec<f64> = (0..m * k).map(|i| ((i * 7919) % 113) as f64 / 50.0 - 1.0).collect();
        let b: Vec<f64> = (0..k * n).map(|i| ((i * 104729) % 97) as f64 / 40.0 - 1.2).collect();
        let want = naive(&a, &b, m, k, n);
        let at = transpose(&a, m, k);
        let bt = transpose(&b, k, n);
        for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
            let am = if ta { Mat::new(&at, k, m).t() } else { Mat::new(&a, m, k) };
            let bm = if tb { Mat::new(&bt, n, k).t() } else { Mat::new(&b, k, n) };
            for threads in [1, 2] {
                let mut c = vec![f64::NAN; m * n];
                matmul(am, bm, &mut c, false, threads);
                for (x, y) in c.iter().zip(&want) {
                    assert!((x - y).abs() < 1e-12, "{ta} {tb}: {x} vs {y}");
                }
                matmul(am, bm, &mut c, true, threads);
                for (x, y) in c.iter().zip(&want) {
                    assert!((x - 2.0 * y).abs() < 1e-12);
                }
            }
        }
    }
}
