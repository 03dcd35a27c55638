//! Convolution layer. Many filters: im2col × gemm over tiles of output positions, so a
//! tile of the column matrix stays in cache whatever the image size (1×1 stride-1
//! convolutions use the input as it is). Few filters: the direct kernels of direct.rs.
//! The activation is applied to each tile or block of rows while it is still in cache.

use crate::activator::Activator;
use crate::direct;
use crate::planar;
use crate::im2col::ConvGeom;
use crate::matmul::{matmul, Mat};
use crate::phases;
use crate::real::Real;
use crate::scratch::{with_scratch, with_window};
use crate::winograd::{self, Wino};
use rayon::prelude::*;

/// Target elements of one work unit (a column tile, or a block of output rows): 128 KiB
/// of f32, which fits L2 beside its weights.
const TILE_ELEMS: usize = 1 << 15;
/// Target elements of one im2col tile: big enough that each gemm call has a tall
/// left operand (packing the weights costs about one pass over them per call).
const GEMM_TILE_ELEMS: usize = 1 << 18;
/// Up to this many filters the direct kernels beat im2col × gemm (gemm's output would
/// have too few columns to pay for writing and reading the column matrix).
const DIRECT_MAX_FILTERS: usize = 4;
/// Weight-gradient partial sums: a fixed number of groups summed in a fixed order, so the
/// result does not depend on thread scheduling or thread count (reproducible training).
const MAX_GROUPS: usize = 16;

#[derive(Clone, Debug)]
pub struct Conv {
    pub g: ConvGeom,
    pub act: Activator,
    plan: direct::Plan,
    /// The direct kernels (few filters) instead of im2col × gemm.
    use_direct: bool,
    /// For stride-1 im2col layers: the geometry of the input gradient as a convolution
    /// of the delta with the flipped weights (see `input_grad_transposed`).
    transposed: Option<ConvGeom>,
    /// Winograd tilings of 3×3 stride-1 layers: the layer's, and its input gradient's.
    wino: Option<Wino>,
    wino_t: Option<Wino>,
    /// Strided layers computed as a stride-1 layer over the input's phases (phases.rs).
    phased: Option<Box<Phased>>,
}

/// The stride-1 geometry over a strided layer's phases, and the layer on it.
#[derive(Clone, Debug)]
struct Phased {
    v: ConvGeom,
    inner: Conv,
}

/// The algorithms a layer can be asked for (docs/engine.md); "auto" picks by shape.
pub const ALGORITHMS: [&str; 6] = ["auto", "im2col", "im2col_t", "winograd", "winograd4", "direct"];

impl Conv {
    /// The layer with the algorithm chosen by shape.
    pub fn new(g: ConvGeom, act: Activator) -> Conv {
        Conv::with_algorithm(g, act, "auto").expect("auto always applies")
    }

    /// The layer computed by `algorithm` (one of ALGORITHMS); an error when the shape
    /// does not allow it.
    pub fn with_algorithm(g: ConvGeom, act: Activator, algorithm: &str) -> crate::Result<Conv> {
        let direct_ok = g.filters <= DIRECT_MAX_FILTERS && !g.pointwise();
        let transposable = !g.pointwise() && g.sx == 1 && g.sy == 1 && g.px < g.fx && g.py < g.fy;
        let transposed = || ConvGeom::new([g.ox, g.oy, g.filters], [g.fx - 1 - g.px, g.fy - 1 - g.py], [g.fx, g.fy], [1, 1], g.z).ok();
        let mut c = Conv { g, act, plan: direct::Plan::new(g), use_direct: false, transposed: None, wino: None, wino_t: None, phased: None };
        let phased = |algorithm: &str| -> crate::Result<Option<Box<Phased>>> {
            let Some(v) = phases::geometry(&g) else { return Ok(None) };
            Ok(Some(Box::new(Phased { v, inner: Conv::with_algorithm(v, act, algorithm)? })))
        };
        match algorithm {
            "auto" => {
                c.use_direct = direct_ok;
                if !direct_ok && transposable {
                    c.transposed = transposed();
                }
                if let Some(m) = winograd::auto_tile(&g).filter(|_| !direct_ok) {
                    c.wino = Some(Wino::new(g, m));
                    c.wino_t = c.transposed.and_then(|gt| winograd::auto_tile(&gt).map(|mt| Wino::new(gt, mt)));
                }
                if !direct_ok && phases::geometry(&g).is_some_and(|v| winograd::auto_tile(&v).is_some()) {
                    c.phased = phased("auto")?;
                }
            }
            "im2col" => {}
            "im2col_t" if transposable => c.transposed = transposed(),
            "winograd" | "winograd4" if winograd::has_tiling(&g, if algorithm == "winograd" { 2 } else { 4 }) && transposable => {
                let m = if algorithm == "winograd" { 2 } else { 4 };
                c.transposed = transposed();
                c.wino = Some(Wino::new(g, m));
                c.wino_t = c.transposed.filter(|gt| winograd::has_tiling(gt, m)).map(|gt| Wino::new(gt, m));
            }
            "winograd4" if phases::geometry(&g).is_some_and(|v| winograd::has_tiling(&v, 4)) => c.phased = phased("winograd4")?,
            "direct" if direct_ok => c.use_direct = true,
            "im2col_t" => crate::bail!("algorithm im2col_t needs stride 1, padding below the field and not a 1×1 convolution"),
            "winograd" => crate::bail!("algorithm winograd needs a 3×3 stride-1 convolution with ≥ 8 channels in and out and padding ≤ 2"),
            "winograd4" => crate::bail!("algorithm winograd4 needs ≥ 8 channels in and out and a 3×3 or 2×2 stride-1 convolution with padding below the field, or a strided one whose field is 2 or 3 strides on each axis"),
            "direct" => crate::bail!("algorithm direct needs at most {DIRECT_MAX_FILTERS} filters and not a 1×1 stride-1 convolution"),
            other => crate::bail!("algorithm: expected one of {ALGORITHMS:?}, got {other:?}"),
        }
        Ok(c)
    }

    fn direct(&self) -> bool {
        self.use_direct
    }

    /// Values of the transformed-weights buffer (`forward`'s `wbuf`, `input_grad`'s `wt`).
    pub fn wt_len(&self) -> usize {
        if let Some(ph) = &self.phased {
            return ph.inner.wt_len();
        }
        let fwd = self.wino.map_or(0, |wg| wg.u_len());
        let back = self.transposed.map_or(0, |gt| gt.k() * self.g.z + self.wino_t.map_or(0, |wg| wg.u_len()));
        fwd.max(back)
    }

    /// Values of `weight_grad`'s partial sums for `n` samples.
    pub fn partials_len(&self, n: usize) -> usize {
        if let Some(ph) = &self.phased {
            return ph.inner.partials_len(n);
        }
        match &self.wino {
            Some(wg) => (wg.unit_count(n).min(MAX_GROUPS) + 1) * wg.u_len(),
            None => (n * self.units().0).min(MAX_GROUPS) * self.g.k() * self.g.filters,
        }
    }

    /// im2col path: output positions per tile, the tiles of a sample equal in size.
    fn tile_rows(&self) -> usize {
        let p = self.g.out_positions().max(1);
        let target = (GEMM_TILE_ELEMS / self.g.k()).max(64).min(p);
        p.div_ceil(p.div_ceil(target))
    }

    /// Direct path: output rows (fixed x) per block, and input rows per block.
    fn row_block(&self) -> usize {
        (TILE_ELEMS / (self.g.oy * self.g.filters)).clamp(1, self.g.ox)
    }
    fn in_row_block(&self) -> usize {
        (TILE_ELEMS / (self.g.y * self.g.z)).clamp(1, self.g.x)
    }

    /// Work units per sample: tiles (im2col) or row blocks (direct), and their size in
    /// output elements.
    fn units(&self) -> (usize, usize) {
        let g = &self.g;
        if self.direct() {
            let r = self.row_block();
            (g.ox.div_ceil(r), r * g.oy * g.filters)
        } else {
            let r = self.tile_rows();
            (g.out_positions().div_ceil(r), r * g.filters)
        }
    }

    /// s = conv(input, w) (+ bias), a = act(s), for `n` samples; only a when the
    /// activator's derivative follows from a (then `s` is not touched); with `keep_fprime`,
    /// f′(s) in place of s (Activator::forward_keep_fprime). `wbuf` holds transformed
    /// weights (Winograd layers); `extra` the input's phases and their weights (strided
    /// layers over phases). The bias and the activation are applied to each work unit
    /// while it is in cache.
    #[allow(clippy::too_many_arguments)]
    pub fn forward<T: Real>(&self, input: &[T], w: &[T], bias: Option<&[T]>, s: &mut [T], a: &mut [T], n: usize, wbuf: &mut Vec<T>, extra: &mut Vec<T>, keep_fprime: bool) {
        let g = &self.g;
        if let Some(ph) = &self.phased {
            let (wp, sb) = self.phase_buffers(ph, extra, n);
            phases::weights_to_phases(g, &ph.v, w, wp);
            phases::space_to_depth(g, &ph.v, input, n, sb);
            return ph.inner.forward(sb, wp, bias, s, a, n, wbuf, &mut Vec::new(), keep_fprime);
        }
        let add = |v: &mut [T]| {
            if let Some(b) = bias {
                crate::layers::add_bias(v, b);
            }
        };
        if let Some(wg) = &self.wino {
            let u = &mut workspace(wbuf, self.wt_len())[..wg.u_len()];
            wg.weights(w, u);
            let u = &*u;
            if self.act.from_output() {
                wg.par_units(a, n, |un, au| {
                    wg.forward_unit(input, u, un, au);
                    add(au);
                    self.act.forward_inplace(au);
                });
            } else {
                wg.par_units(s, n, |un, su| {
                    wg.forward_unit(input, u, un, su);
                    add(su);
                });
                let out = g.out_size();
                a[..n * out].par_chunks_mut(TILE_ELEMS).zip(s[..n * out].par_chunks_mut(TILE_ELEMS)).for_each(|(au, su)| self.act.forward_keeping(su, au, keep_fprime));
            }
            return;
        }
        let (out, inp) = (g.out_size(), g.in_size());
        let (_, unit) = self.units();
        if self.act.from_output() {
            a[..n * out].par_chunks_mut(out).enumerate().for_each(|(ni, a_n)| {
                let x = &input[ni * inp..(ni + 1) * inp];
                a_n.par_chunks_mut(unit).enumerate().for_each(|(ui, au)| {
                    self.forward_unit(x, w, ui, au);
                    add(au);
                    self.act.forward_inplace(au);
                });
            });
            return;
        }
        s[..n * out]
            .par_chunks_mut(out)
            .zip(a[..n * out].par_chunks_mut(out))
            .enumerate()
            .for_each(|(ni, (s_n, a_n))| {
                let x = &input[ni * inp..(ni + 1) * inp];
                s_n.par_chunks_mut(unit).zip(a_n.par_chunks_mut(unit)).enumerate().for_each(|(ui, (su, au))| {
                    self.forward_unit(x, w, ui, su);
                    add(su);
                    self.act.forward_keeping(su, au, keep_fprime);
                });
            });
    }

    #[inline(never)]
    fn forward_unit<T: Real>(&self, x: &[T], w: &[T], ui: usize, su: &mut [T]) {
        let g = &self.g;
        let f = g.filters;
        if self.direct() {
            let row = g.oy * f;
            let ox0 = ui * self.row_block();
            let mut taps = direct::TapList::new();
            planar::for_rows(g, x, ox0, ox0 + su.len() / row, |rows, a, b| {
                direct::forward_rows(&self.plan, rows, w, a, b, &mut su[(a - ox0) * row..(b - ox0) * row], &mut taps);
            });
            return;
        }
        conv_tile(g, x, w, ui * self.tile_rows(), su);
    }

    /// The phases' weights (or their gradient) and the n samples' phases (or their
    /// gradient), in `extra`.
    fn phase_buffers<'b, T: Real>(&self, ph: &Phased, extra: &'b mut Vec<T>, n: usize) -> (&'b mut [T], &'b mut [T]) {
        let kf = self.g.k() * self.g.filters;
        workspace(extra, kf + n * ph.v.in_size()).split_at_mut(kf)
    }

    /// Does this layer run over its input's phases (the buffers of `forward`'s `extra`)?
    pub fn over_phases(&self) -> bool {
        self.phased.is_some()
    }

    /// dw = ∂L/∂w given delta = ∂L/∂s for `n` samples (`extra` as in `forward`). With
    /// `phases_kept`, `extra` still holds the input's phases that `forward` made (a layer
    /// `over_phases`), and they are not made again.
    #[allow(clippy::too_many_arguments)]
    pub fn weight_grad<T: Real>(&self, input: &[T], delta: &[T], n: usize, dw: &mut [T], partials: &mut Vec<T>, extra: &mut Vec<T>, phases_kept: bool) {
        let g = &self.g;
        if let Some(ph) = &self.phased {
            let (dwp, sb) = self.phase_buffers(ph, extra, n);
            if !phases_kept {
                phases::space_to_depth(g, &ph.v, input, n, sb);
            }
            ph.inner.weight_grad(sb, delta, n, dwp, partials, &mut Vec::new(), false);
            return phases::phases_to_weights(g, &ph.v, dwp, dw);
        }
        if let Some(wg) = &self.wino {
            return self.weight_grad_wino(wg, input, delta, n, dw, partials);
        }
        let (k, f) = (g.k(), g.filters);
        let (out, inp) = (g.out_size(), g.in_size());
        let (per_sample, unit) = self.units();
        let jobs = n * per_sample;
        let groups = jobs.min(MAX_GROUPS);
        let kf = k * f;
        let parts = &mut workspace(partials, self.partials_len(n))[..groups * kf];
        parts.par_chunks_mut(kf).enumerate().for_each(|(gi, part)| {
            let first = gi * jobs / groups;
            for j in first..(gi + 1) * jobs / groups {
                let (ni, ui) = (j / per_sample, j % per_sample);
                let start = ui * unit;
                let d = &delta[ni * out + start..ni * out + (start + unit).min(out)];
                self.weight_grad_unit(&input[ni * inp..(ni + 1) * inp], d, ui, part, j > first);
            }
        });
        sum_groups(parts, groups, &mut dw[..kf]);
    }

    /// weight_grad through Winograd: ∂U summed per group of units in a fixed order (as
    /// the im2col path), then dw = Gᵀ ∂U G.
    fn weight_grad_wino<T: Real>(&self, wg: &Wino, input: &[T], delta: &[T], n: usize, dw: &mut [T], partials: &mut Vec<T>) {
        let pz = wg.u_len();
        let jobs = wg.unit_count(n);
        let groups = jobs.min(MAX_GROUPS);
        // the groups' partial sums, then their total in one more slot
        let (parts, total) = workspace(partials, self.partials_len(n))[..(groups + 1) * pz].split_at_mut(groups * pz);
        parts.par_chunks_mut(pz).enumerate().for_each(|(gi, part)| {
            // a group's first unit writes its sum (groups ≤ jobs, so none is empty): zeroing
            // the 16 sums first cost 2–5 % of a step
            let first = gi * jobs / groups;
            for j in first..(gi + 1) * jobs / groups {
                wg.weight_grad_unit(input, delta, &wg.unit(j, n), part, j > first);
            }
        });
        sum_groups(parts, groups, total);
        wg.weight_grad_finish(total, dw);
    }

    /// part = the weight gradient of work unit `ui` of one sample (`d`: its delta), or
    /// part += it with `accumulate`.
    #[inline(never)]
    fn weight_grad_unit<T: Real>(&self, x: &[T], d: &[T], ui: usize, part: &mut [T], accumulate: bool) {
        let g = &self.g;
        let (k, f) = (g.k(), g.filters);
        if self.direct() {
            if !accumulate {
                part.iter_mut().for_each(|v| *v = T::zero());
            }
            let (ox0, row) = (ui * self.row_block(), g.oy * f);
            let mut taps = direct::TapList::new();
            planar::for_rows(g, x, ox0, ox0 + d.len() / row, |rows, a, b| {
                direct::weight_grad_rows(&self.plan, rows, &d[(a - ox0) * row..(b - ox0) * row], a, b, part, &mut taps);
            });
            return;
        }
        let (p0, r) = (ui * self.units().1 / f, d.len() / f);
        let dm = Mat::new(d, r, f);
        if g.pointwise() {
            matmul(Mat::new(&x[p0 * k..(p0 + r) * k], r, k).t(), dm, part, accumulate, 1);
        } else {
            with_scratch(r * k, |col: &mut [T]| {
                g.im2col(x, p0, p0 + r, col);
                matmul(Mat::new(col, r, k).t(), dm, part, accumulate, 1);
            });
        }
    }

    /// dinput = ∂L/∂input given delta = ∂L/∂s for `n` samples. With `mask` (the previous
    /// layer's activator), `dinput` holds that layer's activations on entry and receives
    /// ∂L/∂input ⊙ f'(a): its delta. (`extra` as in `forward`.)
    #[allow(clippy::too_many_arguments)]
    pub fn input_grad<T: Real>(&self, w: &[T], delta: &[T], n: usize, dinput: &mut [T], mask: Option<&Activator>, wt: &mut Vec<T>, extra: &mut Vec<T>) {
        let g = &self.g;
        if let Some(ph) = &self.phased {
            let (wp, dsb) = self.phase_buffers(ph, extra, n);
            phases::weights_to_phases(g, &ph.v, w, wp);
            ph.inner.input_grad(wp, delta, n, dsb, None, wt, &mut Vec::new());
            return phases::depth_to_space(g, &ph.v, dsb, n, dinput, mask);
        }
        if let Some(gt) = &self.transposed {
            return self.input_grad_transposed(gt, w, delta, n, dinput, mask, wt);
        }

        let (out, inp) = (g.out_size(), g.in_size());
        if self.direct() {
            // A gather per input row: blocks of rows write disjoint memory.
            let (yz, rb) = (g.y * g.z, self.in_row_block());
            dinput[..n * inp].par_chunks_mut(inp).enumerate().for_each(|(ni, dx)| {
                let d = &delta[ni * out..(ni + 1) * out];
                dx.par_chunks_mut(rb * yz).enumerate().for_each(|(bi, block)| {
                    let mut taps = direct::TapList::new();
                    direct::input_grad_rows(&self.plan, w, d, bi * rb, block, mask, &mut taps);
                });
            });
            return;
        }
        // one task per sample: the patches of one sample overlap
        dinput[..n * inp]
            .par_chunks_mut(inp)
            .zip(delta[..n * out].par_chunks(out))
            .for_each(|(dx, d)| self.input_grad_sample(w, d, dx, mask));
    }

    /// Stride 1: ∂L/∂input[ix, iy, c] = Σ delta[ix + px − kx, iy + py − ky, f] · w[kx, ky, c, f]
    /// is a convolution of the delta (padding f − 1 − p) with the weights flipped in x and
    /// y and transposed (wt[kx', ky', f, c] = w[fx − 1 − kx', fy − 1 − ky', c, f]). As im2col ×
    /// gemm its inner dimension is fx·fy·F, not F as in delta · wᵀ, and no col2im
    /// scatter-add is needed: gemm runs near its peak on the backward pass too.
    #[allow(clippy::too_many_arguments)]
    fn input_grad_transposed<T: Real>(&self, gt: &ConvGeom, w: &[T], delta: &[T], n: usize, dinput: &mut [T], mask: Option<&Activator>, wt: &mut Vec<T>) {
        let g = &self.g;
        let (f, z) = (g.filters, g.z);
        let kt = gt.k();
        let wino_len = self.wino_t.map_or(0, |wg| wg.u_len());
        let (wt, u) = workspace(wt, self.wt_len())[..kt * z + wino_len].split_at_mut(kt * z);
        wt.par_chunks_mut(f * z).enumerate().for_each(|(kk, block)| {
            let (kx, ky) = (g.fx - 1 - kk / g.fy, g.fy - 1 - kk % g.fy);
            for c in 0..z {
                let src = &w[((kx * g.fy + ky) * z + c) * f..][..f];
                for (fi, &v) in src.iter().enumerate() {
                    block[fi * z + c] = v;
                }
            }
        });
        let wt = &*wt;
        if let Some(wgt) = &self.wino_t {
            wgt.weights(wt, u);
            let u = &*u;
            wgt.par_units(dinput, n, |un, dxu| match mask {
                None => wgt.forward_unit(delta, u, un, dxu),
                Some(_) => with_window(dxu.len(), |acc: &mut [T]| {
                    wgt.forward_unit(delta, u, un, acc);
                    epilogue(acc, dxu, mask);
                }),
            });
            return;
        }
        let (out, inp) = (g.out_size(), g.in_size());
        let p = gt.out_positions().max(1);
        let rows = {
            let target = (GEMM_TILE_ELEMS / kt).max(64).min(p);
            p.div_ceil(p.div_ceil(target))
        };
        dinput[..n * inp].par_chunks_mut(inp).zip(delta[..n * out].par_chunks(out)).for_each(|(dx, d)| {
            dx.par_chunks_mut(rows * z).enumerate().for_each(|(ui, dxu)| match mask {
                None => conv_tile(gt, d, wt, ui * rows, dxu),
                Some(_) => with_window(dxu.len(), |acc: &mut [T]| {
                    conv_tile(gt, d, wt, ui * rows, acc);
                    epilogue(acc, dxu, mask);
                }),
            });
        });
    }

    /// dx = ∂L/∂input of one sample (⊙ f'(a) with `mask`): dcol = delta · wᵀ per tile,
    /// scattered back by col2im into a scratch sum.
    #[inline(never)]
    fn input_grad_sample<T: Real>(&self, w: &[T], delta: &[T], dx: &mut [T], mask: Option<&Activator>) {
        let g = &self.g;
        let (k, f, rows, out_p) = (g.k(), g.filters, self.tile_rows(), g.out_positions());
        let wt = Mat::new(w, k, f).t();
        let inp = g.in_size();
        with_scratch(inp + if g.pointwise() { 0 } else { rows * k }, |buf: &mut [T]| {
            let (acc, dcol) = buf.split_at_mut(inp);
            if !g.pointwise() {
                acc.iter_mut().for_each(|v| *v = T::zero());
            }
            for p0 in (0..out_p).step_by(rows) {
                let r = rows.min(out_p - p0);
                let d = Mat::new(&delta[p0 * f..(p0 + r) * f], r, f);
                if g.pointwise() {
                    matmul(d, wt, &mut acc[p0 * k..(p0 + r) * k], false, 1);
                } else {
                    matmul(d, wt, &mut dcol[..r * k], false, 1);
                    g.col2im_add(&dcol[..r * k], p0, p0 + r, acc);
                }
            }
            epilogue(acc, dx, mask);
        });
    }
}

/// A workspace grown to `len` (the layer grows it first, with its name in errors).
fn workspace<T: Real>(buf: &mut Vec<T>, len: usize) -> &mut [T] {
    crate::alloc::grown(buf, len, || "convolution workspace".into())
}

/// dx = acc, or dx = acc ⊙ f'(a) with `mask` where dx holds a on entry.
#[inline]
pub fn epilogue<T: Real>(acc: &[T], dx: &mut [T], mask: Option<&Activator>) {
    match mask {
        Some(act) => act.mask_into(acc, dx),
        None => dx.copy_from_slice(acc),
    }
}

/// out = Σ of the `groups` equal parts of `parts`, summed group by group over chunks
/// (contiguous, vectorised) in the same order for every element: ((p0 + p1) + p2) + …, so
/// the result does not depend on the thread count.
fn sum_groups<T: Real>(parts: &[T], groups: usize, out: &mut [T]) {
    let len = out.len();
    out.par_chunks_mut(1024).enumerate().for_each(|(ci, chunk)| {
        let at = ci * 1024;
        chunk.copy_from_slice(&parts[at..at + chunk.len()]);
        for gi in 1..groups {
            crate::im2col::add_into(chunk, &parts[gi * len + at..gi * len + at + chunk.len()]);
        }
    });
}


/// out = the convolution's output rows p0.. of one sample (out.len() / F of them): im2col
/// of those positions × the weights, or the input itself as the column matrix for 1×1.
fn conv_tile<T: Real>(g: &ConvGeom, x: &[T], w: &[T], p0: usize, out: &mut [T]) {
    let (k, f) = (g.k(), g.filters);
    let r = out.len() / f;
    let wm = Mat::new(w, k, f);
    if g.pointwise() {
        matmul(Mat::new(&x[p0 * k..(p0 + r) * k], r, k), wm, out, false, 1);
    } else {
        with_scratch(r * k, |col: &mut [T]| {
            g.im2col(x, p0, p0 + r, col);
            matmul(Mat::new(col, r, k), wm, out, false, 1);
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::activator::ActKind;

    /// The stride-1 input gradient as a convolution with flipped weights against the
    /// delta · wᵀ + col2im path, with and without the previous layer's f′ mask.
    #[test]
    fn transposed_input_grad_matches_col2im() {
        for &(dim, pad, field, filters) in &[
            ([6, 5, 3], [1, 1], [3, 3], 5),
            ([7, 4, 2], [0, 2], [2, 3], 6),
            ([5, 6, 4], [2, 0], [3, 1], 8),
            ([9, 9, 1], [1, 1], [4, 4], 7),
        ] {
            let g = ConvGeom::new(dim, pad, field, [1, 1], filters).unwrap();
            let act = Activator { name: ActKind::LeakyRelu, alpha: 0.1, bias: 0.05 };
            let fast = Conv::new(g, act);
            assert!(fast.transposed.is_some(), "{dim:?}");
            let plain = Conv { transposed: None, ..fast.clone() };
            let n = 3;
            let w: Vec<f64> = (0..g.k() * filters).map(|i| ((i * 29) % 31) as f64 / 15.0 - 1.0).collect();
            let d: Vec<f64> = (0..n * g.out_size()).map(|i| ((i * 17) % 23) as f64 / 11.0 - 1.0).collect();
            let a: Vec<f64> = (0..n * g.in_size()).map(|i| ((i * 7) % 13) as f64 / 6.0 - 1.0).collect();
            for mask in [None, Some(&act)] {
                let start = if mask.is_some() { a.clone() } else { vec![f64::NAN; n * g.in_size()] };
                let (mut want, mut got) = (start.clone(), start);
                plain.input_grad(&w, &d, n, &mut want, mask, &mut Vec::new(), &mut Vec::new());
                fast.input_grad(&w, &d, n, &mut got, mask, &mut Vec::new(), &mut Vec::new());
                assert!(want.iter().all(|v| v.is_finite()));
                assert!(got.iter().zip(&want).all(|(x, y)| (x - y).abs() < 1e-12), "{dim:?} {pad:?} {field:?} mask {}", mask.is_some());
            }
        }
    }

    /// Winograd layers (forward, weight gradient, input gradient) against the same layer
    /// on im2col × gemm: whole-sample and part-sample work units, odd output sizes, every
    /// padding, f64 and f32; outputs poisoned.
    #[test]
    fn winograd_matches_im2col() {
        // auto's rule: F(4×4) from 16 channels and 7×7 outputs; not on 3×3 maps or 8 channels
        let big = ConvGeom::new([31, 31, 24], [1, 1], [3, 3], [1, 1], 32).unwrap();
        let small = ConvGeom::new([3, 3, 128], [1, 1], [3, 3], [1, 1], 128).unwrap();
        let thin = ConvGeom::new([16, 16, 8], [1, 1], [3, 3], [1, 1], 64).unwrap();
        assert_eq!(winograd::auto_tile(&big), Some(4));
        assert!(winograd::auto_tile(&small).is_none() && winograd::applies(&small));
        assert!(winograd::auto_tile(&thin).is_none() && winograd::applies(&thin));
        let act = Activator { name: ActKind::Relu, alpha: 0.0, bias: 0.0 };
        assert!(Conv::new(big, act).wino.is_some() && Conv::new(small, act).wino.is_none());
        fn check<T: Real>(algorithm: &str, tol: f64) {
            // (dim, padding, field, stride, filters, n); strided ones run over their phases
            let mut cases = vec![
                ([6, 5, 8], [1, 1], [3, 3], [1, 1], 9, 3usize),
                ([7, 9, 10], [0, 2], [3, 3], [1, 1], 8, 2),
                ([30, 26, 8], [1, 1], [3, 3], [1, 1], 12, 2),
                ([9, 8, 16], [2, 0], [3, 3], [1, 1], 16, 5),
                ([47, 50, 8], [1, 1], [3, 3], [1, 1], 10, 2),
            ];
            if algorithm == "winograd4" {
                cases.extend([
                    ([9, 8, 16], [1, 0], [2, 2], [1, 1], 12, 3), // F(4×4, 2×2)
                    ([12, 10, 8], [1, 1], [4, 4], [2, 2], 9, 3), // its phases
                    ([10, 12, 4], [0, 1], [4, 4], [2, 2], 16, 2),
                    ([34, 30, 8], [1, 1], [4, 4], [2, 2], 8, 2),
                    ([11, 11, 2], [2, 2], [6, 6], [3, 3], 8, 2), // phases of 18 channels, 2×2
                    ([14, 14, 4], [2, 2], [6, 6], [2, 2], 8, 2), // phases 3×3: F(4×4, 3×3)
                ]);
            }
            for &(dim, pad, field, stride, filters, n) in &cases {
                let g = ConvGeom::new(dim, pad, field, stride, filters).unwrap();
                let act = Activator { name: ActKind::LeakyRelu, alpha: 0.1, bias: 0.05 };
                let wino = Conv::with_algorithm(g, act, algorithm).unwrap();
                let tiled = wino.phased.as_ref().map_or(&wino, |ph| &ph.inner);
                assert_eq!(wino.phased.is_some(), stride[0] > 1, "{dim:?} {field:?}");
                assert!(tiled.wino.is_some() && tiled.wino_t.is_some(), "{dim:?}");
                assert_eq!(tiled.wino.unwrap().tile(), if algorithm == "winograd" { 2 } else { 4 });
                let plain = Conv::with_algorithm(g, act, "im2col").unwrap();
                let (inp, out) = (g.in_size(), g.out_size());
                let val = |i: usize, m: usize, q: usize| T::of(((i * m) % q) as f64 / (q as f64 / 2.0) - 1.0);
                let x: Vec<T> = (0..n * inp).map(|i| val(i, 37, 41)).collect();
                let w: Vec<T> = (0..g.k() * filters).map(|i| val(i, 29, 31)).collect();
                let d: Vec<T> = (0..n * out).map(|i| val(i, 17, 23)).collect();
                let close = |a: &[T], b: &[T], what: &str| {
                    assert!(b.iter().all(|v| v.is_finite()), "{what} reference");
                    let worst = a.iter().zip(b).map(|(p, q)| (p.f64() - q.f64()).abs() / (1.0 + q.f64().abs())).fold(0.0, f64::max);
                    assert!(worst < tol, "{algorithm} {what} {dim:?} {pad:?} {field:?} {stride:?} {}: {worst:e}", T::NAME);
                };
                let nan = T::of(f64::NAN);
                let (mut s1, mut a1, mut s2, mut a2) = (vec![nan; n * out], vec![nan; n * out], vec![nan; n * out], vec![nan; n * out]);
                wino.forward(&x, &w, None, &mut s1, &mut a1, n, &mut Vec::new(), &mut Vec::new(), false);
                plain.forward(&x, &w, None, &mut s2, &mut a2, n, &mut Vec::new(), &mut Vec::new(), false);
                close(&a1, &a2, "forward");
                let (mut dw1, mut dw2) = (vec![nan; g.k() * filters], vec![nan; g.k() * filters]);
                wino.weight_grad(&x, &d, n, &mut dw1, &mut Vec::new(), &mut Vec::new(), false);
                plain.weight_grad(&x, &d, n, &mut dw2, &mut Vec::new(), &mut Vec::new(), false);
                close(&dw1, &dw2, "weight grad");
                for mask in [None, Some(&act)] {
                    let start = if mask.is_some() { x.clone() } else { vec![nan; n * inp] };
                    let (mut dx1, mut dx2) = (start.clone(), start);
                    wino.input_grad(&w, &d, n, &mut dx1, mask, &mut Vec::new(), &mut Vec::new());
                    plain.input_grad(&w, &d, n, &mut dx2, mask, &mut Vec::new(), &mut Vec::new());
                    close(&dx1, &dx2, "input grad");
                }
            }
        }
        check::<f64>("winograd", 1e-12);
        check::<f32>("winograd", 1e-4);
        check::<f64>("winograd4", 1e-12);
        // F(4×4)'s larger constants: ~10× the rounding error of F(2×2) (2e-5 measured here;
        // its weight gradient, a sum over ~1500 tiles, 1.3e-4 against 6e-5)
        check::<f32>("winograd4", 5e-4);
    }
}
