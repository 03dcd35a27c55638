//! The layer contract (docs/engine.md): one type per layer kind, each with its forward and
//! backward, its parameters and state (held by the network, found by index), and its own
//! scratch. `Sequence` runs a chain of layers and chooses the two cross-layer
//! optimisations: f′ folding and in-place input gradients.

pub mod batchnorm;
pub mod conv;
pub mod dense;
pub mod dropout;
pub mod pool;
pub mod residual;
mod sequence;

pub use sequence::Sequence;

use crate::activator::Activator;
use crate::error::Result;
use crate::real::Real;
use crate::spec::{Kind, LayerSpec};
use rayon::prelude::*;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Eval,
    /// Batch statistics and dropout; `update_state`: running statistics move (a training
    /// step) or stay (the train-mode loss and gradients, which change nothing).
    Train { update_state: bool },
}

impl Mode {
    pub fn train(&self) -> bool {
        matches!(self, Mode::Train { .. })
    }
}

/// What every layer of one call shares.
#[derive(Clone)]
pub struct Ctx {
    pub n: usize,
    pub mode: Mode,
    pub seed: u64,
    pub step: u64,
    /// Position of the call's first sample in the global batch of a data-parallel step
    /// (0 otherwise): dropout numbers elements from there, so shards draw the masks of the
    /// whole batch.
    pub offset: usize,
    /// Sums across the processes of a data-parallel step: BatchNorm's batch statistics over
    /// the global batch (synchronised BatchNorm). None: statistics of this call's samples.
    pub sync: Option<std::sync::Arc<dyn Collective>>,
}

/// Sums values over the processes of a data-parallel run (an MPI all-reduce), in place.
/// On failure it fills `v` with NaN (the step then fails) and keeps the error for the caller.
pub trait Collective: Send + Sync {
    fn sum(&self, v: &mut [f64]);
}

/// A layer's input in the backward pass, and where ∂L/∂input goes.
pub enum XDx<'a, T> {
    /// One buffer holds x, then receives ∂L/∂x, multiplied by f′ of the previous layer's
    /// activator (read from x before it is overwritten) when a mask is given. Only for
    /// layers whose `in_place()` is true.
    InPlace(&'a mut [T], Option<&'a Activator>),
    /// x, and a separate buffer for ∂L/∂x (None: not needed, the network's first layer).
    Separate(&'a [T], Option<&'a mut [T]>),
}

/// The network's tensors: every layer finds its own by the indices it was built with.
pub struct Tensors<'a, T> {
    pub params: &'a [Vec<T>],
    pub grads: &'a mut [Vec<T>],
    pub state: &'a mut [Vec<T>],
}

pub trait Layer<T: Real>: Send + Sync {
    fn spec(&self) -> &LayerSpec;
    /// Grow per-batch buffers to `n` samples; `what` names the layer in errors.
    fn reserve(&mut self, n: usize, what: &str) -> Result<()>;
    /// Free the per-batch buffers (after a `reserve` that failed part-way).
    fn release(&mut self) {}
    /// y = layer(x) for `cx.n` samples.
    fn forward(&mut self, cx: &Ctx, x: &[T], y: &mut [T], t: &mut Tensors<'_, T>);
    /// From dy = ∂L/∂y (the layer may overwrite it), the parameter gradients (written,
    /// not added) and ∂L/∂x. `y` is the layer's output, None where dy overwrote it; then
    /// or when `folded`, the next layer has already multiplied dy by f′.
    fn backward(&mut self, cx: &Ctx, io: XDx<'_, T>, dy: &mut [T], y: Option<&[T]>, folded: bool, t: &mut Tensors<'_, T>);
    /// The output activator, when its f′ follows from the output (so the next layer may
    /// fold it into its input gradient).
    fn foldable(&self) -> Option<Activator> {
        None
    }
    /// Takes `XDx::InPlace` (and applies its mask).
    fn in_place(&self) -> bool {
        false
    }
    /// The activations of the layer with pre-order id `uid` inside this one (residuals).
    fn inner_output(&self, _uid: usize, _n: usize) -> Option<&[T]> {
        None
    }
}

/// Indices of a layer's tensors in the network's lists and its pre-order id.
#[derive(Clone, Copy, Debug, Default)]
pub struct Slot {
    pub param: usize,
    pub state: usize,
    pub uid: usize,
}

/// Build the layer described by `spec` (resolved) whose tensors start at `slot`; returns
/// it and the slot after its tensors.
pub fn build<T: Real>(spec: &LayerSpec, slot: Slot) -> Result<(Box<dyn Layer<T>>, Slot)> {
    let next = Slot { param: slot.param + spec.params.len(), state: slot.state + spec.state.len(), uid: slot.uid + 1 };
    Ok(match &spec.kind {
        Kind::Conv { .. } => (Box::new(conv::ConvLayer::new(spec, slot)?), next),
        Kind::Dense { .. } => (Box::new(dense::DenseLayer::new(spec, slot)), next),
        Kind::Batchnorm { .. } => (Box::new(batchnorm::BatchNorm::new(spec, slot)), next),
        Kind::Maxpool { .. } | Kind::Avgpool { .. } => (Box::new(pool::Pool::new(spec)), next),
        Kind::GlobalAvgPool {} => (Box::new(pool::GlobalAvgPool::new(spec)), next),
        Kind::Dropout { .. } => (Box::new(dropout::Dropout::new(spec, slot)), next),
        Kind::Residual { .. } => {
            let (r, after) = residual::Residual::new(spec, slot)?;
            (Box::new(r), after)
        }
    })
}

/// Apply the layer's own f′ to dy unless the next layer folded it: from the output y
/// where f′ follows from it, else from `s`: the kept pre-activations, or, with `kept`,
/// f′ itself, computed by the training forward pass.
pub fn own_fprime<T: Real>(act: &Activator, dy: &mut [T], y: Option<&[T]>, s: &[T], folded: bool, kept: bool) {
    if folded || act.name == crate::activator::ActKind::Linear {
        return;
    }
    const C: usize = 1 << 14;
    if kept {
        // `s` holds f′ (Activator::forward_keep_fprime)
        dy.par_chunks_mut(C).zip(s.par_chunks(C)).for_each(|(d, f)| crate::activator::times(f, d));
        return;
    }
    if act.from_output() {
        let y = y.expect("the output is kept when f' is not folded");
        dy.par_chunks_mut(C).zip(y.par_chunks(C)).for_each(|(d, y)| {
            for (d, &y) in d.iter_mut().zip(y) {
                *d *= act.derivative_from_output(y);
            }
        });
    } else {
        dy.par_chunks_mut(C).zip(s.par_chunks(C)).for_each(|(d, s)| act.backward(s, d));
    }
}

/// Fixed number of row groups for sums over a batch: the same grouping, so the same
/// result, whatever the thread count.
pub const GROUPS: usize = 16;

/// Per-column sums of `rows × cols` values into `out` (`cols` of them), in f64 and in a
/// fixed order: `f(row values, sums)` adds one row's terms.
pub fn column_sums<T: Real, const K: usize>(
    rows: usize,
    cols: usize,
    out: &mut [[f64; K]],
    f: impl Fn(usize, &mut [[f64; K]]) + Sync,
) {
    let groups = rows.clamp(1, GROUPS);
    let parts: Vec<Vec<[f64; K]>> = (0..groups)
        .into_par_iter()
        .map(|gi| {
            let mut part = vec![[0.0; K]; cols];
            for r in gi * rows / groups..(gi + 1) * rows / groups {
                f(r, &mut part);
            }
            part
        })
        .collect();
    out.iter_mut().for_each(|o| *o = [0.0; K]);
    for part in &parts {
        for (o, p) in out.iter_mut().zip(part) {
            for k in 0..K {
                o[k] += p[k];
            }
        }
    }
}

/// db[c] = Σ over rows of d[row, c]: a bias gradient.
pub fn bias_grad<T: Real>(d: &[T], cols: usize, db: &mut [T]) {
    let mut sums = vec![[0.0f64; 1]; cols];
    column_sums::<T, 1>(d.len() / cols, cols, &mut sums, |r, part| {
        for (p, &v) in part.iter_mut().zip(&d[r * cols..(r + 1) * cols]) {
            p[0] += v.f64();
        }
    });
    for (b, s) in db.iter_mut().zip(&sums) {
        *b = T::of(s[0]);
    }
}

/// v[row, c] += b[c] over whole rows of `b.len()` values.
pub fn add_bias<T: Real>(v: &mut [T], b: &[T]) {
    debug_assert_eq!(v.len() % b.len(), 0);
    for row in v.chunks_exact_mut(b.len()) {
        for (x, &bi) in row.iter_mut().zip(b) {
            *x += bi;
        }
    }
}

/// How errors name a layer: "layer 3 (conv 'c3')" (its pre-order id, kind and name).
pub fn label(uid: usize, spec: &LayerSpec) -> String {
    format!("layer {uid} ({} '{}')", spec.kind.id_name(), spec.name)
}

/// Grow a layer's buffer `buf` to `n` samples of `per` values: `what` names the layer,
/// `name` the buffer.
pub fn reserve<T: Clone + num_traits::Zero>(buf: &mut Vec<T>, n: usize, per: usize, what: &str, name: &str) -> Result<()> {
    let desc = || format!("{what}: the {name} buffer for a batch of {n}");
    crate::alloc::grow(buf, crate::alloc::size(&[n, per], desc)?, T::zero(), desc)
}
