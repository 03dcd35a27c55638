//! Update rules. The state (momentum) lives in the network, one buffer per weight array.

use crate::real::Real;
use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "name")]
pub enum Update {
    Vanilla,
    Momentum { mu: f64 },
    Nesterov { mu: f64 },
}

impl Update {
    pub fn has_state(&self) -> bool {
        !matches!(self, Update::Vanilla)
    }

    /// One step on one weight array: `g` is the reduced gradient, `m` the state (empty for vanilla).
    pub fn apply<T: Real>(&self, w: &mut [T], m: &mut [T], g: &[T], lr: T) {
        match *self {
            Update::Vanilla => {
                for (wi, &gi) in w.iter_mut().zip(g) {
                    *wi -= lr * gi;
                }
            }
            // NeuroFlow's form: M ← μM − α∇W, W ← W + M.
            Update::Momentum { mu } => {
                let mu = T::of(mu);
                for ((wi, mi), &gi) in w.iter_mut().zip(m.iter_mut()).zip(g) {
                    *mi = mu * *mi - lr * gi;
                    *wi += *mi;
                }
            }
            // Nesterov in the same variables: W ← W − μM + (1 + μ)M′.
            Update::Nesterov { mu } => {
                let mu = T::of(mu);
                for ((wi, mi), &gi) in w.iter_mut().zip(m.iter_mut()).zip(g) {
                    let prev = *mi;
                    *mi = mu * prev - lr * gi;
                    *wi += (T::one() + mu) * *mi - mu * prev;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn momentum_follows_neuroflow() {
        let (mut w, mut m) = (vec![1.0f64, -2.0], vec![0.5, 0.25]);
        Update::Momentum { mu: 0.8 }.apply(&mut w, &mut m, &[0.1, -0.3], 0.5);
        assert_eq!(m, vec![0.8 * 0.5 - 0.05, 0.8 * 0.25 + 0.15]);
        assert_eq!(w, vec![1.0 + m[0], -2.0 + m[1]]);
    }

    #[test]
    fn nesterov_looks_ahead() {
        let (mut w, mut m) = (vec![1.0f64], vec![0.5]);
        Update::Nesterov { mu: 0.9 }.apply(&mut w, &mut m, &[0.2], 0.1);
        let m1 = 0.9 * 0.5 - 0.02;
        assert!((m[0] - m1).abs() < 1e-15);
        assert!((w[0] - (1.0 - 0.9 * 0.5 + 1.9 * m1)).abs() < 1e-15);
    }

    #[test]
    fn vanilla_descends() {
        let mut w = vec![1.0f32, 2.0];
        Update::Vanilla.apply(&mut w, &mut [], &[0.5, -1.0], 0.1);
        assert_eq!(w, vec![0.95, 2.1]);
    }
}
