//! A chain of layers with their activations and two gradient buffers, and the network's
//! two optimisations across layers:
//! - *f′ folding*: a layer that takes in-place input gradients (conv, dense) multiplies
//!   its ∂L/∂x by the previous layer's f′ (read from that layer's output) as it writes it;
//! - *in place*: that ∂L/∂x overwrites the previous layer's output, which nothing reads
//!   after it. Other layers write ∂L/∂x into one of two gradient buffers used in turn.

use super::{build, label, reserve, Ctx, Layer, Slot, Tensors, XDx};
use crate::error::{Error, Result};
use crate::real::Real;
use std::any::Any;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use crate::spec::LayerSpec;

pub struct Sequence<T: Real> {
    pub layers: Vec<Box<dyn Layer<T>>>,
    uids: Vec<usize>,
    /// Per layer: its output for the batch; in the backward pass, possibly ∂L/∂output.
    acts: Vec<Vec<T>>,
    grads: [Vec<T>; 2],
    pub(crate) cap: usize,
}

/// Where a layer's ∂L/∂output is during the backward pass.
#[derive(Clone, Copy)]
enum Dy {
    /// In its own output buffer (written in place); f′ already folded when `true`.
    Act(bool),
    /// In gradient buffer 0 or 1; the output is intact.
    Grad(usize),
}

impl<T: Real> Sequence<T> {
    /// The layers of `specs`, their tensors numbered from `slot`; returns the slot after.
    pub fn new(specs: &[LayerSpec], mut slot: Slot) -> Result<(Self, Slot)> {
        let mut layers = Vec::new();
        let mut uids = Vec::new();
        for s in specs {
            uids.push(slot.uid);
            let (layer, next) = build::<T>(s, slot)?;
            layers.push(layer);
            slot = next;
        }
        let n = layers.len();
        Ok((Sequence { layers, uids, acts: vec![Vec::new(); n], grads: [Vec::new(), Vec::new()], cap: 0 }, slot))
    }

    pub fn out_size(&self) -> usize {
        self.layers.last().unwrap().spec().out_size()
    }

    /// Buffers for `n` samples, or an error naming the layer whose buffer the allocator
    /// refused (then every batch buffer is freed: a failed batch holds no memory).
    pub fn reserve(&mut self, n: usize) -> Result<()> {
        if n <= self.cap {
            return Ok(());
        }
        let r = self.grow(n);
        if r.is_err() {
            self.release();
        }
        r
    }

    fn grow(&mut self, n: usize) -> Result<()> {
        let mut most = (0, 0);
        for (l, layer) in self.layers.iter_mut().enumerate() {
            let what = label(self.uids[l], layer.spec());
            layer.reserve(n, &what)?;
            let (inp, out) = (layer.spec().in_size(), layer.spec().out_size());
            reserve(&mut self.acts[l], n, out, &what, "activations")?;
            most = most.max((inp.max(out), l));
        }
        let what = label(self.uids[most.1], self.layers[most.1].spec());
        for g in &mut self.grads {
            reserve(g, n, most.0, &what, "gradient")?;
        }
        self.cap = n;
        Ok(())
    }

    /// Free every batch buffer (they grow again on the next call).
    pub fn release(&mut self) {
        self.layers.iter_mut().for_each(|l| l.release());
        self.acts.iter_mut().for_each(|a| *a = Vec::new());
        self.grads = [Vec::new(), Vec::new()];
        self.cap = 0;
    }

    /// Forward through layers 0..=upto (all with None).
    /// `reserve(cx.n)` must have succeeded.
    pub fn forward(&mut self, cx: &Ctx, x: &[T], upto: Option<usize>, t: &mut Tensors<'_, T>) {
        assert!(cx.n <= self.cap, "forward before reserve");
        let last = upto.unwrap_or(self.layers.len() - 1);
        for l in 0..=last {
            let (before, after) = self.acts.split_at_mut(l);
            let input: &[T] = if l == 0 { x } else { &before[l - 1] };
            let out = self.layers[l].spec().out_size();
            let layer = &mut self.layers[l];
            let done = catch_unwind(AssertUnwindSafe(|| layer.forward(cx, input, &mut after[0][..cx.n * out], t)));
            if let Err(payload) = done {
                relabel(self.uids[l], layer.spec(), payload);
            }
        }
    }

    /// The last layer's output (after `forward`).
    pub fn output(&self, n: usize) -> &[T] {
        &self.acts[self.layers.len() - 1][..n * self.out_size()]
    }

    /// Where the top gradient goes before `backward`: the last layer's output buffer.
    pub fn output_mut(&mut self, n: usize) -> &mut [T] {
        let k = self.out_size();
        let last = self.layers.len() - 1;
        &mut self.acts[last][..n * k]
    }

    /// The last layer's output activator when ∂L/∂y may be folded with its f′.
    pub fn foldable(&self) -> Option<crate::activator::Activator> {
        self.layers.last().unwrap().foldable()
    }

    /// Top-level index of the layer whose subtree holds `uid`.
    pub fn top_index(&self, uid: usize) -> Option<usize> {
        self.uids.iter().rposition(|&u| u <= uid)
    }

    /// The output of layer `uid` (this sequence's or a nested one's) after `forward`.
    pub fn activation(&self, uid: usize, n: usize) -> Option<&[T]> {
        let i = self.top_index(uid)?;
        if self.uids[i] == uid {
            return Some(&self.acts[i][..n * self.layers[i].spec().out_size()]);
        }
        self.layers[i].inner_output(uid, n)
    }

    /// Backward from ∂L/∂y in the last layer's output buffer (`folded`: already multiplied
    /// by its f′). `x` is the sequence's input; `dx`, if given, receives ∂L/∂x (without any
    /// mask).
    pub fn backward(&mut self, cx: &Ctx, x: &[T], dx: Option<&mut [T]>, folded: bool, t: &mut Tensors<'_, T>) {
        self.backward_to(cx, x, dx, folded, t, 0)
    }

    /// `backward` down to layer `stop` only: it computes its parameters' gradients but no
    /// ∂L/∂x, and the layers below it are not visited (a frozen prefix: nothing there
    /// trains). `dx` is written only when `stop` is 0.
    pub fn backward_to(&mut self, cx: &Ctx, x: &[T], mut dx: Option<&mut [T]>, folded: bool, t: &mut Tensors<'_, T>, stop: usize) {
        let n = cx.n;
        let mut dy = Dy::Act(folded);
        for l in (stop..self.layers.len()).rev() {
            let (before, rest) = self.acts.split_at_mut(l);
            let own = &mut rest[0];
            let out_len = n * self.layers[l].spec().out_size();
            let in_len = n * self.layers[l].spec().in_size();
            let (g0, g1) = self.grads.split_at_mut(1);
            let mut gbuf = [Some(&mut g0[0]), Some(&mut g1[0])];
            // where this layer's ∂L/∂x goes, and so where the previous layer finds its dy
            let in_place = l > 0 && self.layers[l].in_place();
            let next = if l == 0 {
                Dy::Act(false)
            } else if in_place {
                Dy::Act(self.layers[l - 1].foldable().is_some())
            } else {
                Dy::Grad((l - 1) % 2)
            };
            let mask = if in_place { self.layers[l - 1].foldable() } else { None };
            let (dy_buf, y, layer_folded): (&mut [T], Option<&[T]>, bool) = match dy {
                Dy::Act(f) => (&mut own[..out_len], None, f),
                Dy::Grad(j) => (&mut gbuf[j].take().expect("dy buffer")[..out_len], Some(&own[..out_len]), false),
            };
            let io = if l == 0 {
                XDx::Separate(x, dx.as_deref_mut())
            } else if l == stop {
                XDx::Separate(&before[l - 1][..in_len], None)
            } else if in_place {
                XDx::InPlace(&mut before[l - 1][..in_len], mask.as_ref())
            } else {
                // the buffer that does not hold dy: layer l's dy came from the other one
                let target = gbuf[(l - 1) % 2].take().expect("a free gradient buffer");
                XDx::Separate(&before[l - 1][..in_len], Some(&mut target[..in_len]))
            };
            let layer = &mut self.layers[l];
            let done = catch_unwind(AssertUnwindSafe(|| layer.backward(cx, io, dy_buf, y, layer_folded, t)));
            if let Err(payload) = done {
                relabel(self.uids[l], layer.spec(), payload);
            }
            dy = next;
        }
    }
}

/// Go on unwinding from a layer's pass. A buffer refused in the middle of it (per-thread
/// scratch, a kernel workspace: `alloc::grown` unwinds with the `Error`) comes out naming
/// the layer, unless an inner layer (of a residual block) already did; other panics pass
/// through unchanged.
fn relabel(uid: usize, spec: &LayerSpec, payload: Box<dyn Any + Send>) -> ! {
    match payload.downcast::<Error>() {
        Ok(e) if !e.0.starts_with("layer ") => resume_unwind(Box::new(Error(format!("{}: {}", label(uid, spec), e.0), e.1))),
        Ok(e) => resume_unwind(e),
        Err(other) => resume_unwind(other),
    }
}

#[cfg(test)]
mod relabel_tests {
    use super::*;
    use crate::error::ErrorKind;

    #[test]
    fn a_scratch_refused_inside_a_layer_names_it() {
        let spec: LayerSpec = serde_json::from_str(
            r#"{"kind": "conv", "name": "c3", "padding": [0, 0], "field": [1, 1], "stride": [1, 1], "filters": 2,
                "activator": {"name": "relu"}, "dim_in": [2, 2, 1], "dim_out": [2, 2, 2]}"#,
        )
        .unwrap();
        let relabelled = |pass: fn()| {
            let payload = catch_unwind(pass).unwrap_err();
            catch_unwind(AssertUnwindSafe(|| relabel(3, &spec, payload))).unwrap_err().downcast::<Error>().unwrap()
        };
        let e = relabelled(|| {
            let mut buf: Vec<f32> = Vec::new();
            crate::alloc::grown(&mut buf, 1 << 60, || "per-thread scratch of 2^60 values".into());
        });
        assert_eq!(e.1, ErrorKind::Memory);
        assert!(e.0.starts_with("layer 3 (conv 'c3'): per-thread scratch of 2^60 values needs"), "{}", e.0);
        let inner = relabelled(|| resume_unwind(Box::new(Error::memory("layer 5 (dense 'd'): workspace needs 8 bytes"))));
        assert_eq!(inner.0, "layer 5 (dense 'd'): workspace needs 8 bytes"); // named once, by the innermost layer
        let other = catch_unwind(|| relabel(3, &spec, Box::new("a bug"))).unwrap_err();
        assert_eq!(other.downcast_ref::<&str>(), Some(&"a bug"));
    }
}
