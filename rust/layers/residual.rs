//! Residual block: y = act(x + inner(x)) for a chain of inner layers that keep the shape.

use super::{own_fprime, reserve, Ctx, Layer, Sequence, Slot, Tensors, XDx};
use crate::activator::Activator;
use crate::error::Result;
use crate::real::Real;
use crate::spec::{Kind, LayerSpec};
use rayon::prelude::*;

pub struct Residual<T: Real> {
    spec: LayerSpec,
    inner: Sequence<T>,
    act: Activator,
    /// x + inner(x), kept when f′ does not follow from the output.
    s: Vec<T>,
    /// ∂L/∂x of the inner chain, before the skip connection's share is added.
    dx: Vec<T>,
}

const CHUNK: usize = 1 << 14;

impl<T: Real> Residual<T> {
    /// The block and the slot after its inner layers' tensors.
    pub fn new(spec: &LayerSpec, slot: Slot) -> Result<(Self, Slot)> {
        let Kind::Residual { layers, activator } = &spec.kind else { unreachable!() };
        let inner_slot = Slot { uid: slot.uid + 1, ..slot };
        let (inner, after) = Sequence::new(layers, inner_slot)?;
        Ok((Residual { spec: spec.clone(), inner, act: *activator, s: Vec::new(), dx: Vec::new() }, after))
    }
}

impl<T: Real> Layer<T> for Residual<T> {
    fn spec(&self) -> &LayerSpec {
        &self.spec
    }

    fn reserve(&mut self, n: usize, what: &str) -> Result<()> {
        self.inner.reserve(n)?;
        if !self.act.from_output() {
            reserve(&mut self.s, n, self.spec.in_size(), what, "pre-activations")?;
        }
        reserve(&mut self.dx, n, self.spec.in_size(), what, "input gradient")
    }

    fn release(&mut self) {
        self.inner.release();
        (self.s, self.dx) = (Vec::new(), Vec::new());
    }

    fn forward(&mut self, cx: &Ctx, x: &[T], y: &mut [T], t: &mut Tensors<'_, T>) {
        let len = cx.n * self.spec.in_size();
        self.inner.forward(cx, x, None, t);
        let f = self.inner.output(cx.n);
        let act = self.act;
        let sum = |o: &mut [T], x: &[T], f: &[T]| {
            for ((o, &a), &b) in o.iter_mut().zip(x).zip(f) {
                *o = a + b;
            }
        };
        if act.from_output() {
            y[..len].par_chunks_mut(CHUNK).zip(x[..len].par_chunks(CHUNK)).zip(f.par_chunks(CHUNK)).for_each(|((o, x), f)| {
                sum(o, x, f);
                act.forward_inplace(o);
            });
        } else {
            let s = &mut self.s[..len];
            s.par_chunks_mut(CHUNK).zip(y[..len].par_chunks_mut(CHUNK)).zip(x[..len].par_chunks(CHUNK).zip(f.par_chunks(CHUNK))).for_each(
                |((s, o), (x, f))| {
                    sum(s, x, f);
                    act.forward(s, o);
                },
            );
        }
    }

    fn backward(&mut self, cx: &Ctx, io: XDx<'_, T>, dy: &mut [T], y: Option<&[T]>, folded: bool, t: &mut Tensors<'_, T>) {
        let XDx::Separate(x, dx) = io else { unreachable!("a residual writes its input gradient apart") };
        let len = cx.n * self.spec.in_size();
        own_fprime(&self.act, &mut dy[..len], y.map(|y| &y[..len]), &self.s, folded, false);
        // the inner chain's top gradient is dy, folded with its last f′ where that can be
        let fold = self.inner.foldable();
        {
            let dy: &[T] = dy;
            let top = self.inner.output_mut(cx.n);
            top.par_chunks_mut(CHUNK).zip(dy[..len].par_chunks(CHUNK)).for_each(|(o, d)| match fold {
                Some(act) => act.mask_into(d, o),
                None => o.copy_from_slice(d),
            });
        }
        let inner_dx = dx.is_some().then(|| &mut self.dx[..len]);
        self.inner.backward(cx, x, inner_dx, fold.is_some(), t);
        if let Some(dx) = dx {
            let dy: &[T] = dy;
            dx[..len].par_chunks_mut(CHUNK).zip(self.dx[..len].par_chunks(CHUNK)).zip(dy[..len].par_chunks(CHUNK)).for_each(|((o, a), d)| {
                for ((o, &a), &d) in o.iter_mut().zip(a).zip(d) {
                    *o = a + d;
                }
            });
        }
    }

    fn foldable(&self) -> Option<Activator> {
        self.act.from_output().then_some(self.act)
    }

    fn inner_output(&self, uid: usize, n: usize) -> Option<&[T]> {
        self.inner.activation(uid, n)
    }
}
