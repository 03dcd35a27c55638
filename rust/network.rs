//! A network: layers, their weights, the optimizer state, and reusable work buffers.
//! One training step (forward, loss, backward, update) runs here without allocating once
//! the buffers have grown to the batch size.

use crate::conv::Conv;
use crate::dense::Dense;
use crate::error::Result;
use crate::im2col::ConvGeom;
use crate::real::Real;
use crate::spec::{LayerSpec, NetSpec, Reduction};
use crate::threads;
use rayon::prelude::*;

#[derive(Clone, Debug)]
pub enum Layer {
    Conv(Box<Conv>),
    Dense(Dense),
}

impl Layer {
    pub fn in_size(&self) -> usize {
        match self {
            Layer::Conv(c) => c.g.in_size(),
            Layer::Dense(d) => d.dim_in,
        }
    }
    pub fn out_size(&self) -> usize {
        match self {
            Layer::Conv(c) => c.g.out_size(),
            Layer::Dense(d) => d.neurons,
        }
    }
    /// Shape of the weight array: conv (fx, fy, Z, F), dense (D, O).
    pub fn weight_shape(&self) -> Vec<usize> {
        match self {
            Layer::Conv(c) => vec![c.g.fx, c.g.fy, c.g.z, c.g.filters],
            Layer::Dense(d) => vec![d.dim_in, d.neurons],
        }
    }
    /// Shape of one sample's output: conv (X', Y', F), dense (O,).
    pub fn out_shape(&self) -> Vec<usize> {
        match self {
            Layer::Conv(c) => vec![c.g.ox, c.g.oy, c.g.filters],
            Layer::Dense(d) => vec![d.neurons],
        }
    }
    pub fn act(&self) -> &crate::activator::Activator {
        match self {
            Layer::Conv(c) => &c.act,
            Layer::Dense(d) => &d.act,
        }
    }
}

/// A batch on its way in: floats of the network's precision, or bytes scaled by 1/255.
#[derive(Clone, Copy)]
pub enum Input<'a, T> {
    Float(&'a [T]),
    Bytes(&'a [u8]),
}

impl<T> Input<'_, T> {
    fn len(&self) -> usize {
        match self {
            Input::Float(x) => x.len(),
            Input::Bytes(x) => x.len(),
        }
    }
}

pub struct Network<T: Real> {
    pub spec: NetSpec,
    pub layers: Vec<Layer>,
    pub weights: Vec<Vec<T>>,
    pub state: Vec<Vec<T>>,
    /// Samples the buffers hold.
    cap: usize,
    input: Vec<T>,
    /// Per layer: pre-activations s (kept only where f' needs them), and activations a,
    /// overwritten in the backward pass by the layer's delta once a is no longer needed.
    s: Vec<Vec<T>>,
    a: Vec<Vec<T>>,
    grads: Vec<Vec<T>>,
    partials: Vec<T>,
    /// Transformed conv weights: flipped and transposed for the stride-1 input gradient,
    /// Winograd's G g Gᵀ.
    wt: Vec<T>,
    /// Dense layers' input gradient before the previous activator's f' is applied.
    dense_tmp: Vec<T>,
    row: Vec<T>,
}

impl<T: Real> Network<T> {
    pub fn new(spec: NetSpec) -> Result<Self> {
        if spec.dtype != T::NAME {
            crate::bail!("spec: dtype {:?} given to a {} network", spec.dtype, T::NAME);
        }
        if spec.layers.is_empty() {
            crate::bail!("spec: a network needs at least one layer");
        }
        let mut layers = Vec::new();
        for (i, l) in spec.layers.iter().enumerate() {
            let layer = match *l {
                LayerSpec::Conv { dim_in, padding, field, stride, filters, activator } => Layer::Conv(Box::new(Conv::new(
                    ConvGeom::new(dim_in, padding, field, stride, filters).map_err(|e| crate::error::Error(format!("layer {i}: {e}")))?,
                    activator,
                ))),
                LayerSpec::Dense { dim_in, neurons, activator } => {
                    if dim_in == 0 || neurons == 0 {
                        crate::bail!("layer {i}: dense sizes must be positive");
                    }
                    Layer::Dense(Dense { dim_in, neurons, act: activator })
                }
            };
            if let Some(prev) = layers.last() {
                let prev: &Layer = prev;
                if prev.out_size() != layer.in_size() {
                    crate::bail!("layer {i}: takes {} inputs but layer {} gives {}", layer.in_size(), i - 1, prev.out_size());
                }
                if matches!(prev, Layer::Dense(_)) && matches!(layer, Layer::Conv(_)) {
                    crate::bail!("layer {i}: a convolution cannot follow a dense layer");
                }
            }
            layers.push(layer);
        }
        let sizes: Vec<usize> = layers.iter().map(|l| l.weight_shape().iter().product()).collect();
        let weights = sizes.iter().map(|&n| vec![T::zero(); n]).collect();
        let state = if spec.update.has_state() { sizes.iter().map(|&n| vec![T::zero(); n]).collect() } else { Vec::new() };
        let grads = sizes.iter().map(|&n| vec![T::zero(); n]).collect();
        let nl = layers.len();
        let k = layers[nl - 1].out_size();
        Ok(Network {
            spec,
            layers,
            weights,
            state,
            cap: 0,
            input: Vec::new(),
            s: vec![Vec::new(); nl],
            a: vec![Vec::new(); nl],
            grads,
            partials: Vec::new(),
            wt: Vec::new(),
            dense_tmp: Vec::new(),
            row: vec![T::zero(); k],
        })
    }

    pub fn in_size(&self) -> usize {
        self.layers[0].in_size()
    }
    pub fn out_size(&self) -> usize {
        self.layers[self.layers.len() - 1].out_size()
    }
    pub fn num_weights(&self) -> usize {
        self.weights.iter().map(|w| w.len()).sum()
    }

    fn ensure_capacity(&mut self, n: usize) {
        if n <= self.cap {
            return;
        }
        for (l, layer) in self.layers.iter().enumerate() {
            // pre-activations only where f' cannot be had from the activations
            if !layer.act().from_output() {
                self.s[l].resize(n * layer.out_size(), T::zero());
            }
            self.a[l].resize(n * layer.out_size(), T::zero());
        }
        self.cap = n;
    }

    /// Check sizes, then run `f(self, input, n)` on the batch: floats as they are (no
    /// copy), bytes converted (÷255) into the network's input buffer.
    fn with_input<R: Send>(&mut self, x: Input<T>, t: Option<&[T]>, f: impl FnOnce(&mut Self, &[T], usize) -> R + Send) -> Result<R> {
        let d = self.in_size();
        if x.len() == 0 || !x.len().is_multiple_of(d) {
            crate::bail!("x: expected a non-empty batch of samples of {d} values, got {} values", x.len());
        }
        let n = x.len() / d;
        if let Some(t) = t {
            if t.len() != n * self.out_size() {
                crate::bail!("targets: expected {n} rows of {} values, got {} values", self.out_size(), t.len());
            }
        }
        self.ensure_capacity(n);
        match x {
            Input::Float(v) => Ok(threads::pool().install(|| f(self, v, n))),
            Input::Bytes(v) => {
                let mut buf = std::mem::take(&mut self.input);
                if buf.len() < n * d {
                    buf.resize(n * d, T::zero());
                }
                let scale = T::of(1.0 / 255.0);
                let pool = threads::pool();
                let r = pool.install(|| {
                    buf[..n * d].par_chunks_mut(1 << 14).zip(v.par_chunks(1 << 14)).for_each(|(o, i)| {
                        for (o, &b) in o.iter_mut().zip(i) {
                            *o = T::of(b as f64) * scale;
                        }
                    });
                    f(self, &buf[..n * d], n)
                });
                self.input = buf;
                Ok(r)
            }
        }
    }

    /// Forward through layers 0..=upto; `x` is the batch.
    fn run_forward(&mut self, x: &[T], n: usize, upto: usize) {
        let threads = threads::num_threads();
        for l in 0..=upto {
            let (before, after) = self.a.split_at_mut(l);
            let input: &[T] = if l == 0 { x } else { &before[l - 1] };
            let (s, a, w) = (&mut self.s[l], &mut after[0], &self.weights[l]);
            match &self.layers[l] {
                Layer::Conv(c) => c.forward(input, w, s, a, n, &mut self.wt),
                Layer::Dense(d) => d.forward(input, w, s, a, n, threads),
            }
        }
    }

    /// Σ over samples of the loss; with `grad`, leaves ∂L/∂y (scaled by the reduction)
    /// in the last activation buffer.
    fn loss_sum(&mut self, t: &[T], n: usize, grad: bool) -> f64 {
        let last = self.layers.len() - 1;
        let k = self.out_size();
        let scale = match self.spec.reduction {
            Reduction::Sum => T::one(),
            Reduction::Mean => T::of(1.0 / n as f64),
        };
        let act = *self.layers[last].act();
        let mut total = 0.0;
        for i in 0..n {
            let y = &mut self.a[last][i * k..(i + 1) * k];
            total += self.spec.loss.sample(y, &t[i * k..(i + 1) * k], &mut self.row).f64();
            if grad {
                for (yi, &g) in y.iter_mut().zip(&self.row) {
                    // NeuroFlow's rule: ∂L/∂y ⊙ f'; here already, when f' follows from y
                    let d = if act.from_output() { act.derivative_from_output(*yi) } else { T::one() };
                    *yi = g * scale * d;
                }
            }
        }
        total
    }

    fn reduce(&self, total: f64, n: usize) -> f64 {
        match self.spec.reduction {
            Reduction::Sum => total,
            Reduction::Mean => total / n as f64,
        }
    }

    /// Backward pass from ∂L/∂y in the last activation buffer; gradients into self.grads.
    fn run_backward(&mut self, x: &[T], n: usize) {
        let threads = threads::num_threads();
        for l in (0..self.layers.len()).rev() {
            let size = n * self.layers[l].out_size();
            let (before, after) = self.a.split_at_mut(l);
            let delta = &mut after[0][..size];
            let act = *self.layers[l].act();
            // ∂L/∂a ⊙ f'(s); for activators whose f' follows from a, the step that wrote
            // ∂L/∂a (the loss, or the next layer's input gradient) has applied it already.
            if !act.from_output() {
                let s = &self.s[l][..size];
                delta.par_chunks_mut(1 << 14).zip(s.par_chunks(1 << 14)).for_each(|(d, s)| act.backward(s, d));
            }
            let delta: &[T] = delta;
            // dw reads the previous activations; only then does the input gradient
            // overwrite them (they are not needed again).
            let input: &[T] = if l == 0 { x } else { &before[l - 1] };
            let (w, dw) = (&self.weights[l], &mut self.grads[l]);
            match &self.layers[l] {
                Layer::Conv(c) => c.weight_grad(input, delta, n, dw, &mut self.partials),
                Layer::Dense(d) => d.weight_grad(input, delta, n, dw, threads),
            }
            if l > 0 {
                let dx = &mut before[l - 1][..];
                let prev = *self.layers[l - 1].act();
                let mask = prev.from_output().then_some(&prev);
                match &self.layers[l] {
                    Layer::Conv(c) => c.input_grad(w, delta, n, dx, mask, &mut self.wt),
                    Layer::Dense(d) => d.input_grad(w, delta, n, dx, threads, mask, &mut self.dense_tmp),
                }
            }
        }
    }

    fn update(&mut self, lr: T) {
        let rule = self.spec.update;
        for (l, (w, g)) in self.weights.iter_mut().zip(&self.grads).enumerate() {
            let m: &mut [T] = if rule.has_state() { &mut self.state[l] } else { &mut [] };
            rule.apply(w, m, g, lr);
        }
    }

    // ---- the engine's methods (docs/engine.md) ----

    /// Last layer's activated output, (n, K) flattened.
    pub fn forward(&mut self, x: Input<T>) -> Result<Vec<T>> {
        self.focus(x, self.layers.len() - 1)
    }

    /// Activated output of layer `layer`, (n, out) flattened.
    pub fn focus(&mut self, x: Input<T>, layer: usize) -> Result<Vec<T>> {
        if layer >= self.layers.len() {
            crate::bail!("layer: index {layer} is out of range (the network has {} layers with weights)", self.layers.len());
        }
        let n = self.with_input(x, None, |net, x, n| {
            net.run_forward(x, n, layer);
            n
        })?;
        Ok(self.a[layer][..n * self.layers[layer].out_size()].to_vec())
    }

    /// forward, then probabilities for softmax losses.
    pub fn predict(&mut self, x: Input<T>) -> Result<Vec<T>> {
        let y = self.forward(x)?;
        let k = self.out_size();
        let mut out = vec![T::zero(); y.len()];
        for (o, r) in out.chunks_mut(k).zip(y.chunks(k)) {
            self.spec.loss.output(r, o);
        }
        Ok(out)
    }

    /// The reduced loss.
    pub fn loss(&mut self, x: Input<T>, t: &[T]) -> Result<f64> {
        let last = self.layers.len() - 1;
        self.with_input(x, Some(t), |net, x, n| {
            net.run_forward(x, n, last);
            let total = net.loss_sum(t, n, false);
            net.reduce(total, n)
        })
    }

    /// Gradients of the reduced loss, by backprop. Returns the reduced loss too.
    pub fn gradients(&mut self, x: Input<T>, t: &[T]) -> Result<(f64, Vec<Vec<T>>)> {
        let loss = self.with_input(x, Some(t), |net, x, n| {
            let total = net.backprop(x, t, n);
            net.reduce(total, n)
        })?;
        Ok((loss, self.grads.clone()))
    }

    /// Forward, loss and backward; returns the summed loss.
    fn backprop(&mut self, x: &[T], t: &[T], n: usize) -> f64 {
        self.run_forward(x, n, self.layers.len() - 1);
        let total = self.loss_sum(t, n, true);
        self.run_backward(x, n);
        total
    }

    /// Gradients of the reduced loss by central finite differences with step `delta`
    /// (NeuroFlow's `Approximation`): two forward passes per weight.
    pub fn fd_gradients(&mut self, x: Input<T>, t: &[T], delta: f64) -> Result<(f64, Vec<Vec<T>>)> {
        let last = self.layers.len() - 1;
        let d = T::of(delta);
        let loss = self.with_input(x, Some(t), |net, x, n| {
            let eval = |net: &mut Self| {
                net.run_forward(x, n, last);
                let total = net.loss_sum(t, n, false);
                net.reduce(total, n)
            };
            let loss = eval(net);
            for l in 0..net.weights.len() {
                for i in 0..net.weights[l].len() {
                    let w0 = net.weights[l][i];
                    net.weights[l][i] = w0 + d;
                    let up = eval(net);
                    net.weights[l][i] = w0 - d;
                    let down = eval(net);
                    net.weights[l][i] = w0;
                    net.grads[l][i] = T::of((up - down) / (2.0 * delta));
                }
            }
            loss
        })?;
        Ok((loss, self.grads.clone()))
    }

    /// One training step on a batch; returns the mean per-sample loss before the update.
    /// `approx` = Some(Δ) trains on finite differences instead of backprop.
    pub fn train_step(&mut self, x: Input<T>, t: &[T], lr: f64, approx: Option<f64>) -> Result<f64> {
        if !lr.is_finite() {
            crate::bail!("learning_rate: must be finite, got {lr}");
        }
        let n = x.len() / self.in_size().max(1);
        let total = match approx {
            None => self.with_input(x, Some(t), |net, x, n| net.backprop(x, t, n))?,
            Some(delta) => self.fd_gradients(x, t, delta)?.0 * self.unreduce(n),
        };
        self.update(T::of(lr));
        Ok(total / n as f64)
    }

    fn unreduce(&self, n: usize) -> f64 {
        match self.spec.reduction {
            Reduction::Sum => 1.0,
            Reduction::Mean => n as f64,
        }
    }

    pub fn set_weights(&mut self, w: Vec<Vec<T>>) -> Result<()> {
        Self::check_like(&self.weights, &w, "weights")?;
        self.weights = w;
        Ok(())
    }

    pub fn set_state(&mut self, m: Vec<Vec<T>>) -> Result<()> {
        Self::check_like(&self.state, &m, "state")?;
        self.state = m;
        Ok(())
    }

    fn check_like(have: &[Vec<T>], new: &[Vec<T>], what: &str) -> Result<()> {
        if have.len() != new.len() {
            crate::bail!("{what}: expected {} arrays, got {}", have.len(), new.len());
        }
        for (i, (h, n)) in have.iter().zip(new).enumerate() {
            if h.len() != n.len() {
                crate::bail!("{what}[{i}]: expected {} values, got {}", h.len(), n.len());
            }
            if n.iter().any(|v| !v.is_finite()) {
                crate::bail!("{what}[{i}]: contains NaN or infinity");
            }
        }
        Ok(())
    }
}
