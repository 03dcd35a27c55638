//! Dense layer: `dense::Dense`'s products, an optional learnable bias, the activator.

use super::{bias_grad, label, own_fprime, reserve, Ctx, Layer, Slot, Tensors, XDx};
use crate::activator::Activator;
use crate::dense::Dense;
use crate::real::Real;
use crate::spec::{Kind, LayerSpec};
use crate::threads;

pub struct DenseLayer<T> {
    spec: LayerSpec,
    dense: Dense,
    slot: Slot,
    bias: bool,
    /// Pre-activations, kept in train mode when f′ does not follow from the output.
    s: Vec<T>,
    /// The input gradient before the previous layer's f′ mask.
    tmp: Vec<T>,
}

impl<T: Real> DenseLayer<T> {
    pub fn new(spec: &LayerSpec, slot: Slot) -> Self {
        let Kind::Dense { neurons, bias, activator } = &spec.kind else { unreachable!() };
        let dense = Dense { dim_in: spec.in_size(), neurons: *neurons, act: *activator };
        DenseLayer { spec: spec.clone(), dense, slot, bias: *bias, s: Vec::new(), tmp: Vec::new() }
    }
}

impl<T: Real> Layer<T> for DenseLayer<T> {
    fn spec(&self) -> &LayerSpec {
        &self.spec
    }

    fn reserve(&mut self, n: usize, what: &str) -> crate::Result<()> {
        if !self.dense.act.from_output() {
            reserve(&mut self.s, n, self.dense.neurons, what, "pre-activations")?;
        }
        Ok(())
    }

    fn release(&mut self) {
        (self.s, self.tmp) = (Vec::new(), Vec::new());
    }

    fn forward(&mut self, cx: &Ctx, x: &[T], y: &mut [T], t: &mut Tensors<'_, T>) {
        let p = self.slot.param;
        let bias = self.bias.then(|| &t.params[p + 1][..]);
        self.dense.forward(x, &t.params[p], bias, &mut self.s, y, cx.n, threads::num_threads());
    }

    fn backward(&mut self, cx: &Ctx, io: XDx<'_, T>, dy: &mut [T], y: Option<&[T]>, folded: bool, t: &mut Tensors<'_, T>) {
        let (n, p, threads) = (cx.n, self.slot.param, threads::num_threads());
        own_fprime(&self.dense.act, dy, y, &self.s, folded, false);
        let dy: &[T] = dy;
        let (w, grads) = (&t.params[p], &mut *t.grads);
        {
            let x: &[T] = match &io {
                XDx::InPlace(buf, _) => buf,
                XDx::Separate(x, _) => x,
            };
            self.dense.weight_grad(x, dy, n, &mut grads[p], threads);
        }
        if self.bias {
            bias_grad(&dy[..n * self.dense.neurons], self.dense.neurons, &mut grads[p + 1]);
        }
        match io {
            XDx::InPlace(buf, mask) => {
                if mask.is_some() {
                    // grown here, not in `reserve`: only training needs it
                    let (len, uid, spec) = (n * self.dense.dim_in, self.slot.uid, &self.spec);
                    crate::alloc::grown(&mut self.tmp, len, || format!("{}: the input gradient buffer for a batch of {n}", label(uid, spec)));
                }
                self.dense.input_grad(w, dy, n, buf, threads, mask, &mut self.tmp)
            }
            XDx::Separate(_, Some(dx)) => self.dense.input_grad(w, dy, n, dx, threads, None, &mut self.tmp),
            XDx::Separate(_, None) => {}
        }
    }

    fn foldable(&self) -> Option<Activator> {
        self.dense.act.from_output().then_some(self.dense.act)
    }

    fn in_place(&self) -> bool {
        true
    }
}
