//! Update rules (docs/engine.md). Their slots (momentum; Adam's m and v) live in the
//! network, per parameter; the step count t is the network's.

use crate::matmul::{matmul, Mat};
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
    /// Muon (Keller Jordan, 2024) on the convolution filters: the Nesterov momentum of the
    /// gradient, orthogonalised by a Newton–Schulz iteration (`orthogonalize`); every
    /// other parameter takes Nesterov with `fallback_mu`.
    Muon {
        mu: f64,
        fallback_mu: f64,
        #[serde(default = "muon_steps")]
        steps: u32,
        /// Rescale each filter tensor to a norm of √F before its step (airbench94_muon:
        /// right before BatchNorm a filter tensor's scale does not matter, so only its
        /// direction is learned).
        #[serde(default)]
        normalize: bool,
        #[serde(default)]
        weight_decay: f64,
    },
}

fn muon_steps() -> u32 {
    5
}

/// The quintic Newton–Schulz coefficients of Muon, chosen for a steep slope at zero:
/// singular values go to about 0.7–1.2 in a few steps rather than exactly to 1.
const NS: (f64, f64, f64) = (3.4445, -4.7750, 2.0315);

/// Elements per parallel chunk of an update.
const CHUNK: usize = 1 << 14;

impl Update {
    /// The slots each parameter carries, in order.
    pub fn slots(&self) -> &'static [&'static str] {
        match self {
            Update::Vanilla { .. } => &[],
            Update::Momentum { .. } | Update::Nesterov { .. } | Update::Muon { .. } => &["momentum"],
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
            Update::Muon { mu, fallback_mu, steps, weight_decay, .. } => {
                (weight_decay, (0.0..1.0).contains(&mu) && (0.0..1.0).contains(&fallback_mu) && (1..=100).contains(&steps))
            }
        };
        if !ok {
            crate::bail!("update: {self:?} has a parameter out of range (momenta and betas in [0, 1), eps > 0, steps 1 to 100)");
        }
        if !(wd.is_finite() && wd >= 0.0) {
            crate::bail!("update: weight_decay must be a number ≥ 0, got {wd}");
        }
        Ok(())
    }

    /// One step on one parameter `w` of `shape` with reduced gradient `g` and its `slots`,
    /// learning rate `lr`, weight-decay factor `wd_mult` (the rule's decay times it) and
    /// step count `t` (this update included); `work`: Muon's scratch, grown as needed.
    #[allow(clippy::too_many_arguments)]
    pub fn apply<T: Real>(&self, w: &mut [T], shape: &[usize], slots: &mut [Vec<T>], g: &[T], lr: f64, wd_mult: f64, t: u64, work: &mut Vec<T>) {
        match *self {
            // Filters (fx, fy, Z, F): as a K × F matrix, K = fx·fy·Z. Momentum without
            // the learning rate, M ← μM + g, the step along orthogonalize(g + μM), scaled
            // by √max(1, F/K) (Keller Jordan's), with decoupled weight decay.
            Update::Muon { mu, steps, normalize, weight_decay, .. } if shape.len() == 4 => {
                let (f, k) = (shape[3], shape[..3].iter().product::<usize>());
                let mu = T::of(mu);
                let u = crate::alloc::grown(work, w.len() + orthogonalize_len(k, f), || "Muon's workspace".into());
                let (u, scratch) = u.split_at_mut(w.len());
                for ((ui, mi), &gi) in u.iter_mut().zip(slots[0].iter_mut()).zip(g) {
                    *mi = mu * *mi + gi;
                    *ui = gi + mu * *mi;
                }
                if normalize {
                    let norm = norm(w);
                    if norm > 0.0 {
                        let s = T::of((f as f64).sqrt() / norm);
                        w.iter_mut().for_each(|v| *v *= s);
                    }
                }
                orthogonalize(u, k, f, steps, scratch);
                let (shrink, a) = (T::of(1.0 - lr * weight_decay * wd_mult), T::of(lr * (f as f64 / k as f64).max(1.0).sqrt()));
                for (wi, &oi) in w.iter_mut().zip(u.iter()) {
                    *wi = *wi * shrink - a * oi;
                }
            }
            Update::Muon { fallback_mu, weight_decay, .. } => {
                Update::Nesterov { mu: fallback_mu, weight_decay }.apply(w, shape, slots, g, lr, wd_mult, t, work)
            }
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

/// The Frobenius norm, summed in f64.
fn norm<T: Real>(x: &[T]) -> f64 {
    x.iter().map(|&v| v.f64() * v.f64()).sum::<f64>().sqrt()
}

/// Scratch values `orthogonalize` needs for an r × c matrix.
pub fn orthogonalize_len(r: usize, c: usize) -> usize {
    let s = r.min(c);
    r * c + 2 * s * s
}

/// g (r × c, row-major) ← its `steps`-step Newton–Schulz orthogonalisation: with
/// X = g / (‖g‖ + 1e-7), X ← aX + X(bA + cA²) with A = XᵀX when r ≥ c, else
/// X ← aX + (bA + cA²)X with A = XXᵀ (A is the Gram matrix of the short side). This takes
/// every singular value of X towards 1 at once (a quintic in them), so that the result is
/// about UVᵀ for g = USVᵀ: every direction of the update gets a step of one size, however
/// unequal the gradient's. `scratch`: orthogonalize_len(r, c).
pub fn orthogonalize<T: Real>(g: &mut [T], r: usize, c: usize, steps: u32, scratch: &mut [T]) {
    let (s, tall) = (r.min(c), r >= c);
    let (y, rest) = scratch.split_at_mut(r * c);
    let (a, aa) = rest.split_at_mut(s * s);
    let scale = T::of(1.0 / (norm(g) + 1e-7));
    g.iter_mut().for_each(|v| *v *= scale);
    let threads = rayon::current_num_threads();
    let (ka, kb, kc) = (T::of(NS.0), T::of(NS.1), T::of(NS.2));
    for _ in 0..steps {
        let x = Mat::new(&*g, r, c);
        if tall {
            matmul(x.t(), x, a, false, threads);
        } else {
            matmul(x, x.t(), a, false, threads);
        }
        matmul(Mat::new(a, s, s), Mat::new(a, s, s), aa, false, threads);
        for (ai, &q) in a.iter_mut().zip(aa.iter()) {
            *ai = kb * *ai + kc * q;
        }
        let b = Mat::new(&*a, s, s);
        if tall {
            matmul(x, b, y, false, threads); // = (B·Xᵀ)ᵀ, B = bA + cA² being symmetric
        } else {
            matmul(b, x, y, false, threads);
        }
        for (xi, &yi) in g.iter_mut().zip(y.iter()) {
            *xi = ka * *xi + yi;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn momentum_follows_neuroflow() {
        let (mut w, mut m) = (vec![1.0f64, -2.0], vec![vec![0.5, 0.25]]);
        Update::Momentum { mu: 0.8, weight_decay: 0.0 }.apply(&mut w, &[2], &mut m, &[0.1, -0.3], 0.5, 1.0, 1, &mut vec![]);
        assert_eq!(m[0], vec![0.8 * 0.5 - 0.05, 0.8 * 0.25 + 0.15]);
        assert_eq!(w, vec![1.0 + m[0][0], -2.0 + m[0][1]]);
    }

    #[test]
    fn nesterov_looks_ahead() {
        let (mut w, mut m) = (vec![1.0f64], vec![vec![0.5]]);
        Update::Nesterov { mu: 0.9, weight_decay: 0.0 }.apply(&mut w, &[1], &mut m, &[0.2], 0.1, 1.0, 1, &mut vec![]);
        let m1 = 0.9 * 0.5 - 0.02;
        assert!((m[0][0] - m1).abs() < 1e-15);
        assert!((w[0] - (1.0 - 0.9 * 0.5 + 1.9 * m1)).abs() < 1e-15);
    }

    #[test]
    fn vanilla_descends_with_decay() {
        let mut w = vec![1.0f64, 2.0];
        Update::Vanilla { weight_decay: 0.1 }.apply(&mut w, &[2], &mut [], &[0.5, -1.0], 0.1, 2.0, 1, &mut vec![]);
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
                rule.apply(&mut w, &[2], &mut slots, &g, lr, 1.0, t, &mut vec![]);
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

    /// An orthogonal n × n matrix: a Householder reflection I − 2vvᵀ/‖v‖².
    fn householder(n: usize, seed: usize) -> Vec<f64> {
        let v: Vec<f64> = (0..n).map(|i| ((i * 7 + seed * 13) % 11) as f64 - 4.7).collect();
        let vv: f64 = v.iter().map(|x| x * x).sum();
        (0..n * n).map(|ij| (if ij / n == ij % n { 1.0 } else { 0.0 }) - 2.0 * v[ij / n] * v[ij % n] / vv).collect()
    }

    /// G = U diag(σ) Vᵀ built from known factors: the iteration must give U diag(p(σ/‖σ‖)) Vᵀ
    /// with p the quintic applied `steps` times to each singular value alone.
    #[test]
    fn orthogonalize_acts_on_singular_values() {
        for &(r, c) in &[(7, 4), (4, 7), (5, 5)] {
            let s = r.min(c);
            let (u, v) = (householder(r, 1), householder(c, 2));
            let sigma: Vec<f64> = (0..s).map(|i| 0.3 + 1.7 * i as f64).collect();
            let g: Vec<f64> = (0..r * c).map(|ij| (0..s).map(|k| u[(ij / c) * r + k] * sigma[k] * v[(ij % c) * c + k]).sum()).collect();
            let total = sigma.iter().map(|x| x * x).sum::<f64>().sqrt();
            for steps in [1, 3, 5] {
                let p: Vec<f64> = sigma
                    .iter()
                    .map(|&x| (0..steps).fold(x / (total + 1e-7), |x, _| NS.0 * x + NS.1 * x.powi(3) + NS.2 * x.powi(5)))
                    .collect();
                let want: Vec<f64> = (0..r * c).map(|ij| (0..s).map(|k| u[(ij / c) * r + k] * p[k] * v[(ij % c) * c + k]).sum()).collect();
                let mut got = g.clone();
                let mut scratch = vec![f64::NAN; orthogonalize_len(r, c)];
                orthogonalize(&mut got, r, c, steps, &mut scratch);
                for (a, b) in got.iter().zip(&want) {
                    assert!((a - b).abs() < 1e-12, "{r}x{c} steps {steps}: {a} vs {b}");
                }
            }
        }
    }

    /// Muon's step on a filter tensor, written out, and its Nesterov fallback elsewhere.
    #[test]
    fn muon_steps_filters_and_falls_back_elsewhere() {
        let rule = Update::Muon { mu: 0.6, fallback_mu: 0.85, steps: 3, normalize: true, weight_decay: 0.1 };
        let shape = [2, 1, 3, 4]; // K = 6, F = 4
        let n = 24;
        let w0: Vec<f64> = (0..n).map(|i| ((i * 5) % 7) as f64 / 3.0 - 1.0).collect();
        let g: Vec<f64> = (0..n).map(|i| ((i * 3) % 11) as f64 / 5.0 - 1.0).collect();
        let m0: Vec<f64> = (0..n).map(|i| ((i * 2) % 5) as f64 / 4.0 - 0.5).collect();
        let (lr, wd_mult) = (0.05, 2.0);
        let (mut w, mut slots, mut work) = (w0.clone(), vec![m0.clone()], vec![]);
        rule.apply(&mut w, &shape, &mut slots, &g, lr, wd_mult, 1, &mut work);
        let m1: Vec<f64> = m0.iter().zip(&g).map(|(m, g)| 0.6 * m + g).collect();
        let mut o: Vec<f64> = g.iter().zip(&m1).map(|(g, m)| g + 0.6 * m).collect();
        orthogonalize(&mut o, 6, 4, 3, &mut vec![0.0; orthogonalize_len(6, 4)]);
        let norm = w0.iter().map(|x| x * x).sum::<f64>().sqrt();
        for i in 0..n {
            let want = w0[i] * 2.0 / norm * (1.0 - lr * 0.1 * wd_mult) - lr * o[i];
            assert!((w[i] - want).abs() < 1e-14, "{i}: {} vs {want}", w[i]);
            assert!((slots[0][i] - m1[i]).abs() < 1e-15);
        }
        // a bias: Nesterov with fallback_mu and coupled decay
        let (mut b, mut bm, mut nb, mut nm) = (vec![0.3, -0.2], vec![vec![0.1, 0.05]], vec![0.3, -0.2], vec![vec![0.1, 0.05]]);
        rule.apply(&mut b, &[2], &mut bm, &[0.4, -0.7], lr, wd_mult, 1, &mut work);
        Update::Nesterov { mu: 0.85, weight_decay: 0.1 }.apply(&mut nb, &[2], &mut nm, &[0.4, -0.7], lr, wd_mult, 1, &mut vec![]);
        assert_eq!((b, bm), (nb, nm));
    }
}
