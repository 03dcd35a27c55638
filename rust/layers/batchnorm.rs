//! Batch normalisation over the last dimension (channels), then the layer's activator.
//! Train mode normalises by the batch's statistics (and, in a training step, moves the
//! running ones, PyTorch's momentum convention); eval mode by the running statistics.
//! Sums run in f64 over a fixed grouping of rows: the same result for any thread count.

use super::{own_fprime, reserve, Ctx, Layer, Mode, Slot, Tensors, XDx};
use crate::simd::simd_fn;
use crate::activator::Activator;
use crate::real::Real;
use crate::spec::{Kind, LayerSpec};
use rayon::prelude::*;

pub struct BatchNorm<T> {
    spec: LayerSpec,
    slot: Slot,
    momentum: f64,
    eps: f64,
    scale: bool,
    shift: bool,
    act: Activator,
    channels: usize,
    /// Per channel: the mean and 1/√(σ² + eps) the last forward normalised with.
    mean: Vec<f64>,
    inv_std: Vec<f64>,
    /// The number of values per channel the statistics were taken over (all processes'
    /// when synchronised).
    count: f64,
    /// Kept when f′ does not follow from the output: the pre-activations, or, after a
    /// training forward pass (`fprime_kept`), f′ of them.
    s: Vec<T>,
    fprime_kept: bool,
}

/// Rows per parallel chunk of the elementwise passes.
const ROWS: usize = 64;

impl<T: Real> BatchNorm<T> {
    pub fn new(spec: &LayerSpec, slot: Slot) -> Self {
        let Kind::Batchnorm { momentum, eps, scale, shift, activator } = spec.kind else { unreachable!() };
        let channels = *spec.dim_in.last().unwrap();
        BatchNorm {
            spec: spec.clone(),
            slot,
            momentum,
            eps,
            scale,
            shift,
            act: activator,
            channels,
            mean: vec![0.0; channels],
            inv_std: vec![0.0; channels],
            count: 0.0,
            s: Vec::new(),
            fprime_kept: false,
        }
    }

    /// (scale, shift) per channel as the parameters say (1 and 0 where turned off).
    fn affine(&self, params: &[Vec<T>]) -> (Vec<f64>, Vec<f64>) {
        let c = self.channels;
        let mut i = self.slot.param;
        let mut take = |on: bool, default: f64| {
            if on {
                i += 1;
                params[i - 1].iter().map(|v| v.f64()).collect()
            } else {
                vec![default; c]
            }
        };
        let scale = take(self.scale, 1.0);
        let shift = take(self.shift, 0.0);
        (scale, shift)
    }

    /// The batch's per-channel mean and biased variance of `x` (`rows` rows), summed
    /// relative to the first row so that a large mean costs no precision.
    fn batch_stats(&self, x: &[T], rows: usize) -> (Vec<f64>, Vec<f64>) {
        let c = self.channels;
        let origin: Vec<f64> = x[..c].iter().map(|v| v.f64()).collect();
        let (s, q) = channel_sums(rows, c, |r, s, q| shifted_sums(&x[r * c..(r + 1) * c], &origin, s, q));
        let m = rows as f64;
        let mean = s.iter().zip(&origin).map(|(s, o)| o + s / m).collect();
        let var = s.iter().zip(&q).map(|(s, q)| (q / m - (s / m).powi(2)).max(0.0)).collect();
        (mean, var)
    }

    /// Synchronised BatchNorm: the per-channel mean and biased variance over the values of
    /// every process (two passes, each summed across processes), and their count.
    fn global_stats(&self, sync: &dyn super::Collective, x: &[T], rows: usize) -> (Vec<f64>, Vec<f64>, f64) {
        let c = self.channels;
        let zeros = vec![0.0; c];
        let (s, _) = channel_sums(rows, c, |r, s, q| shifted_sums(&x[r * c..(r + 1) * c], &zeros, s, q));
        let mut buf: Vec<f64> = s.iter().copied().chain([rows as f64]).collect();
        sync.sum(&mut buf);
        let m = buf[c];
        let mean: Vec<f64> = buf[..c].iter().map(|s| s / m).collect();
        let (_, mut sq) = channel_sums(rows, c, |r, s, q| shifted_sums(&x[r * c..(r + 1) * c], &mean, s, q));
        sync.sum(&mut sq);
        let var = sq.iter().map(|s| s / m).collect();
        (mean, var, m)
    }
}

/// Per-channel sums (Σa, Σb) over `rows` rows in f64, in a fixed grouping (the same result
/// for any thread count): `f(row, a, b)` adds one row's terms.
fn channel_sums(rows: usize, c: usize, f: impl Fn(usize, &mut [f64], &mut [f64]) + Sync) -> (Vec<f64>, Vec<f64>) {
    let groups = rows.clamp(1, super::GROUPS);
    let parts: Vec<(Vec<f64>, Vec<f64>)> = (0..groups)
        .into_par_iter()
        .map(|gi| {
            let (mut a, mut b) = (vec![0.0; c], vec![0.0; c]);
            for r in gi * rows / groups..(gi + 1) * rows / groups {
                f(r, &mut a, &mut b);
            }
            (a, b)
        })
        .collect();
    let (mut a, mut b) = (vec![0.0; c], vec![0.0; c]);
    for (pa, pb) in &parts {
        a.iter_mut().zip(pa).for_each(|(x, y)| *x += y);
        b.iter_mut().zip(pb).for_each(|(x, y)| *x += y);
    }
    (a, b)
}

// The per-element passes of batch normalisation, vectorised over a row of channels (AVX2
// where the CPU has it).
simd_fn! {
    /// s += x − o, q += (x − o)² for one row.
    fn shifted_sums<T: Real>(x: &[T], o: &[f64], s: &mut [f64], q: &mut [f64]) {
        for (((&v, &o), s), q) in x.iter().zip(o).zip(s.iter_mut()).zip(q.iter_mut()) {
            let d = v.f64() - o;
            *s += d;
            *q += d * d;
        }
    }
}

simd_fn! {
    /// s += g, q += g·(x − μ)/σ for one row.
    fn grad_sums<T: Real>(x: &[T], g: &[T], mean: &[f64], inv: &[f64], s: &mut [f64], q: &mut [f64]) {
        for (i, (s, q)) in s.iter_mut().zip(q.iter_mut()).enumerate() {
            let gv = g[i].f64();
            *s += gv;
            *q += gv * (x[i].f64() - mean[i]) * inv[i];
        }
    }
}

simd_fn! {
    /// out = (x − μ)·a + b over rows of channels.
    fn normalise<T: Real>(x: &[T], mu: &[T], a: &[T], b: &[T], out: &mut [T]) {
        let c = mu.len();
        for (o, x) in out.chunks_exact_mut(c).zip(x.chunks_exact(c)) {
            for ch in 0..c {
                o[ch] = (x[ch] - mu[ch]) * a[ch] + b[ch];
            }
        }
    }
}

simd_fn! {
    /// dx = k·(g − g0 − (x − μ)·g1) over rows of channels.
    fn input_grad<T: Real>(g: &[T], x: &[T], k: &[T], g0: &[T], g1: &[T], mu: &[T], dx: &mut [T]) {
        let c = mu.len();
        for ((d, g), x) in dx.chunks_exact_mut(c).zip(g.chunks_exact(c)).zip(x.chunks_exact(c)) {
            for ch in 0..c {
                d[ch] = k[ch] * (g[ch] - g0[ch] - (x[ch] - mu[ch]) * g1[ch]);
            }
        }
    }
}

impl<T: Real> Layer<T> for BatchNorm<T> {
    fn spec(&self) -> &LayerSpec {
        &self.spec
    }

    fn reserve(&mut self, n: usize, what: &str) -> crate::Result<()> {
        if !self.act.from_output() {
            reserve(&mut self.s, n, self.spec.in_size(), what, "pre-activations")?;
        }
        Ok(())
    }

    fn release(&mut self) {
        self.s = Vec::new();
    }

    fn forward(&mut self, cx: &Ctx, x: &[T], y: &mut [T], t: &mut Tensors<'_, T>) {
        let c = self.channels;
        let len = cx.n * self.spec.in_size();
        let rows = len / c;
        let st = self.slot.state;
        if cx.mode.train() {
            let (mean, var, count) = match &cx.sync {
                None => {
                    let (mean, var) = self.batch_stats(&x[..len], rows);
                    (mean, var, rows as f64)
                }
                Some(sync) => self.global_stats(&**sync, &x[..len], rows),
            };
            self.count = count;
            if cx.mode == (Mode::Train { update_state: true }) {
                let m = self.momentum;
                let unbias = if count > 1.0 { count / (count - 1.0) } else { 1.0 };
                let (rm, rv) = t.state[st..st + 2].split_at_mut(1);
                for ch in 0..c {
                    rm[0][ch] = T::of((1.0 - m) * rm[0][ch].f64() + m * mean[ch]);
                    rv[0][ch] = T::of((1.0 - m) * rv[0][ch].f64() + m * var[ch] * unbias);
                }
            }
            self.inv_std = var.iter().map(|v| 1.0 / (v + self.eps).sqrt()).collect();
            self.mean = mean;
        } else {
            self.mean = t.state[st].iter().map(|v| v.f64()).collect();
            self.inv_std = t.state[st + 1].iter().map(|v| 1.0 / (v.f64() + self.eps).sqrt()).collect();
        }
        // y = (x − μ)·(scale/σ) + shift
        let (scale, shift) = self.affine(t.params);
        let a: Vec<T> = (0..c).map(|ch| T::of(scale[ch] * self.inv_std[ch])).collect();
        let mu: Vec<T> = self.mean.iter().map(|&m| T::of(m)).collect();
        let b: Vec<T> = shift.iter().map(|&v| T::of(v)).collect();
        let normalise = |out: &mut [T], x: &[T]| normalise(x, &mu, &a, &b, out);
        let act = self.act;
        // training with an f′ that needs the pre-activations: keep f′ instead of them
        self.fprime_kept = cx.mode.train() && !act.from_output();
        let keep = self.fprime_kept;
        if act.from_output() {
            y[..len].par_chunks_mut(ROWS * c).zip(x[..len].par_chunks(ROWS * c)).for_each(|(o, x)| {
                normalise(o, x);
                act.forward_inplace(o);
            });
        } else {
            let s = &mut self.s[..len];
            s.par_chunks_mut(ROWS * c).zip(y[..len].par_chunks_mut(ROWS * c)).zip(x[..len].par_chunks(ROWS * c)).for_each(|((s, o), x)| {
                normalise(s, x);
                act.forward_keeping(s, o, keep);
            });
        }
    }

    fn backward(&mut self, cx: &Ctx, io: XDx<'_, T>, dy: &mut [T], y: Option<&[T]>, folded: bool, t: &mut Tensors<'_, T>) {
        let XDx::Separate(x, dx) = io else { unreachable!("batchnorm writes its input gradient apart") };
        let c = self.channels;
        let len = cx.n * self.spec.in_size();
        let rows = len / c;
        own_fprime(&self.act, &mut dy[..len], y.map(|y| &y[..len]), &self.s, folded, self.fprime_kept);
        let (mean, inv) = (&self.mean, &self.inv_std);
        let (s0, s1) = channel_sums(rows, c, |r, s, q| grad_sums(&x[r * c..(r + 1) * c], &dy[r * c..(r + 1) * c], mean, inv, s, q));
        let mut sums: Vec<[f64; 2]> = s0.iter().zip(&s1).map(|(&a, &b)| [a, b]).collect();
        let mut i = self.slot.param;
        if self.scale {
            for (d, s) in t.grads[i].iter_mut().zip(&sums) {
                *d = T::of(s[1]);
            }
            i += 1;
        }
        if self.shift {
            for (d, s) in t.grads[i].iter_mut().zip(&sums) {
                *d = T::of(s[0]);
            }
        }
        let Some(dx) = dx else { return };
        // ∂x = scale/σ · (g − Σg/M − x̂·Σg·x̂/M), x̂ = (x − μ)/σ; synchronised: the sums and M
        // of every process (the parameter gradients above stay this process's share)
        if let Some(sync) = &cx.sync {
            let mut buf: Vec<f64> = sums.iter().flat_map(|s| *s).collect();
            sync.sum(&mut buf);
            for (s, b) in sums.iter_mut().zip(buf.chunks_exact(2)) {
                *s = [b[0], b[1]];
            }
        }
        let (scale, _) = self.affine(t.params);
        let m = if cx.sync.is_some() { self.count } else { rows as f64 };
        let k: Vec<T> = (0..c).map(|ch| T::of(scale[ch] * inv[ch])).collect();
        let g0: Vec<T> = sums.iter().map(|s| T::of(s[0] / m)).collect();
        let g1: Vec<T> = (0..c).map(|ch| T::of(inv[ch] * sums[ch][1] / m)).collect();
        let mu: Vec<T> = mean.iter().map(|&v| T::of(v)).collect();
        let dy: &[T] = dy;
        dx[..len]
            .par_chunks_mut(ROWS * c)
            .zip(dy[..len].par_chunks(ROWS * c))
            .zip(x[..len].par_chunks(ROWS * c))
            .for_each(|((d, g), x)| input_grad(g, x, &k, &g0, &g1, &mu, d));
    }

    fn foldable(&self) -> Option<Activator> {
        self.act.from_output().then_some(self.act)
    }
}
