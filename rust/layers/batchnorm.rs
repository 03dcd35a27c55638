//! Batch normalisation over the last dimension (channels), then the layer's activator.
//! Train mode normalises by the batch's statistics (and, in a training step, moves the
//! running ones, PyTorch's momentum convention); eval mode by the running statistics.
//! Sums run in f64 over a fixed grouping of rows: the same result for any thread count.

use super::{column_sums, grown, own_fprime, Ctx, Layer, Mode, Slot, Tensors, XDx};
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
    /// Pre-activations, kept when f′ does not follow from the output.
    s: Vec<T>,
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
        let mut sums = vec![[0.0f64; 2]; c];
        column_sums::<T, 2>(rows, c, &mut sums, |r, part| {
            for ((p, &v), &o) in part.iter_mut().zip(&x[r * c..(r + 1) * c]).zip(&origin) {
                let d = v.f64() - o;
                p[0] += d;
                p[1] += d * d;
            }
        });
        let m = rows as f64;
        let mean = sums.iter().zip(&origin).map(|(s, o)| o + s[0] / m).collect();
        let var = sums.iter().map(|s| (s[1] / m - (s[0] / m).powi(2)).max(0.0)).collect();
        (mean, var)
    }

    /// Synchronised BatchNorm: the per-channel mean and biased variance over the values of
    /// every process (two passes, each summed across processes), and their count.
    fn global_stats(&self, sync: &dyn super::Collective, x: &[T], rows: usize) -> (Vec<f64>, Vec<f64>, f64) {
        let c = self.channels;
        let mut sums = vec![[0.0f64; 1]; c];
        column_sums::<T, 1>(rows, c, &mut sums, |r, part| {
            for (p, &v) in part.iter_mut().zip(&x[r * c..(r + 1) * c]) {
                p[0] += v.f64();
            }
        });
        let mut buf: Vec<f64> = sums.iter().map(|s| s[0]).chain([rows as f64]).collect();
        sync.sum(&mut buf);
        let m = buf[c];
        let mean: Vec<f64> = buf[..c].iter().map(|s| s / m).collect();
        column_sums::<T, 1>(rows, c, &mut sums, |r, part| {
            for ((p, &v), &mu) in part.iter_mut().zip(&x[r * c..(r + 1) * c]).zip(&mean) {
                let d = v.f64() - mu;
                p[0] += d * d;
            }
        });
        let mut sq: Vec<f64> = sums.iter().map(|s| s[0]).collect();
        sync.sum(&mut sq);
        let var = sq.iter().map(|s| s / m).collect();
        (mean, var, m)
    }
}

impl<T: Real> Layer<T> for BatchNorm<T> {
    fn spec(&self) -> &LayerSpec {
        &self.spec
    }

    fn reserve(&mut self, n: usize) {
        if !self.act.from_output() {
            grown(&mut self.s, n * self.spec.in_size());
        }
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
        let normalise = |out: &mut [T], x: &[T]| {
            for (o, x) in out.chunks_exact_mut(c).zip(x.chunks_exact(c)) {
                for ch in 0..c {
                    o[ch] = (x[ch] - mu[ch]) * a[ch] + b[ch];
                }
            }
        };
        let act = self.act;
        if act.from_output() {
            y[..len].par_chunks_mut(ROWS * c).zip(x[..len].par_chunks(ROWS * c)).for_each(|(o, x)| {
                normalise(o, x);
                act.forward_inplace(o);
            });
        } else {
            let s = &mut self.s[..len];
            s.par_chunks_mut(ROWS * c).zip(y[..len].par_chunks_mut(ROWS * c)).zip(x[..len].par_chunks(ROWS * c)).for_each(|((s, o), x)| {
                normalise(s, x);
                act.forward(s, o);
            });
        }
    }

    fn backward(&mut self, cx: &Ctx, io: XDx<'_, T>, dy: &mut [T], y: Option<&[T]>, folded: bool, t: &mut Tensors<'_, T>) {
        let XDx::Separate(x, dx) = io else { unreachable!("batchnorm writes its input gradient apart") };
        let c = self.channels;
        let len = cx.n * self.spec.in_size();
        let rows = len / c;
        own_fprime(&self.act, &mut dy[..len], y.map(|y| &y[..len]), &self.s, folded);
        let (mean, inv) = (&self.mean, &self.inv_std);
        let mut sums = vec![[0.0f64; 2]; c];
        column_sums::<T, 2>(rows, c, &mut sums, |r, part| {
            let (xr, gr) = (&x[r * c..(r + 1) * c], &dy[r * c..(r + 1) * c]);
            for ch in 0..c {
                let g = gr[ch].f64();
                part[ch][0] += g;
                part[ch][1] += g * (xr[ch].f64() - mean[ch]) * inv[ch];
            }
        });
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
        dx[..len].par_chunks_mut(ROWS * c).zip(dy[..len].par_chunks(ROWS * c)).zip(x[..len].par_chunks(ROWS * c)).for_each(|((d, g), x)| {
            for ((d, g), x) in d.chunks_exact_mut(c).zip(g.chunks_exact(c)).zip(x.chunks_exact(c)) {
                for ch in 0..c {
                    d[ch] = k[ch] * (g[ch] - g0[ch] - (x[ch] - mu[ch]) * g1[ch]);
                }
            }
        });
    }

    fn foldable(&self) -> Option<Activator> {
        self.act.from_output().then_some(self.act)
    }
}
