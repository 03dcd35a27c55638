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
/// im2col tiles of layers with fewer output positions a sample run over several samples,
/// this many rows (a 4×4 output of 128 filters on 2048-value patches: with one sample a
/// gemm had 16 rows, and packing its 1 MiB of weights for each sample dominated; its
/// step took 14.9 ms, 10.0 ms with 128 rows and 9.5 ms with 256, Xeon, 2026-12-04).
const GROUP_ROWS: usize = 256;
/// The fewest work units a batch is cut into where its samples are small.
const MIN_UNITS: usize = 4;
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
            None => self.unit_count(n).min(MAX_GROUPS) * self.g.k() * self.g.filters,
        }
    }

    /// im2col path for a batch of n: rows (output positions) per tile. Tiles are runs of
    /// the batch's rows: tiles of equal size within a large sample, or runs over several
    /// small samples (one sample, or `GROUP_ROWS` rows where a sample has fewer), and at
    /// least `MIN_UNITS` of them where the batch allows (so that the threads share it).
    fn tile_rows(&self, n: usize) -> usize {
        let p = self.g.out_positions().max(1);
        let target = (GEMM_TILE_ELEMS / self.g.k()).max(64);
        // several samples' rows: the column tile at most twice the target (a layer of few
        // positions and long patches must not get a huge one)
        let rows = if p >= target { p.div_ceil(p.div_ceil(target)) } else { GROUP_ROWS.min(2 * GEMM_TILE_ELEMS / self.g.k()).max(p) };
        rows.min((n * p).div_ceil(MIN_UNITS).max(64)).max(1)
    }

    /// Work units of a batch of n: tiles (im2col, all of them `tile_rows` long but the
    /// batch's last) or blocks of rows of one sample (direct, `units_per_sample` a sample).
    fn unit_count(&self, n: usize) -> usize {
        if self.direct() {
            n * self.units_per_sample()
        } else {
            (n * self.g.out_positions()).div_ceil(self.tile_rows(n))
        }
    }

    /// Direct path: output rows (fixed x) per block, and input rows per block.
    fn row_block(&self) -> usize {
        (TILE_ELEMS / (self.g.oy * self.g.filters)).clamp(1, self.g.ox)
    }
    fn in_row_block(&self) -> usize {
        (TILE_ELEMS / (self.g.y * self.g.z)).clamp(1, self.g.x)
    }

    /// Direct path: row blocks per sample.
    fn units_per_sample(&self) -> usize {
        self.g.ox.div_ceil(self.row_block())
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
        let out = g.out_size();
        // the unit's output, computed, biased and activated while in cache
        let unit = |u: Unit<T>, su: &mut [T], au: Option<&mut [T]>| {
            self.forward_unit(input, w, u, su);
            add(su);
            match au {
                None => self.act.forward_inplace(su),
                Some(au) => self.act.forward_keeping(su, au, keep_fprime),
            }
        };
        if self.direct() {
            let (inp, rows) = (g.in_size(), self.row_block() * g.oy * g.filters);
            let sample = |ni: usize| &input[ni * inp..(ni + 1) * inp];
            if self.act.from_output() {
                a[..n * out].par_chunks_mut(out).enumerate().for_each(|(ni, a_n)| {
                    a_n.par_chunks_mut(rows).enumerate().for_each(|(ui, au)| unit(Unit::Rows(sample(ni), ui * rows), au, None));
                });
            } else {
                s[..n * out].par_chunks_mut(out).zip(a[..n * out].par_chunks_mut(out)).enumerate().for_each(|(ni, (s_n, a_n))| {
                    s_n.par_chunks_mut(rows).zip(a_n.par_chunks_mut(rows)).enumerate().for_each(|(ui, (su, au))| unit(Unit::Rows(sample(ni), ui * rows), su, Some(au)));
                });
            }
            return;
        }
        let tile = self.tile_rows(n) * g.filters;
        if self.act.from_output() {
            a[..n * out].par_chunks_mut(tile).enumerate().for_each(|(ui, au)| unit(Unit::Tile(ui * tile), au, None));
        } else {
            s[..n * out].par_chunks_mut(tile).zip(a[..n * out].par_chunks_mut(tile)).enumerate().for_each(|(ui, (su, au))| unit(Unit::Tile(ui * tile), su, Some(au)));
        }
    }

    /// su = the convolution's output for unit `u` (without bias and activation).
    #[inline(never)]
    fn forward_unit<T: Real>(&self, input: &[T], w: &[T], u: Unit<T>, su: &mut [T]) {
        let g = &self.g;
        match u {
            Unit::Rows(x, e0) => {
                let row = g.oy * g.filters;
                let ox0 = e0 / row;
                let mut taps = direct::TapList::new();
                planar::for_rows(g, x, ox0, ox0 + su.len() / row, |rows, a, b| {
                    direct::forward_rows(&self.plan, rows, w, a, b, &mut su[(a - ox0) * row..(b - ox0) * row], &mut taps);
                });
            }
            Unit::Tile(e0) => conv_rows(g, input, w, e0 / g.filters, su),
        }
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
        let kf = g.k() * g.filters;
        let (out, inp) = (g.out_size(), g.in_size());
        let jobs = self.unit_count(n);
        let groups = jobs.min(MAX_GROUPS);
        // job j's unit and its delta: row blocks of a sample (direct), tiles of the batch
        let (direct, ups, rows) = (self.direct(), self.units_per_sample(), self.row_block() * g.oy * g.filters);
        let tile = if direct { 0 } else { self.tile_rows(n) * g.filters };
        let job = |j: usize| -> (Unit<T>, &[T]) {
            if direct {
                let (ni, e0) = (j / ups, j % ups * rows);
                (Unit::Rows(&input[ni * inp..(ni + 1) * inp], e0), &delta[ni * out + e0..ni * out + (e0 + rows).min(out)])
            } else {
                (Unit::Tile(j * tile), &delta[j * tile..((j + 1) * tile).min(n * out)])
            }
        };
        let parts = &mut workspace(partials, self.partials_len(n))[..groups * kf];
        parts.par_chunks_mut(kf).enumerate().for_each(|(gi, part)| {
            let first = gi * jobs / groups;
            for j in first..(gi + 1) * jobs / groups {
                let (u, d) = job(j);
                self.weight_grad_unit(input, u, d, part, j > first);
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

    /// part = the weight gradient of work unit `u` (`d`: its delta), or part += it with
    /// `accumulate`.
    #[inline(never)]
    fn weight_grad_unit<T: Real>(&self, input: &[T], u: Unit<T>, d: &[T], part: &mut [T], accumulate: bool) {
        let g = &self.g;
        let (k, f) = (g.k(), g.filters);
        match u {
            Unit::Rows(x, e0) => {
                if !accumulate {
                    part.iter_mut().for_each(|v| *v = T::zero());
                }
                let row = g.oy * f;
                let ox0 = e0 / row;
                let mut taps = direct::TapList::new();
                planar::for_rows(g, x, ox0, ox0 + d.len() / row, |rows, a, b| {
                    direct::weight_grad_rows(&self.plan, rows, &d[(a - ox0) * row..(b - ox0) * row], a, b, part, &mut taps);
                });
            }
            Unit::Tile(e0) => {
                let (r0, r) = (e0 / f, d.len() / f);
                let dm = Mat::new(d, r, f);
                if g.pointwise() {
                    matmul(Mat::new(&input[r0 * k..(r0 + r) * k], r, k).t(), dm, part, accumulate, 1);
                } else {
                    with_scratch(r * k, |col: &mut [T]| {
                        im2col_rows(g, input, r0, r0 + r, col);
                        matmul(Mat::new(col, r, k).t(), dm, part, accumulate, 1);
                    });
                }
            }
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
        // one task per sample (the patches of one sample overlap), or per group of the
        // small samples that make one tile
        let rows = self.tile_rows(n);
        let per = (rows / g.out_positions().max(1)).max(1);
        dinput[..n * inp]
            .par_chunks_mut(per * inp)
            .zip(delta[..n * out].par_chunks(per * out))
            .for_each(|(dx, d)| self.input_grad_samples(w, d, dx, rows, mask));
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
                None => conv_rows(gt, d, wt, ui * rows, dxu),
                Some(_) => with_window(dxu.len(), |acc: &mut [T]| {
                    conv_rows(gt, d, wt, ui * rows, acc);
                    epilogue(acc, dxu, mask);
                }),
            });
        });
    }

    /// dx = ∂L/∂input of a few samples (⊙ f'(a) with `mask`): dcol = delta · wᵀ per tile
    /// of `rows` rows, scattered back by col2im into a scratch sum (1×1: dcol is the sum).
    #[inline(never)]
    fn input_grad_samples<T: Real>(&self, w: &[T], delta: &[T], dx: &mut [T], rows: usize, mask: Option<&Activator>) {
        let g = &self.g;
        let (k, f) = (g.k(), g.filters);
        let (total, wt) = (delta.len() / f, Mat::new(w, k, f).t());
        let (inp, len) = (g.in_size(), dx.len());
        with_scratch(len + if g.pointwise() { 0 } else { rows.min(total) * k }, |buf: &mut [T]| {
            let (acc, dcol) = buf.split_at_mut(len);
            if g.pointwise() {
                matmul(Mat::new(delta, total, f), wt, acc, false, 1);
            } else {
                acc.iter_mut().for_each(|v| *v = T::zero());
                for r0 in (0..total).step_by(rows) {
                    let r1 = total.min(r0 + rows);
                    matmul(Mat::new(&delta[r0 * f..r1 * f], r1 - r0, f), wt, &mut dcol[..(r1 - r0) * k], false, 1);
                    each_sample(g, r0, r1, |ni, p0, p1, at| g.col2im_add(&dcol[at * k..(at + p1 - p0) * k], p0, p1, &mut acc[ni * inp..(ni + 1) * inp]));
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


/// A work unit of the direct and im2col paths.
#[derive(Clone, Copy)]
enum Unit<'a, T> {
    /// Direct: output rows of one sample, from its input and the unit's offset in that
    /// sample's output.
    Rows(&'a [T], usize),
    /// im2col: a tile of the batch's output rows, from this offset in the batch's output.
    Tile(usize),
}

/// Visit the pieces of the batch's output rows r0..r1 in each sample they cross:
/// `f(sample, its positions p0..p1, their first row counted from r0)`.
fn each_sample(g: &ConvGeom, r0: usize, r1: usize, mut f: impl FnMut(usize, usize, usize, usize)) {
    let p = g.out_positions();
    let mut r = r0;
    while r < r1 {
        let (ni, p0) = (r / p, r % p);
        let p1 = p.min(p0 + r1 - r);
        f(ni, p0, p1, r - r0);
        r += p1 - p0;
    }
}

/// col = the im2col rows of the batch's output rows r0..r1.
fn im2col_rows<T: Real>(g: &ConvGeom, input: &[T], r0: usize, r1: usize, col: &mut [T]) {
    let (k, inp) = (g.k(), g.in_size());
    each_sample(g, r0, r1, |ni, p0, p1, at| g.im2col(&input[ni * inp..(ni + 1) * inp], p0, p1, &mut col[at * k..]));
}

/// out = the convolution's output rows r0.. of a batch (out.len() / F of them): im2col of
/// those positions × the weights, or the input itself as the column matrix for 1×1.
fn conv_rows<T: Real>(g: &ConvGeom, input: &[T], w: &[T], r0: usize, out: &mut [T]) {
    let (k, f) = (g.k(), g.filters);
    let r = out.len() / f;
    let wm = Mat::new(w, k, f);
    if g.pointwise() {
        matmul(Mat::new(&input[r0 * k..(r0 + r) * k], r, k), wm, out, false, 1);
    } else {
        with_scratch(r * k, |col: &mut [T]| {
            im2col_rows(g, input, r0, r0 + r, col);
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
