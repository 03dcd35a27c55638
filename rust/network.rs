//! A network: its layers (a `Sequence`), their parameters, gradients and state, the
//! optimizer's slots and step, and the engine's methods (docs/engine.md). A training step
//! (forward, loss, backward, update) allocates nothing once the buffers have grown to the
//! batch.

use crate::data::{Augment, Convert, Dataset};
use crate::alloc;
use crate::error::Result;
use crate::layers::{Ctx, Mode, Sequence, Slot, Tensors};
use crate::layout;
use crate::real::Real;
use crate::spec::{NetSpec, Reduction};
use crate::threads;
use rayon::prelude::*;

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

/// A tensor's full name (e.g. "res3.c0.weight") and shape.
pub type Info = (String, Vec<usize>);

pub struct Network<T: Real> {
    pub spec: NetSpec,
    seq: Sequence<T>,
    pub params: Vec<Vec<T>>,
    grads: Vec<Vec<T>>,
    pub state: Vec<Vec<T>>,
    /// The update rule's slots, parameter-major: parameter i's slot j at i·slots + j.
    pub slots: Vec<Vec<T>>,
    /// Updates done (Adam's t; the dropout masks' step).
    pub step: u64,
    pub param_info: Vec<Info>,
    pub state_info: Vec<Info>,
    mults: Vec<(f64, f64)>,
    /// The frozen prefix (docs/engine.md, "Frozen parameters"): the first top-level layer
    /// with a trained parameter (lr_mult > 0). A training pass stops its backward there.
    trained_from: usize,
    input: Vec<T>,
    /// Targets gathered from a data set.
    targets: Vec<T>,
    row: Vec<T>,
    /// The update rule's scratch (Muon's), kept between steps.
    work: Vec<T>,
    /// A data-parallel shard in flight (`backward`): the global batch size the loss is
    /// reduced over (None: the call's own) and the shard's first position in that batch.
    shard: (Option<usize>, usize),
    /// Synchronised BatchNorm's sums across processes, during a `backward` that asks for it.
    sync: Option<std::sync::Arc<dyn crate::layers::Collective>>,
}

impl<T: Real> Network<T> {
    /// A network for `spec`; resolved shapes in it, if any, must be the ones `layout`
    /// computes.
    pub fn new(spec: NetSpec) -> Result<Self> {
        if spec.dtype != T::NAME {
            crate::bail!("spec: dtype {:?} given to a {} network", spec.dtype, T::NAME);
        }
        let mut fresh = spec.clone();
        for l in &mut fresh.layers {
            clear(l);
        }
        let resolved = layout::resolve(fresh)?;
        if spec.layers.iter().any(|l| !l.dim_out.is_empty()) && resolved.layers != spec.layers {
            crate::bail!("spec: the resolved shapes in the spec are not those of its layout (resolve it with neuroflow._core.resolve)");
        }
        let spec = resolved;
        let (mut seq, _) = Sequence::new(&spec.layers, Slot::default())?;
        let (mut param_info, mut state_info, mut mults, mut params, mut grads, mut slots, mut state) = (vec![], vec![], vec![], vec![], vec![], vec![], vec![]);
        let mut uid = 0;
        // every tensor allocated fallibly, sizes checked: a layout or model file beyond
        // memory is refused with the layer and the bytes named
        walk(&spec.layers, "", &mut |prefix, l| {
            let what = crate::layers::label(uid, l);
            uid += 1;
            for p in &l.params {
                let len = alloc::size(&p.shape, || format!("{what}: {}", p.name))?;
                param_info.push((format!("{prefix}{}.{}", l.name, p.name), p.shape.clone()));
                mults.push((p.lr_mult, p.wd_mult));
                params.push(alloc::zeros(len, || format!("{what}: {}", p.name))?);
                grads.push(alloc::zeros(len, || format!("{what}: {} gradient", p.name))?);
                for s in spec.update.slots() {
                    slots.push(alloc::zeros(len, || format!("{what}: {} optimizer slot {s:?}", p.name))?);
                }
            }
            for s in &l.state {
                let len = alloc::size(&s.shape, || format!("{what}: {}", s.name))?;
                state_info.push((format!("{prefix}{}.{}", l.name, s.name), s.shape.clone()));
                state.push(alloc::filled(len, T::of(s.init), || format!("{what}: {}", s.name))?);
            }
            Ok(())
        })?;
        let trained_from = frozen_prefix(&spec.layers);
        let k = seq.out_size();
        // the buffers of one sample now: a net that cannot hold one is refused when built
        seq.reserve(1)?;
        let row = alloc::zeros(k, || "the loss's output row".into())?;
        Ok(Network {
            spec,
            seq,
            params,
            grads,
            state,
            slots,
            step: 0,
            param_info,
            state_info,
            mults,
            trained_from,
            input: Vec::new(),
            targets: Vec::new(),
            row,
            work: Vec::new(),
            shard: (None, 0),
            sync: None,
        })
    }

    pub fn in_size(&self) -> usize {
        self.spec.input.iter().product()
    }
    pub fn out_size(&self) -> usize {
        self.seq.out_size()
    }
    pub fn num_params(&self) -> usize {
        self.params.iter().map(|w| w.len()).sum()
    }
    /// Layers in pre-order (uids 0..).
    pub fn num_layers(&self) -> usize {
        self.spec.walk().len()
    }

    fn ctx(&self, n: usize, mode: Mode) -> Ctx {
        Ctx { n, mode, seed: self.spec.seed, step: self.step, offset: self.shard.1, sync: self.sync.clone() }
    }

    /// How input values become the network's numbers (bytes ÷255, the spec's normalisation).
    fn convert(&self, bytes: bool) -> Convert<T> {
        let norm = self.spec.input_norm.as_ref().map(|n| (&n.mean[..], &n.std[..]));
        Convert::new(bytes, norm, *self.spec.input.last().unwrap())
    }

    /// The input buffer grown to `n` samples, and the layers' buffers: every batch buffer
    /// is allocated (or refused, with the layer named) before any work starts.
    fn input_buffer(&mut self, n: usize) -> Result<Vec<T>> {
        self.seq.reserve(n)?;
        let mut buf = std::mem::take(&mut self.input);
        let what = || format!("input: a batch of {n}");
        let len = alloc::size(&[n, self.in_size()], what)?;
        alloc::grow(&mut buf, len, T::zero(), what)?;
        Ok(buf)
    }

    /// Check sizes, then run `f(self, input, n)` on the batch in the thread pool: floats
    /// as they are (no copy) when there is no normalisation, else converted (bytes ÷255,
    /// normalised) into the network's input buffer.
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
        let pool = threads::pool();
        if let (Input::Float(v), None) = (x, &self.spec.input_norm) {
            self.seq.reserve(n)?;
            return Ok(pool.install(|| f(self, v, n)));
        }
        let mut buf = self.input_buffer(n)?;
        let conv = self.convert(matches!(x, Input::Bytes(_)));
        let r = pool.install(|| {
            const C: usize = 1 << 14; // a multiple of any channel count that matters: rows stay whole
            let chunk = C - C % *self.spec.input.last().unwrap();
            match x {
                Input::Float(v) => buf[..n * d].par_chunks_mut(chunk).zip(v.par_chunks(chunk)).for_each(|(o, i)| conv.row(i, o)),
                Input::Bytes(v) => buf[..n * d].par_chunks_mut(chunk).zip(v.par_chunks(chunk)).for_each(|(o, i)| conv.row(i, o)),
            }
            f(self, &buf[..n * d], n)
        });
        self.input = buf;
        Ok(r)
    }

    /// Gather samples `idx` of `ds` (augmented for `epoch`) and their targets into the
    /// network's buffers, then run `f(self, input, targets, n)` in the thread pool.
    fn with_batch<R: Send>(&mut self, ds: &Dataset, idx: &[usize], aug: Option<&Augment>, epoch: u64, f: impl FnOnce(&mut Self, &[T], &[T], usize) -> R + Send) -> Result<R> {
        if ds.shape != self.spec.input {
            crate::bail!("data: samples of shape {:?}, the network takes {:?}", ds.shape, self.spec.input);
        }
        if ds.k != self.out_size() {
            crate::bail!("data: targets of {} values, the network gives {}", ds.k, self.out_size());
        }
        let n = idx.len();
        let mut buf = self.input_buffer(n)?;
        let conv = self.convert(matches!(ds.values, crate::data::Values::Bytes(_)));
        let mut t = std::mem::take(&mut self.targets);
        if let Err(e) = ds.targets_into(idx, &mut t) {
            self.input = buf;
            return Err(e);
        }
        let r = threads::pool().install(|| -> Result<R> {
            ds.gather_into(idx, aug, epoch, &conv, &mut buf)?;
            Ok(f(self, &buf[..n * ds.sample_size()], &t, n))
        });
        self.input = buf;
        self.targets = t;
        r
    }

    fn run_forward(&mut self, x: &[T], n: usize, mode: Mode, upto: Option<usize>) {
        let cx = self.ctx(n, mode);
        let mut t = Tensors { params: &self.params, grads: &mut self.grads, state: &mut self.state };
        self.seq.forward(&cx, x, upto, &mut t);
    }

    /// Σ over samples of the loss; with `grad`, leaves ∂L/∂y (scaled by the reduction, and
    /// folded with the last layer's f′ where that follows from y) in the output buffer.
    /// Returns (loss sum, whether folded).
    fn loss_sum(&mut self, t: &[T], n: usize, grad: bool) -> (f64, bool) {
        let k = self.out_size();
        let scale = match self.spec.reduction {
            Reduction::Sum => T::one(),
            Reduction::Mean => T::of(1.0 / self.shard.0.unwrap_or(n) as f64),
        };
        let fold = self.seq.foldable();
        let loss = self.spec.loss;
        let mut total = 0.0;
        let out = self.seq.output_mut(n);
        for i in 0..n {
            let y = &mut out[i * k..(i + 1) * k];
            total += loss.sample(y, &t[i * k..(i + 1) * k], &mut self.row).f64();
            if grad {
                for (yi, &g) in y.iter_mut().zip(&self.row) {
                    let d = fold.map_or(T::one(), |a| a.derivative_from_output(*yi));
                    *yi = g * scale * d;
                }
            }
        }
        (total, fold.is_some())
    }

    fn reduce(&self, total: f64, n: usize) -> f64 {
        match self.spec.reduction {
            Reduction::Sum => total,
            Reduction::Mean => total / n as f64,
        }
    }

    /// Train-mode forward, loss and backward: gradients into self.grads; returns the loss sum.
    /// A training pass (`update_state`) skips the backward of the frozen prefix and gives
    /// frozen parameters zero gradients; `gradients` (no state update) computes them all.
    fn backprop(&mut self, x: &[T], t: &[T], n: usize, update_state: bool) -> f64 {
        let mode = Mode::Train { update_state };
        self.run_forward(x, n, mode, None);
        let (total, folded) = self.loss_sum(t, n, true);
        let cx = self.ctx(n, mode);
        let stop = if update_state { self.trained_from } else { 0 };
        let mut ts = Tensors { params: &self.params, grads: &mut self.grads, state: &mut self.state };
        self.seq.backward_to(&cx, x, None, folded, &mut ts, stop);
        if update_state {
            // the contract: a training pass gives a frozen parameter (lr_mult 0) no gradient
            for (g, &(lr_mult, _)) in self.grads.iter_mut().zip(&self.mults) {
                if lr_mult == 0.0 {
                    g.fill(T::of(0.0));
                }
            }
        }
        total
    }

    /// One update of every trained parameter; a frozen one (lr_mult 0) and its optimizer
    /// slots stay as they are.
    fn update(&mut self, lr: f64) {
        let rule = self.spec.update;
        let k = rule.slots().len();
        self.step += 1;
        for (i, (w, g)) in self.params.iter_mut().zip(&self.grads).enumerate() {
            let (lr_mult, wd_mult) = self.mults[i];
            if lr_mult != 0.0 {
                rule.apply(w, &self.param_info[i].1, &mut self.slots[i * k..(i + 1) * k], g, lr * lr_mult, wd_mult, self.step, &mut self.work);
            }
        }
    }

    // ---- the engine's methods (docs/engine.md) ----

    /// The output of layer `uid` (default: the last), (n, out) flattened.
    pub fn forward(&mut self, x: Input<T>, uid: Option<usize>, mode: Mode) -> Result<Vec<T>> {
        let layers = self.num_layers();
        if let Some(u) = uid {
            if u >= layers {
                crate::bail!("layer: index {u} is out of range (the network has {layers} layers)");
            }
        }
        let upto = uid.map(|u| self.seq.top_index(u).expect("uid in range"));
        let mode = if mode.train() { Mode::Train { update_state: false } } else { Mode::Eval };
        let n = self.with_input(x, None, |net, x, n| {
            net.run_forward(x, n, mode, upto);
            n
        })?;
        let out = match uid {
            None => self.seq.output(n),
            Some(u) => self.seq.activation(u, n).expect("a layer that ran"),
        };
        alloc::copy(out, || format!("output: a batch of {n}"))
    }

    pub fn output_shape(&self, uid: Option<usize>) -> Vec<usize> {
        match uid {
            None => self.spec.layers.last().unwrap().dim_out.clone(),
            Some(u) => self.spec.walk()[u].dim_out.clone(),
        }
    }

    /// Eval-mode output, then probabilities for softmax losses.
    pub fn predict(&mut self, x: Input<T>) -> Result<Vec<T>> {
        let y = self.forward(x, None, Mode::Eval)?;
        let k = self.out_size();
        let mut out = alloc::zeros(y.len(), || "probabilities".into())?;
        for (o, r) in out.chunks_mut(k).zip(y.chunks(k)) {
            self.spec.loss.output(r, o);
        }
        Ok(out)
    }

    /// The reduced loss; train mode uses batch statistics and dropout, and changes nothing.
    pub fn loss(&mut self, x: Input<T>, t: &[T], mode: Mode) -> Result<f64> {
        let mode = if mode.train() { Mode::Train { update_state: false } } else { Mode::Eval };
        self.with_input(x, Some(t), |net, x, n| {
            net.run_forward(x, n, mode, None);
            let total = net.loss_sum(t, n, false).0;
            net.reduce(total, n)
        })
    }

    /// Train-mode gradients of the reduced loss; changes no state. Returns (loss, grads).
    pub fn gradients(&mut self, x: Input<T>, t: &[T]) -> Result<(f64, Vec<Vec<T>>)> {
        let loss = self.with_input(x, Some(t), |net, x, n| {
            let total = net.backprop(x, t, n, false);
            net.reduce(total, n)
        })?;
        Ok((loss, alloc::copies(&self.grads, "gradients")?))
    }

    /// The same by central differences of the train-mode loss with step `delta` (two
    /// forward passes per parameter): NeuroFlow's Approximation, and a check.
    pub fn fd_gradients(&mut self, x: Input<T>, t: &[T], delta: f64) -> Result<(f64, Vec<Vec<T>>)> {
        if !(delta.is_finite() && delta > 0.0) {
            crate::bail!("delta: expected a positive step, got {delta}");
        }
        let d = T::of(delta);
        let mode = Mode::Train { update_state: false };
        let loss = self.with_input(x, Some(t), |net, x, n| {
            let eval = |net: &mut Self| {
                net.run_forward(x, n, mode, None);
                let total = net.loss_sum(t, n, false).0;
                net.reduce(total, n)
            };
            let loss = eval(net);
            for l in 0..net.params.len() {
                for i in 0..net.params[l].len() {
                    let w0 = net.params[l][i];
                    net.params[l][i] = w0 + d;
                    let up = eval(net);
                    net.params[l][i] = w0 - d;
                    let down = eval(net);
                    net.params[l][i] = w0;
                    net.grads[l][i] = T::of((up - down) / (2.0 * delta));
                }
            }
            loss
        })?;
        Ok((loss, alloc::copies(&self.grads, "gradients")?))
    }

    /// One training step on a batch; returns the mean per-sample loss before the update.
    /// `approx` = Some(Δ) trains on finite differences instead of backprop.
    pub fn train_step(&mut self, x: Input<T>, t: &[T], lr: f64, approx: Option<f64>) -> Result<f64> {
        if !lr.is_finite() {
            crate::bail!("learning_rate: must be finite, got {lr}");
        }
        let n = x.len() / self.in_size().max(1);
        // running statistics as they were, should the step go wrong
        let kept = alloc::copies(&self.state, "state")?;
        let total = match approx {
            None => self.with_input(x, Some(t), |net, x, n| net.backprop(x, t, n, true))?,
            Some(delta) => {
                let loss = self.fd_gradients(x, t, delta)?.0 * self.unreduce(n);
                // the step's running statistics, as a backprop step would move them
                self.with_input(x, None, |net, x, n| net.run_forward(x, n, Mode::Train { update_state: true }, None))?;
                loss
            }
        };
        // A non-finite loss or gradient changes nothing: the network keeps its last good
        // parameters (the caller sees the loss and stops).
        self.finish_step(total, n, lr, kept)
    }

    /// One training step on samples `idx` of a data set (gathered, augmented and converted
    /// straight into the input buffer); returns the mean per-sample loss before the update.
    pub fn train_step_data(&mut self, ds: &Dataset, idx: &[usize], lr: f64, aug: Option<&Augment>, epoch: u64) -> Result<f64> {
        if !lr.is_finite() {
            crate::bail!("learning_rate: must be finite, got {lr}");
        }
        let kept = alloc::copies(&self.state, "state")?;
        let (total, n) = self.with_batch(ds, idx, aug, epoch, |net, x, t, n| (net.backprop(x, t, n, true), n))?;
        self.finish_step(total, n, lr, kept)
    }

    /// The update after a step's backprop, unless its loss or gradients are not finite.
    fn finish_step(&mut self, total: f64, n: usize, lr: f64, kept: Vec<Vec<T>>) -> Result<f64> {
        let finite = total.is_finite() && threads::pool().install(|| self.grads.par_iter().all(|g| g.iter().all(|v| v.is_finite())));
        if !finite {
            self.state = kept;
            return Ok(if total.is_finite() { f64::NAN } else { total / n as f64 });
        }
        threads::pool().install(|| self.update(lr));
        Ok(total / n as f64)
    }

    // ---- data-parallel steps (docs/engine.md, "Data-parallel steps") ----

    /// Train-mode forward and backward of one shard of a global batch of `batch` samples
    /// (None: this batch is the whole one) starting at position `offset` of it: the
    /// gradients of Σ shard losses ÷ batch ("mean") or Σ ("sum") go into `out` (flat, in
    /// parameter order), the running statistics move as in a step, nothing else changes.
    /// With `sync`, BatchNorm takes its batch statistics over all processes. Returns the
    /// sum of the shard's per-sample losses.
    pub fn backward(&mut self, x: Input<T>, t: &[T], batch: Option<usize>, offset: usize, sync: Option<std::sync::Arc<dyn crate::layers::Collective>>, out: &mut [T]) -> Result<f64> {
        self.check_flat(out.len(), "grads")?;
        let n = x.len() / self.in_size().max(1);
        self.check_shard(n, batch, offset)?;
        self.shard = (batch, offset);
        self.sync = sync;
        let r = self.with_input(x, Some(t), |net, x, n| net.backprop(x, t, n, true));
        self.shard = (None, 0);
        self.sync = None;
        let total = r?;
        self.flatten_grads(out);
        Ok(total)
    }

    /// `backward` on samples `idx` of a data set (gathered, augmented and converted as
    /// `train_step_data` does).
    #[allow(clippy::too_many_arguments)]
    pub fn backward_data(&mut self, ds: &Dataset, idx: &[usize], aug: Option<&Augment>, epoch: u64, batch: Option<usize>, offset: usize, sync: Option<std::sync::Arc<dyn crate::layers::Collective>>, out: &mut [T]) -> Result<f64> {
        self.check_flat(out.len(), "grads")?;
        self.check_shard(idx.len(), batch, offset)?;
        self.shard = (batch, offset);
        self.sync = sync;
        let r = self.with_batch(ds, idx, aug, epoch, |net, x, t, n| net.backprop(x, t, n, true));
        self.shard = (None, 0);
        self.sync = None;
        let total = r?;
        self.flatten_grads(out);
        Ok(total)
    }

    /// One update with the reduced gradients `g` (flat, in parameter order, as `backward`
    /// writes them): parameters, optimizer state and step move as in `train_step`.
    pub fn apply_update(&mut self, g: &[T], lr: f64) -> Result<()> {
        if !lr.is_finite() {
            crate::bail!("learning_rate: must be finite, got {lr}");
        }
        self.check_flat(g.len(), "grads")?;
        if threads::pool().install(|| g.par_chunks(1 << 16).any(|c| c.iter().any(|v| !v.is_finite()))) {
            crate::bail!("grads: contains NaN or infinity (the step's loss or gradients were not finite; no update made)");
        }
        let mut at = 0;
        for w in self.grads.iter_mut() {
            let len = w.len();
            w.copy_from_slice(&g[at..at + len]);
            at += len;
        }
        threads::pool().install(|| self.update(lr));
        Ok(())
    }

    fn check_flat(&self, len: usize, what: &str) -> Result<()> {
        if len != self.num_params() {
            crate::bail!("{what}: expected a flat array of {} values (every parameter in order), got {len}", self.num_params());
        }
        Ok(())
    }

    fn check_shard(&self, n: usize, batch: Option<usize>, offset: usize) -> Result<()> {
        if let Some(b) = batch {
            if b == 0 || offset.checked_add(n).is_none_or(|end| end > b) {
                crate::bail!("batch: a shard of {n} samples at offset {offset} does not fit in a global batch of {b}");
            }
        } else if offset != 0 {
            crate::bail!("offset: {offset} given without the global batch size");
        }
        Ok(())
    }

    fn flatten_grads(&self, out: &mut [T]) {
        let mut at = 0;
        for g in &self.grads {
            out[at..at + g.len()].copy_from_slice(g);
            at += g.len();
        }
    }

    fn unreduce(&self, n: usize) -> f64 {
        match self.spec.reduction {
            Reduction::Sum => 1.0,
            Reduction::Mean => n as f64,
        }
    }

    pub fn set_params(&mut self, w: Vec<Vec<T>>) -> Result<()> {
        check_like(&self.params, &w, "params")?;
        self.params = w;
        Ok(())
    }

    pub fn set_state(&mut self, s: Vec<Vec<T>>) -> Result<()> {
        check_like(&self.state, &s, "state")?;
        self.state = s;
        Ok(())
    }

    pub fn set_slots(&mut self, m: Vec<Vec<T>>) -> Result<()> {
        check_like(&self.slots, &m, "optimizer state")?;
        self.slots = m;
        Ok(())
    }
}

/// The resolved fields of a layer spec (and its inner layers') removed, to resolve anew.
fn clear(l: &mut crate::spec::LayerSpec) {
    l.dim_in.clear();
    l.dim_out.clear();
    l.params.clear();
    l.state.clear();
    if let crate::spec::Kind::Residual { layers, .. } = &mut l.kind {
        layers.iter_mut().for_each(clear);
    }
}

/// The index of the first top-level layer with a trained parameter (lr_mult > 0), or the
/// layer count if none is.
fn frozen_prefix(layers: &[crate::spec::LayerSpec]) -> usize {
    let trained = |l: &crate::spec::LayerSpec| {
        let mut any = false;
        walk(std::slice::from_ref(l), "", &mut |_, inner| {
            any |= inner.params.iter().any(|p| p.lr_mult != 0.0);
            Ok(())
        })
        .map(|_| any)
        .unwrap_or(true)
    };
    layers.iter().position(trained).unwrap_or(layers.len())
}

/// Visit every layer in pre-order with the name prefix of the residuals around it.
fn walk(layers: &[crate::spec::LayerSpec], prefix: &str, f: &mut impl FnMut(&str, &crate::spec::LayerSpec) -> Result<()>) -> Result<()> {
    for l in layers {
        f(prefix, l)?;
        if let crate::spec::Kind::Residual { layers, .. } = &l.kind {
            walk(layers, &format!("{prefix}{}.", l.name), f)?;
        }
    }
    Ok(())
}

fn check_like<T: Real>(have: &[Vec<T>], new: &[Vec<T>], what: &str) -> Result<()> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;

    fn spec(input: &str, layers: &str) -> NetSpec {
        NetSpec::from_json(&format!(
            r#"{{"dtype": "f32", "input": {input}, "loss": {{"name": "squared_error"}}, "update": {{"name": "momentum", "mu": 0.9}},
            "reduction": "mean", "layers": [{layers}]}}"#
        ))
        .unwrap()
    }

    /// Sizes beyond memory: an error naming the layer and the bytes, before any work.
    #[test]
    fn sizes_beyond_memory_are_refused_with_the_layer_named() {
        // 2^31 × 2^30 weights: a shape the layout already refuses
        let e = Network::<f32>::new(spec("[2147483648]", r#"{"kind": "dense", "name": "d0", "neurons": 1073741824, "activator": {"name": "relu"}}"#)).err().unwrap();
        assert_eq!(e.1, ErrorKind::Value, "{e}");
        assert!(e.0.starts_with("layout[0] (d0)"), "{e}");
        // 2^50 weights of 4 bytes: more than any allocator grants
        let e = Network::<f32>::new(spec("[4]", r#"{"kind": "dense", "name": "d0", "neurons": 2, "activator": {"name": "relu"}}, {"kind": "dense", "name": "big", "neurons": 562949953421312, "activator": {"name": "relu"}}"#)).err().unwrap();
        assert_eq!(e.1, ErrorKind::Memory, "{e}");
        assert!(e.0.starts_with("layer 1 (dense 'big'): weight needs 4503599627370496 bytes (4.0 PiB); not enough memory"), "{e}");
        // one sample's activations (2^40 × 2^20 values)
        let e = Network::<f32>::new(spec("[1099511627776, 1048576, 1]", r#"{"kind": "conv", "name": "c", "padding": [0, 0], "field": [1, 1], "stride": [1, 1], "filters": 1, "activator": {"name": "relu"}}"#)).err().unwrap();
        assert!(e.0.starts_with("layer 0 (conv 'c'): the activations buffer for a batch of 1 need") || e.0.contains("too large"), "{e}");
        // a batch too large: refused, and the network still works on small ones
        let mut net = Network::<f32>::new(spec("[64, 64, 3]", r#"{"kind": "conv", "name": "c", "padding": [0, 0], "field": [3, 3], "stride": [1, 1], "filters": 4, "activator": {"name": "relu"}}"#)).unwrap();
        let x = vec![0u8; 64 * 64 * 3];
        assert!(net.seq.reserve(1 << 40).unwrap_err().0.starts_with("layer 0 (conv 'c'): "));
        assert_eq!(net.seq.cap, 0);
        assert_eq!(net.forward(Input::Bytes(&x), None, Mode::Eval).unwrap().len(), 62 * 62 * 4);
    }
}
