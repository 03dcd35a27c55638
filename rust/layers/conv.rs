//! Convolution layer: `conv::Conv`'s kernels (im2col, Winograd, direct), an optional
//! learnable bias, and the activator, applied in each work unit of the forward pass.

use super::{bias_grad, label, own_fprime, reserve, Ctx, Layer, Slot, Tensors, XDx};
use crate::activator::Activator;
use crate::conv::Conv;
use crate::error::{Error, Result};
use crate::im2col::ConvGeom;
use crate::real::Real;
use crate::spec::{Kind, LayerSpec};

pub struct ConvLayer<T> {
    spec: LayerSpec,
    conv: Conv,
    slot: Slot,
    bias: bool,
    /// Kept in train mode when f′ does not follow from the output: f′ of the
    /// pre-activations when the last forward pass trained (`fprime_kept`), else them.
    s: Vec<T>,
    fprime_kept: bool,
    /// Transformed weights (Winograd, the transposed input gradient); in the weight
    /// gradient of a layer over phases, its partial sums (`phases_kept`) or the phases.
    wt: Vec<T>,
    /// Weight-gradient partial sums; also a strided layer's phases (conv.rs `forward`'s
    /// `extra`) in the passes that do not sum partials.
    partials: Vec<T>,
    /// `partials` holds the phases of the input of the last forward pass, a training pass
    /// of a layer over phases: the weight gradient reads them there (and sums its partials
    /// in `wt`) instead of copying the input to its phases a second time.
    phases_kept: bool,
}

impl<T: Real> ConvLayer<T> {
    pub fn new(spec: &LayerSpec, slot: Slot) -> Result<Self> {
        let Kind::Conv { padding, field, stride, filters, bias, activator, algorithm } = &spec.kind else { unreachable!() };
        let d = &spec.dim_in;
        let what = |e: Error| Error::new(format!("layer {}: {e}", spec.name));
        let g = ConvGeom::new([d[0], d[1], d[2]], *padding, *field, *stride, *filters).map_err(what)?;
        let conv = Conv::with_algorithm(g, *activator, algorithm).map_err(what)?;
        Ok(ConvLayer { spec: spec.clone(), conv, slot, bias: *bias, s: Vec::new(), fprime_kept: false, wt: Vec::new(), partials: Vec::new(), phases_kept: false })
    }

    fn act(&self) -> &Activator {
        &self.conv.act
    }

    /// Grow the transformed weights or the partial sums (grown in the pass that needs
    /// them, so they are named here; an allocation refused there unwinds to the bindings).
    fn workspace(&mut self, len: usize, partials: bool, n: usize) {
        let buf = if partials { &mut self.partials } else { &mut self.wt };
        if buf.len() < len {
            let (label, name) = (label(self.slot.uid, &self.spec), if partials { "weight-gradient partial sums" } else { "transformed weights" });
            crate::alloc::grown(buf, len, || format!("{label}: the {name} buffer for a batch of {n}"));
        }
    }
}

impl<T: Real> Layer<T> for ConvLayer<T> {
    fn spec(&self) -> &LayerSpec {
        &self.spec
    }

    fn reserve(&mut self, n: usize, what: &str) -> Result<()> {
        if !self.act().from_output() {
            reserve(&mut self.s, n, self.conv.g.out_size(), what, "pre-activations")?;
        }
        Ok(())
    }

    fn release(&mut self) {
        (self.s, self.wt, self.partials, self.phases_kept) = (Vec::new(), Vec::new(), Vec::new(), false);
    }

    fn forward(&mut self, cx: &Ctx, x: &[T], y: &mut [T], t: &mut Tensors<'_, T>) {
        let p = self.slot.param;
        let bias = self.bias.then(|| &t.params[p + 1][..]);
        self.workspace(self.conv.wt_len(), false, cx.n);
        // training with an f′ that needs the pre-activations: keep f′ instead of them
        self.fprime_kept = cx.mode.train() && !self.act().from_output();
        self.phases_kept = cx.mode.train() && self.conv.over_phases();
        self.conv.forward(x, &t.params[p], bias, &mut self.s, y, cx.n, &mut self.wt, &mut self.partials, self.fprime_kept);
    }

    fn backward(&mut self, cx: &Ctx, io: XDx<'_, T>, dy: &mut [T], y: Option<&[T]>, folded: bool, t: &mut Tensors<'_, T>) {
        let (n, p) = (cx.n, self.slot.param);
        let act = *self.act();
        own_fprime(&act, dy, y, &self.s, folded, self.fprime_kept);
        let dy: &[T] = dy;
        let kept = std::mem::take(&mut self.phases_kept);
        self.workspace(self.conv.partials_len(n), true, n);
        self.workspace(self.conv.wt_len(), false, n);
        let (w, grads) = (&t.params[p], &mut *t.grads);
        {
            let x: &[T] = match &io {
                XDx::InPlace(buf, _) => buf,
                XDx::Separate(x, _) => x,
            };
            if kept {
                self.workspace(self.conv.partials_len(n), false, n);
                self.conv.weight_grad(x, dy, n, &mut grads[p], &mut self.wt, &mut self.partials, true);
            } else {
                self.conv.weight_grad(x, dy, n, &mut grads[p], &mut self.partials, &mut self.wt, false);
            }
        }
        if self.bias {
            bias_grad(dy, self.conv.g.filters, &mut grads[p + 1]);
        }
        // ∂L/∂x only now: in place it overwrites the x that the weight gradient read
        match io {
            XDx::InPlace(buf, mask) => self.conv.input_grad(w, dy, n, buf, mask, &mut self.wt, &mut self.partials),
            XDx::Separate(_, Some(dx)) => self.conv.input_grad(w, dy, n, dx, None, &mut self.wt, &mut self.partials),
            XDx::Separate(_, None) => {}
        }
    }

    fn foldable(&self) -> Option<Activator> {
        self.act().from_output().then_some(*self.act())
    }

    fn in_place(&self) -> bool {
        true
    }
}
