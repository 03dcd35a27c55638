//! Losses read the last layer's activated output y (one row of K per sample).

use crate::real::Real;
use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LossKind {
    SoftmaxLogEntropy,
    SoftmaxLogMultEntropy,
    SquaredError,
    AbsCubicError,
}

#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Loss {
    pub name: LossKind,
    /// Targets per sample of SoftmaxLogMultEntropy (Σt = n).
    #[serde(default = "one")]
    pub n: f64,
    /// Softmax losses: the targets t become (1 − ε)·t + ε·n/K.
    #[serde(default)]
    pub label_smoothing: f64,
}

fn one() -> f64 {
    1.0
}

/// log-softmax of `y` into `out`, shifted by the max so that exp never overflows and an
/// underflowing probability still has a finite log.
fn log_softmax<T: Real>(y: &[T], out: &mut [T]) {
    let m = y.iter().copied().fold(T::neg_infinity(), T::max);
    let lse = m + y.iter().map(|&v| (v - m).exp()).sum::<T>().ln();
    for (o, &v) in out.iter_mut().zip(y) {
        *o = v - lse;
    }
}

impl Loss {
    pub fn new(name: LossKind) -> Loss {
        Loss { name, n: 1.0, label_smoothing: 0.0 }
    }

    pub fn check(&self) -> crate::Result<()> {
        if !(self.n.is_finite() && self.n >= 1.0) {
            crate::bail!("loss: n must be ≥ 1, got {}", self.n);
        }
        if !(0.0..1.0).contains(&self.label_smoothing) {
            crate::bail!("loss: label_smoothing must be in [0, 1), got {}", self.label_smoothing);
        }
        if self.label_smoothing != 0.0 && !self.is_softmax() {
            crate::bail!("loss: label_smoothing applies to the softmax losses only");
        }
        Ok(())
    }

    pub fn is_softmax(&self) -> bool {
        matches!(self.name, LossKind::SoftmaxLogEntropy | LossKind::SoftmaxLogMultEntropy)
    }

    /// Loss of one sample; writes ∂L/∂y into `grad`.
    pub fn sample<T: Real>(&self, y: &[T], t: &[T], grad: &mut [T]) -> T {
        match self.name {
            LossKind::SoftmaxLogEntropy | LossKind::SoftmaxLogMultEntropy => {
                log_softmax(y, grad);
                let n = if self.name == LossKind::SoftmaxLogEntropy { T::one() } else { T::of(self.n) };
                let eps = T::of(self.label_smoothing);
                let spread = eps * n / T::of(y.len() as f64);
                let mut loss = T::zero();
                for (g, &ti) in grad.iter_mut().zip(t) {
                    let ti = if self.label_smoothing == 0.0 { ti } else { (T::one() - eps) * ti + spread };
                    // 0 · log 0 is 0 here, never NaN: skip the term.
                    if ti != T::zero() {
                        loss -= ti * *g;
                    }
                    *g = n * g.exp() - ti;
                }
                loss
            }
            LossKind::SquaredError => {
                let mut loss = T::zero();
                for ((g, &yi), &ti) in grad.iter_mut().zip(y).zip(t) {
                    let r = yi - ti;
                    loss += r * r;
                    *g = r;
                }
                T::of(0.5) * loss
            }
            LossKind::AbsCubicError => {
                let mut loss = T::zero();
                for ((g, &yi), &ti) in grad.iter_mut().zip(y).zip(t) {
                    let r = yi - ti;
                    loss += r.abs() * r * r;
                    *g = T::of(1.5) * r * r.abs();
                }
                T::of(0.5) * loss
            }
        }
    }

    /// What `predict` returns: probabilities for the softmax losses, y itself otherwise.
    pub fn output<T: Real>(&self, y: &[T], out: &mut [T]) {
        if self.is_softmax() {
            log_softmax(y, out);
            for o in out.iter_mut() {
                *o = o.exp();
            }
        } else {
            out.copy_from_slice(y);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check_gradient(loss: Loss, y: &[f64], t: &[f64]) {
        let mut g = vec![0.0; y.len()];
        loss.sample(y, t, &mut g);
        let mut scratch = vec![0.0; y.len()];
        for i in 0..y.len() {
            let h = 1e-6;
            let (mut yp, mut ym) = (y.to_vec(), y.to_vec());
            yp[i] += h;
            ym[i] -= h;
            let fd = (loss.sample(&yp, t, &mut scratch) - loss.sample(&ym, t, &mut scratch)) / (2.0 * h);
            assert!((fd - g[i]).abs() < 1e-7 * (1.0 + fd.abs()), "{:?} [{i}] fd {fd} vs {}", loss.name, g[i]);
        }
    }

    #[test]
    fn gradients_match_central_differences() {
        let y = [0.3, -1.2, 2.5, 0.05];
        check_gradient(Loss::new(LossKind::SoftmaxLogEntropy), &y, &[0.1, 0.2, 0.6, 0.1]);
        check_gradient(Loss { n: 2.0, ..Loss::new(LossKind::SoftmaxLogMultEntropy) }, &y, &[1.0, 0.0, 1.0, 0.0]);
        check_gradient(Loss::new(LossKind::SquaredError), &y, &[0.5, 0.7, -0.3, 1.1]);
        check_gradient(Loss::new(LossKind::AbsCubicError), &y, &[0.5, 0.7, -0.3, 1.1]);
        check_gradient(Loss { label_smoothing: 0.2, ..Loss::new(LossKind::SoftmaxLogEntropy) }, &y, &[0.0, 0.0, 1.0, 0.0]);
        check_gradient(Loss { n: 2.0, label_smoothing: 0.1, ..Loss::new(LossKind::SoftmaxLogMultEntropy) }, &y, &[1.0, 0.0, 1.0, 0.0]);
    }

    #[test]
    fn softmax_loss_finite_when_probability_underflows() {
        let loss = Loss::new(LossKind::SoftmaxLogEntropy);
        let y = [1000.0f32, -1000.0];
        let mut g = [0.0f32; 2];
        let l = loss.sample(&y, &[0.0, 1.0], &mut g);
        assert!(l.is_finite() && (l - 2000.0).abs() < 1e-3, "{l}");
        assert!(g.iter().all(|v| v.is_finite()));
        let l = loss.sample(&y, &[1.0, 0.0], &mut g);
        assert_eq!(l, 0.0);
        let mut p = [0.0f32; 2];
        loss.output(&y, &mut p);
        assert_eq!(p, [1.0, 0.0]);
    }
}
