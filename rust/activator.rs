//! Activators, each applied as f(s + bias) with a fixed bias, as NeuroFlow's `f.biased(b)`.

use crate::real::Real;
use crate::simd::simd_fn;
use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ActKind {
    Relu,
    LeakyRelu,
    Sigmoid,
    Tanh,
    Linear,
    Softplus,
    Square,
    Gelu,
}

#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Activator {
    pub name: ActKind,
    /// Slope for x < 0 (leaky_relu only).
    #[serde(default)]
    pub alpha: f64,
    #[serde(default)]
    pub bias: f64,
}

/// GELU x·Φ(x).
#[inline(always)]
pub fn gelu<T: Real>(x: T) -> T {
    x * x.normal_cdf_pdf().0
}

/// GELU′ = Φ(x) + x·φ(x).
#[inline(always)]
pub fn gelu_grad<T: Real>(x: T) -> T {
    let (c, p) = x.normal_cdf_pdf();
    c + x * p
}

/// σ(x) without overflow for large |x| in either direction.
#[inline(always)]
pub fn sigmoid<T: Real>(x: T) -> T {
    if x >= T::zero() {
        T::one() / (T::one() + (-x).exp())
    } else {
        let e = x.exp();
        e / (T::one() + e)
    }
}

impl Activator {
    pub fn new(name: ActKind) -> Self {
        Activator { name, alpha: 0.0, bias: 0.0 }
    }

    /// f(s + bias).
    #[inline(always)]
    pub fn apply<T: Real>(&self, s: T) -> T {
        let x = s + T::of(self.bias);
        match self.name {
            ActKind::Relu => x.max(T::zero()),
            ActKind::LeakyRelu => {
                if x > T::zero() {
                    x
                } else {
                    T::of(self.alpha) * x
                }
            }
            ActKind::Sigmoid => sigmoid(x),
            ActKind::Tanh => x.tanh(),
            ActKind::Linear => x,
            // max(x, 0) + log(1 + e^-|x|): never overflows, exact for large |x|.
            ActKind::Softplus => x.max(T::zero()) + (-x.abs()).exp().ln_1p(),
            ActKind::Square => x * x,
            ActKind::Gelu => gelu(x),
        }
    }

    /// f'(s + bias).
    #[inline(always)]
    pub fn derivative<T: Real>(&self, s: T) -> T {
        let x = s + T::of(self.bias);
        match self.name {
            ActKind::Relu => {
                if x > T::zero() {
                    T::one()
                } else {
                    T::zero()
                }
            }
            ActKind::LeakyRelu => {
                if x > T::zero() {
                    T::one()
                } else {
                    T::of(self.alpha)
                }
            }
            ActKind::Sigmoid => {
                let s = sigmoid(x);
                s * (T::one() - s)
            }
            ActKind::Tanh => {
                let t = x.tanh();
                T::one() - t * t
            }
            ActKind::Linear => T::one(),
            ActKind::Softplus => sigmoid(x),
            ActKind::Square => T::of(2.0) * x,
            ActKind::Gelu => gelu_grad(x),
        }
    }

    /// Can f' be computed from the output a = f(s + bias) alone? Then the network keeps
    /// only a (no pre-activations) and folds f' into the gradient that overwrites a.
    /// Not for Square (a = x² loses x's sign), GELU (not monotone) nor a LeakyReLU with α < 0.
    pub fn from_output(&self) -> bool {
        match self.name {
            ActKind::Square | ActKind::Gelu => false,
            ActKind::LeakyRelu => self.alpha >= 0.0,
            _ => true,
        }
    }

    /// f'(s + bias) given a = f(s + bias) (see `from_output`).
    #[inline(always)]
    pub fn derivative_from_output<T: Real>(&self, a: T) -> T {
        match self.name {
            ActKind::Relu => {
                if a > T::zero() {
                    T::one()
                } else {
                    T::zero()
                }
            }
            ActKind::LeakyRelu => {
                if a > T::zero() {
                    T::one()
                } else {
                    T::of(self.alpha)
                }
            }
            ActKind::Sigmoid => a * (T::one() - a),
            ActKind::Tanh => T::one() - a * a,
            ActKind::Linear => T::one(),
            // a = log(1 + eˣ) ⇒ σ(x) = 1 − e⁻ᵃ, computed without cancellation for small a
            ActKind::Softplus => -(-a).exp_m1(),
            ActKind::Square | ActKind::Gelu => unreachable!("f' of {:?} does not follow from its output", self.name),
        }
    }

    /// out = grad ⊙ f'(a) where `out` holds a on entry (the gradient overwrites the
    /// activation it no longer needs).
    pub fn mask_into<T: Real>(&self, grad: &[T], out: &mut [T]) {
        debug_assert_eq!(grad.len(), out.len());
        mask_into(self, grad, out);
    }

    /// v = f(v + bias) in place.
    pub fn forward_inplace<T: Real>(&self, v: &mut [T]) {
        forward_inplace(self, v);
    }

    /// a = f(s + bias), and f′(s + bias) in place of s: the forward pass of a training step
    /// for an activator whose f′ needs s (see `from_output`). The backward pass then
    /// multiplies by the kept f′ (`times`) instead of recomputing it, and GELU's Φ and φ are
    /// computed once, for both. The same numbers as `forward` then `backward`.
    pub fn forward_keep_fprime<T: Real>(&self, s: &mut [T], a: &mut [T]) {
        debug_assert_eq!(s.len(), a.len());
        forward_keep_fprime(self, s, a);
    }

    /// `forward_keep_fprime` when `keep_fprime` (a training pass), else `forward`.
    pub fn forward_keeping<T: Real>(&self, s: &mut [T], a: &mut [T], keep_fprime: bool) {
        if keep_fprime {
            self.forward_keep_fprime(s, a);
        } else {
            self.forward(s, a);
        }
    }

    /// a = f(s + bias), elementwise. The match sits outside the loop so each arm vectorises.
    pub fn forward<T: Real>(&self, s: &[T], a: &mut [T]) {
        debug_assert_eq!(s.len(), a.len());
        forward(self, s, a);
    }

    /// delta = grad ⊙ f'(s + bias), in place on `grad`.
    pub fn backward<T: Real>(&self, s: &[T], grad: &mut [T]) {
        debug_assert_eq!(s.len(), grad.len());
        backward(self, s, grad);
    }
}

simd_fn! {
    fn forward<T: Real>(act: &Activator, s: &[T], a: &mut [T]) {
        macro_rules! each {
            ($f:expr) => {
                for (o, &v) in a.iter_mut().zip(s) {
                    *o = $f(v);
                }
            };
        }
        let b = T::of(act.bias);
        match act.name {
            ActKind::Relu => each!(|v: T| (v + b).max(T::zero())),
            ActKind::Linear => each!(|v: T| v + b),
            ActKind::Gelu => each!(|v: T| gelu(v + b)),
            _ => each!(|v: T| act.apply(v)),
        }
    }
}

simd_fn! {
    fn forward_keep_fprime<T: Real>(act: &Activator, s: &mut [T], a: &mut [T]) {
        let b = T::of(act.bias);
        match act.name {
            ActKind::Gelu => {
                for (v, o) in s.iter_mut().zip(a.iter_mut()) {
                    let x = *v + b;
                    let (c, p) = x.normal_cdf_pdf();
                    *o = x * c;
                    *v = c + x * p;
                }
            }
            _ => {
                for (v, o) in s.iter_mut().zip(a.iter_mut()) {
                    *o = act.apply(*v);
                    *v = act.derivative(*v);
                }
            }
        }
    }
}

simd_fn! {
    /// g = g ⊙ f′ where f′ was kept by `forward_keep_fprime`.
    pub fn times<T: Real>(fprime: &[T], g: &mut [T]) {
        for (g, &d) in g.iter_mut().zip(fprime) {
            *g *= d;
        }
    }
}

simd_fn! {
    fn backward<T: Real>(act: &Activator, s: &[T], grad: &mut [T]) {
        let b = T::of(act.bias);
        match act.name {
            // a select, not a branch, so that it vectorises
            ActKind::Relu => {
                for (g, &v) in grad.iter_mut().zip(s) {
                    *g = if v + b > T::zero() { *g } else { T::zero() };
                }
            }
            ActKind::Linear => {}
            ActKind::Gelu => {
                for (g, &v) in grad.iter_mut().zip(s) {
                    *g *= gelu_grad(v + b);
                }
            }
            _ => {
                for (g, &v) in grad.iter_mut().zip(s) {
                    *g *= act.derivative(v);
                }
            }
        }
    }
}

// The two passes over whole maps that every training step makes, in AVX2 where the CPU
// has it (the wheel's baseline is SSE2).
simd_fn! {
    fn mask_into<T: Real>(act: &Activator, grad: &[T], out: &mut [T]) {
        match act.name {
            ActKind::Relu => {
                for (o, &g) in out.iter_mut().zip(grad) {
                    *o = if *o > T::zero() { g } else { T::zero() };
                }
            }
            ActKind::Linear => out.copy_from_slice(grad),
            _ => {
                for (o, &g) in out.iter_mut().zip(grad) {
                    *o = g * act.derivative_from_output(*o);
                }
            }
        }
    }
}

simd_fn! {
    fn forward_inplace<T: Real>(act: &Activator, v: &mut [T]) {
        let b = T::of(act.bias);
        match act.name {
            ActKind::Relu => v.iter_mut().for_each(|x| *x = (*x + b).max(T::zero())),
            ActKind::Linear => v.iter_mut().for_each(|x| *x += b),
            ActKind::Gelu => v.iter_mut().for_each(|x| *x = gelu(*x + b)),
            _ => v.iter_mut().for_each(|x| *x = act.apply(*x)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: [ActKind; 8] = [
        ActKind::Relu,
        ActKind::LeakyRelu,
        ActKind::Sigmoid,
        ActKind::Tanh,
        ActKind::Linear,
        ActKind::Softplus,
        ActKind::Square,
        ActKind::Gelu,
    ];

    #[test]
    fn derivative_matches_central_differences() {
        for kind in ALL {
            let act = Activator { name: kind, alpha: 0.07, bias: 0.3 };
            for &s in &[-2.7f64, -0.9, -0.05, 0.41, 1.3, 3.9] {
                let h = 1e-6;
                let fd = (act.apply(s + h) - act.apply(s - h)) / (2.0 * h);
                let d = act.derivative(s);
                assert!((fd - d).abs() <= 1e-6 * (1.0 + d.abs()), "{kind:?} at {s}: fd {fd} vs {d}");
            }
        }
    }

    #[test]
    fn derivative_from_output_matches() {
        for kind in ALL {
            let act = Activator { name: kind, alpha: 0.07, bias: 0.3 };
            if !act.from_output() {
                continue;
            }
            for &s in &[-30.0f64, -2.7, -0.9, -0.05, 0.41, 1.3, 3.9, 25.0] {
                let (want, got) = (act.derivative(s), act.derivative_from_output(act.apply(s)));
                assert!((want - got).abs() <= 1e-12 * (1.0 + want.abs()) || (want - got).abs() <= 1e-9 * want.abs().max(1e-300), "{kind:?} at {s}: {got} vs {want}");
            }
        }
        assert!(!Activator::new(ActKind::Square).from_output());
    }

    #[test]
    fn leaky_relu_is_leaky() {
        let act = Activator { name: ActKind::LeakyRelu, alpha: 0.1, bias: 0.0 };
        assert_eq!(act.apply(-2.0f64), -0.2);
        assert_eq!(act.derivative(-2.0f64), 0.1);
        assert_eq!(act.apply(3.0f64), 3.0);
    }

    #[test]
    fn sigmoid_and_softplus_stable_at_extremes() {
        for &x in &[-1000.0f32, -100.0, 100.0, 1000.0] {
            for kind in [ActKind::Sigmoid, ActKind::Softplus] {
                let act = Activator::new(kind);
                assert!(act.apply(x).is_finite() && act.derivative(x).is_finite(), "{kind:?} {x}");
            }
        }
        assert_eq!(Activator::new(ActKind::Softplus).apply(1000.0f32), 1000.0);
        assert_eq!(Activator::new(ActKind::Sigmoid).apply(-1000.0f64), 0.0);
    }

    #[test]
    fn slices_agree_with_scalars() {
        let s: Vec<f64> = (0..50).map(|i| (i as f64 - 25.0) * 0.173).collect();
        for kind in ALL {
            let act = Activator { name: kind, alpha: 0.2, bias: -0.4 };
            let mut a = vec![f64::NAN; s.len()];
            act.forward(&s, &mut a);
            let mut g: Vec<f64> = s.iter().map(|v| 1.5 - v).collect();
            let g0 = g.clone();
            act.backward(&s, &mut g);
            for i in 0..s.len() {
                assert_eq!(a[i], act.apply(s[i]));
                assert!((g[i] - g0[i] * act.derivative(s[i])).abs() < 1e-12);
            }
        }
    }
}
