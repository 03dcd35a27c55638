//! Dense (fully connected) layer: s[n, o] = Σ_d input[n, d] · w[d, o], a = act(s).

use crate::activator::Activator;
use crate::matmul::{matmul, Mat};
use crate::real::Real;

#[derive(Clone, Debug)]
pub struct Dense {
    pub dim_in: usize,
    pub neurons: usize,
    pub act: Activator,
}

impl Dense {
    pub fn forward<T: Real>(&self, input: &[T], w: &[T], s: &mut [T], a: &mut [T], n: usize, threads: usize) {
        let (d, o) = (self.dim_in, self.neurons);
        matmul(Mat::new(&input[..n * d], n, d), Mat::new(w, d, o), &mut s[..n * o], false, threads);
        self.act.forward(&s[..n * o], &mut a[..n * o]);
    }

    /// dw = inputᵀ · delta.
    pub fn weight_grad<T: Real>(&self, input: &[T], delta: &[T], n: usize, dw: &mut [T], threads: usize) {
        let (d, o) = (self.dim_in, self.neurons);
        matmul(Mat::new(&input[..n * d], n, d).t(), Mat::new(&delta[..n * o], n, o), dw, false, threads);
    }

    /// dinput = delta · wᵀ.
    pub fn input_grad<T: Real>(&self, w: &[T], delta: &[T], n: usize, dinput: &mut [T], threads: usize) {
        let (d, o) = (self.dim_in, self.neurons);
        matmul(Mat::new(&delta[..n * o], n, o), Mat::new(w, d, o).t(), &mut dinput[..n * d], false, threads);
    }
}
