//! Update rules (docs/engine.md). Their slots (momentum; Adam's m and v) live in the
//! network, per parameter; the step count t is the network's.

use crate::real::Real;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "name", deny_unknown_fields)]
pub enum Update {
    Vanilla {
        #[serde(default)]
        weight_decay: f64,
    },
    Momentum {
        mu: f64,
        #[serde(default)]
        weight_decay: f64,
    },
    Nesterov {
        mu: f64,
        #[serde(default)]
        weight_decay: f64,
    },
    Adam {
        beta1: f64,
        beta2: f64,
        eps: f64,
        #[serde(default)]
        weight_decay: f64,
    },
    Adamw {
        beta1: f64,
        beta2: f64,
        eps: f64,
        weight_decay: f64,
    },
}

/// Elements per parallel chunk of an update.
const CHUNK: usize = 1 << 14;

impl Update {
    /// The slots each parameter carries, in order.
    pub fn slots(&self) -> &'static [&'static str] {
        match self {
            Update::Vanilla { .. } => &[],
            Update::Momentum { .. } | Update::Nesterov { .. } => &["momentum"],
            Update::Adam { .. } | Update::Adamw { .. } => &["m", "v"],
        }
    }

    pub fn check(&self) -> crate::Result<()> {
        let (wd, ok) = match *self {
            Update::Vanilla { weight_decay } => (weight_decay, true),
            Update::Momentum { mu, weight_decay } | Update::Nesterov { mu, weight_decay } => (weight_decay, (0.0..1.0).contains(&mu)),
            Update::Adam { beta1, beta2, eps, weight_decay } | Update::Adamw { beta1, beta2, eps, weight_decay } => {
                (weight_decay, (0.0..1.0).contains(&beta1) && (0.0..1.0).contains(&beta2) && eps.is_finite() && eps > 0.0)
            }
        };
        if !ok {
            crate::bail!("update: {self:?} has a parameter out of range (momenta and betas in [0, 1), eps > 0)");
        }
        if !(wd.is_finite() && wd >= 0.0) {
            crate::bail!("update: weight_decay must be a number ≥ 0, got {wd}");
        }
        Ok(())
    }

    /// One step on one parameter `w` with reduced gradient `g` and its `slots`, learning
    /// rate `lr`, weight-decay factor `wd_mult` (the rule's decay times it) and step count
    /// `t` (this update included).
    pub fn apply<T: Real>(&self, w: &mut [T], slots: &mut [Vec<T>], g: &[T], lr: f64, wd_mult: f64, t: u64) {
        match *self {
            Update::Vanilla { weight_decay } => {
                let (a, l) = (T::of(lr), T::of(weight_decay * wd_mult));
                w.par_chunks_mut(CHUNK).zip(g.par_chunks(CHUNK)).for_each(|(w, g)| {
                    for (wi, &gi) in w.iter_mut().zip(g) {
                        *wi -= a * (gi + l * *wi);
                    }
                });
            }
            // NeuroFlow's form: M ← μM − α(∇W + λW), W ← W + M.
            Update::Momentum { mu, weight_decay } | Update::Nesterov { mu, weight_decay } => {
                let nesterov = matches!(self, Update::Nesterov { .. });
                let (a, l, mu) = (T::of(lr), T::of(weight_decay * wd_mult), T::of(mu));
                w.par_chunks_mut(CHUNK).zip(g.par_chunks(CHUNK)).zip(slots[0].par_chunks_mut(CHUNK)).for_each(|((w, g), m)| {
                    for ((wi, mi), &gi) in w.iter_mut().zip(m.iter_mut()).zip(g) {
                        let prev = *mi;
                        *mi = mu * prev - a * (gi + l * *wi);
                        // Nesterov in the same variables: W ← W − μM + (1 + μ)M′.
                        *wi += if nesterov { (T::one() + mu) * *mi - mu * prev } else { *mi };
                    }
                });
            }
            Update::Adam { beta1, beta2, eps, weight_decay } | Update::Adamw { beta1, beta2, eps, weight_decay } => {
                let decoupled = matches!(self, Update::Adamw { .. });
                let wd = weight_decay * wd_mult;
                let (coupled, shrink) = if decoupled { (T::zero(), T::of(1.0 - lr * wd)) } else { (T::of(wd), T::one()) };
                let t = t.max(1) as i32;
                let (c1, c2) = (1.0 - beta1.powi(t), 1.0 - beta2.powi(t));
                let (b1, b2, a, e) = (T::of(beta1), T::of(beta2), T::of(lr), T::of(eps));
                let (ic1, ic2) = (T::of(1.0 / c1), T::of(1.0 / c2));
                let (m, v) = slots.split_at_mut(1);
                w.par_chunks_mut(CHUNK).zip(g.par_chunks(CHUNK)).zip(m[0].par_chunks_mut(CHUNK)).zip(v[0].par_chunks_mut(CHUNK)).for_each(|(((w, g), m), v)| {
                    for (((wi, mi), vi), &gi) in w.iter_mut().zip(m.iter_mut()).zip(v.iter_mut()).zip(g) {
                        let g = gi + coupled * *wi;
                        *mi = b1 * *mi + (T::one() - b1) * g;
                        *vi = b2 * *vi + (T::one() - b2) * g * g;
                        *wi = *wi * shrink - a * (*mi * ic1) / ((*vi * ic2).sqrt() + e);
                    }
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn momentum_follows_neuroflow() {
        let (mut w, mut m) = (vec![1.0f64, -2.0], vec![vec![0.5, 0.25]]);
        Update::Momentum { mu: 0.8, weight_decay: 0.0 }.apply(&mut w, &mut m, &[0.1, -0.3], 0.5, 1.0, 1);
        assert_eq!(m[0], vec![0.8 * 0.5 - 0.05, 0.8 * 0.25 + 0.15]);
        assert_eq!(w, vec![1.0 + m[0][0], -2.0 + m[0][1]]);
    }

    #[test]
    fn nesterov_looks_ahead() {
        let (mut w, mut m) = (vec![1.0f64], vec![vec![0.5]]);
        Update::Nesterov { mu: 0.9, weight_decay: 0.0 }.apply(&mut w, &mut m, &[0.2], 0.1, 1.0, 1);
        let m1 = 0.9 * 0.5 - 0.02;
        assert!((m[0][0] - m1).abs() < 1e-15);
        assert!((w[0] - (1.0 - 0.9 * 0.5 + 1.9 * m1)).abs() < 1e-15);
    }

    #[test]
    fn vanilla_descends_with_decay() {
        let mut w = vec![1.0f64, 2.0];
        Update::Vanilla { weight_decay: 0.1 }.apply(&mut w, &mut [], &[0.5, -1.0], 0.1, 2.0, 1);
        assert!((w[0] - (1.0 - 0.1 * (0.5 + 0.2 * 1.0))).abs() < 1e-15);
        assert!((w[1] - (2.0 - 0.1 * (-1.0 + 0.2 * 2.0))).abs() < 1e-15);
    }

    /// Adam and AdamW over three steps against the textbook formulas written out.
    #[test]
    fn adam_and_adamw_match_the_formulas() {
        for decoupled in [false, true] {
            let (b1, b2, eps, wd, lr) = (0.9, 0.99, 1e-8, 0.05, 0.01);
            let rule = if decoupled {
                Update::Adamw { beta1: b1, beta2: b2, eps, weight_decay: wd }
            } else {
                Update::Adam { beta1: b1, beta2: b2, eps, weight_decay: wd }
            };
            let mut w = vec![0.7f64, -1.3];
            let mut slots = vec![vec![0.0; 2], vec![0.0; 2]];
            let (mut rw, mut rm, mut rv) = (w.clone(), [0.0f64; 2], [0.0f64; 2]);
            for t in 1..=3u64 {
                let g = [0.3 * t as f64, -0.2 + 0.1 * t as f64];
                rule.apply(&mut w, &mut slots, &g, lr, 1.0, t);
                for i in 0..2 {
                    let gi = if decoupled { g[i] } else { g[i] + wd * rw[i] };
                    if decoupled {
                        rw[i] -= lr * wd * rw[i];
                    }
                    rm[i] = b1 * rm[i] + (1.0 - b1) * gi;
                    rv[i] = b2 * rv[i] + (1.0 - b2) * gi * gi;
                    let (mh, vh) = (rm[i] / (1.0 - b1.powi(t as i32)), rv[i] / (1.0 - b2.powi(t as i32)));
                    rw[i] -= lr * mh / (vh.sqrt() + eps);
                }
            }
            for i in 0..2 {
                assert!((w[i] - rw[i]).abs() < 1e-14, "decoupled {decoupled}: {} vs {}", w[i], rw[i]);
            }
        }
    }
}
