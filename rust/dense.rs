//! Dense (fully connected) layer: s[n, o] = Σ_d input[n, d] · w[d, o], a = act(s).

use crate::activator::Activator;
use crate::matmul::{matmul, Mat};
use crate::real::Real;
use rayon::prelude::*;

#[derive(Clone, Debug)]
pub struct Dense {
    pub dim_in: usize,
    pub neurons: usize,
    pub act: Activator,
}

impl Dense {
    /// s = input · w (+ bias), a = act(s); only a when the activator's derivative
    /// follows from a.
    #[allow(clippy::too_many_arguments)]
    pub fn forward<T: Real>(&self, input: &[T], w: &[T], bias: Option<&[T]>, s: &mut [T], a: &mut [T], n: usize, threads: usize) {
        let (d, o) = (self.dim_in, self.neurons);
        let (x, wm) = (Mat::new(&input[..n * d], n, d), Mat::new(w, d, o));
        let target = if self.act.from_output() { &mut a[..n * o] } else { &mut s[..n * o] };
        matmul(x, wm, target, false, threads);
        if let Some(b) = bias {
            crate::layers::add_bias(target, b);
        }
        if self.act.from_output() {
            self.act.forward_inplace(&mut a[..n * o]);
        } else {
            self.act.forward(&s[..n * o], &mut a[..n * o]);
        }
    }

    /// dw = inputᵀ · delta.
    pub fn weight_grad<T: Real>(&self, input: &[T], delta: &[T], n: usize, dw: &mut [T], threads: usize) {
        let (d, o) = (self.dim_in, self.neurons);
        matmul(Mat::new(&input[..n * d], n, d).t(), Mat::new(&delta[..n * o], n, o), dw, false, threads);
    }

    /// dinput = delta · wᵀ (⊙ f'(a) with `mask`, as conv::Conv::input_grad).
    #[allow(clippy::too_many_arguments)]
    pub fn input_grad<T: Real>(&self, w: &[T], delta: &[T], n: usize, dinput: &mut [T], threads: usize, mask: Option<&Activator>, tmp: &mut Vec<T>) {
        let (d, o) = (self.dim_in, self.neurons);
        let prod = |out: &mut [T]| matmul(Mat::new(&delta[..n * o], n, o), Mat::new(w, d, o).t(), out, false, threads);
        match mask {
            None => prod(&mut dinput[..n * d]),
            Some(_) => {
                let tmp = crate::alloc::grown(tmp, n * d, || format!("dense input gradient for a batch of {n}"));
                prod(tmp);
                dinput[..n * d]
                    .par_chunks_mut(1 << 14)
                    .zip(tmp.par_chunks(1 << 14))
                    .for_each(|(dx, acc)| crate::conv::epilogue(acc, dx, mask));
            }
        }
    }
}
