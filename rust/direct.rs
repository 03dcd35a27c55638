//! Direct convolution for layers with few filters (the article's glasses net has one):
//! there gemm's output would have a column or two, im2col only moves memory, and a
//! sliding multiply-add along each input row is faster.
//!
//! The kernels read the input rows in *phase-planar* order (planar.rs): consecutive
//! outputs along y then read consecutive inputs for every tap, whatever the stride and
//! depth, so each tap is a contiguous axpy (forward, input gradient) or dot product
//! (weight gradient). Index map as im2col.rs: tap = (kx·fy + ky)·Z + c.

use crate::activator::Activator;
use crate::direct1::{self, Tap};
pub use crate::direct1::TapList;
use crate::im2col::ConvGeom;
use crate::lanes::{chunk, lanes_fn, Isa, Lanes};
use crate::real::Real;
use crate::planar::{from_planar_row, needs_planar, phase_start, Rows};
use crate::scratch::with_scratch;
use crate::simd::simd_fn;

/// The output columns oy whose input column oy·sy + ky − py lies inside the input.
#[inline(always)]
fn oy_range(g: &ConvGeom, ky: usize) -> (usize, usize) {
    let lo = if g.py > ky { (g.py - ky).div_ceil(g.sy) } else { 0 };
    let top = g.y as isize - 1 + g.py as isize - ky as isize;
    let hi = if top < 0 { 0 } else { (top as usize / g.sy + 1).min(g.oy) };
    (lo, hi.max(lo))
}

/// Where, in a planar row, the inputs of tap row ky for outputs lo.. start.
#[inline(always)]
fn segment_start(g: &ConvGeom, ky: usize, lo: usize) -> usize {
    let iy = lo * g.sy + ky - g.py;
    phase_start(g, iy % g.sy) + iy / g.sy
}

/// The input row that output row `ox` reads through tap column kx, if inside the input.
#[inline(always)]
fn input_row(g: &ConvGeom, ox: usize, kx: usize) -> Option<usize> {
    (ox * g.sx + kx).checked_sub(g.px).filter(|&ix| ix < g.x)
}

/// The output row that reads input row `ix` through tap column kx, if there is one.
#[inline(always)]
fn output_row(g: &ConvGeom, ix: usize, kx: usize) -> Option<usize> {
    (ix + g.px).checked_sub(kx).filter(|t| t.is_multiple_of(g.sx)).map(|t| t / g.sx).filter(|&ox| ox < g.ox)
}

/// Tap row ky of a layer reaches outputs lo..hi, whose inputs start at `start` in a
/// planar row.
#[derive(Clone, Copy, Debug)]
struct Span {
    ky: usize,
    lo: usize,
    hi: usize,
    start: usize,
}

/// A layer's tables for the direct kernels, computed once (computed per row, their
/// integer divisions had cost as much as the multiply-adds of a 100-wide row).
#[derive(Clone, Debug)]
pub struct Plan {
    pub g: ConvGeom,
    spans: Vec<Span>,
    /// Where the set of live taps changes along an output row, and along a planar input
    /// row (for the input gradient's gather).
    out_cuts: Vec<usize>,
    in_cuts: Vec<usize>,
}

impl Plan {
    pub fn new(g: ConvGeom) -> Plan {
        let spans: Vec<Span> = (0..g.fy)
            .filter_map(|ky| {
                let (lo, hi) = oy_range(&g, ky);
                (lo < hi).then(|| Span { ky, lo, hi, start: segment_start(&g, ky, lo) })
            })
            .collect();
        let cuts = |mut v: Vec<usize>| {
            v.sort_unstable();
            v.dedup();
            v
        };
        let out_cuts = cuts([0, g.oy].into_iter().chain(spans.iter().flat_map(|s| [s.lo, s.hi])).collect());
        let in_cuts = cuts([0, g.y].into_iter().chain(spans.iter().flat_map(|s| [s.start, s.start + s.hi - s.lo])).collect());
        Plan { g, spans, out_cuts, in_cuts }
    }
}

/// For output row `ox`: run `$body` for each tap with its contiguous input segment
/// (`$row[$start..]`, the planar row of channel c at input row ix) and its oy range
/// `$lo..$hi`. A macro, not a function taking a closure, so that the body is compiled
/// inside the caller (and so into its AVX2 version).
macro_rules! for_taps {
    ($plan:expr, $rows:expr, $ox:expr, |$tap:ident, $row:ident, $start:ident, $lo:ident, $hi:ident| $body:block) => {
        let (plan, rows, ox) = ($plan, $rows, $ox);
        let g = &plan.g;
        for kx in 0..g.fx {
            let Some(ix) = input_row(g, ox, kx) else { continue };
            for sp in &plan.spans {
                let (ky, $lo, $hi, $start) = (sp.ky, sp.lo, sp.hi, sp.start);
                for c in 0..g.z {
                    let $row = rows.row(g, c, ix);
                    let $tap = (kx * g.fy + ky) * g.z + c;
                    $body
                }
            }
        }
    };
}

/// y += a·x, written so that it vectorises.
#[inline(always)]
fn axpy<T: Real>(y: &mut [T], a: T, x: &[T]) {
    for (o, &v) in y.iter_mut().zip(x) {
        *o += a * v;
    }
}

/// Σ a·b. For f32 on a CPU with AVX2 and FMA: explicit 8-lane fused multiply-adds
/// (LLVM vectorises the generic loop poorly); otherwise two 8-lane accumulators (a single
/// running sum would serialise on the add latency). Fixed order: deterministic.
#[inline(always)]
fn dot<T: Real>(a: &[T], b: &[T]) -> T {
    if let (Some(a), Some(b), Some(l)) = (T::as_f32_slice(a), T::as_f32_slice(b), crate::lanes::detect()) {
        return T::of(dot_f32(l, a, b) as f64);
    }
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let (mut p, mut q) = ([T::zero(); 8], [T::zero(); 8]);
    let (ca, cb) = (a.chunks_exact(16), b.chunks_exact(16));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for i in 0..8 {
            p[i] += x[i] * y[i];
        }
        for i in 0..8 {
            q[i] += x[8 + i] * y[8 + i];
        }
    }
    let mut tail = T::zero();
    for (x, y) in ra.iter().zip(rb) {
        tail += *x * *y;
    }
    for i in 0..8 {
        p[i] += q[i];
    }
    ((p[0] + p[4]) + (p[1] + p[5])) + ((p[2] + p[6]) + (p[3] + p[7])) + tail
}

lanes_fn! {
    /// Σ a·b in f32, four 8-lane accumulators (enough to cover the FMA latency).
    fn dot_f32(l: Isa, a: &[f32], b: &[f32]) -> f32 {
        let n = a.len().min(b.len());
        let (a, b) = (&a[..n], &b[..n]);
        let mut acc = [l.zero(); 4];
        let mut i = 0;
        while i + 32 <= n {
            for (j, v) in acc.iter_mut().enumerate() {
                *v = l.fma(l.load(chunk(a, i + 8 * j)), l.load(chunk(b, i + 8 * j)), *v);
            }
            i += 32;
        }
        while i + 8 <= n {
            acc[0] = l.fma(l.load(chunk(a, i)), l.load(chunk(b, i)), acc[0]);
            i += 8;
        }
        let mut total = l.sum(l.add(l.add(acc[0], acc[1]), l.add(acc[2], acc[3])));
        for (x, y) in a[i..].iter().zip(&b[i..]) {
            total += x * y;
        }
        total
    }
}

/// Delta row [oy][f] as per-filter rows [f][oy] (a view when there is one filter).
#[inline(always)]
fn by_filter<'a, T: Real>(g: &ConvGeom, d_row: &'a [T], buf: &'a mut [T]) -> &'a [T] {
    let f_n = g.filters;
    if f_n == 1 {
        return d_row;
    }
    for (oy, d) in d_row.chunks(f_n).enumerate() {
        for (f, &v) in d.iter().enumerate() {
            buf[f * g.oy + oy] = v;
        }
    }
    &buf[..f_n * g.oy]
}

simd_fn! {
    /// acc[f·OY + oy] = Σ over taps, for output row `ox` (filter-major, OY·F long).
    fn forward_acc<T: Real>(plan: &Plan, rows: Rows<'_, T>, w: &[T], ox: usize, acc: &mut [T]) {
        let (f_n, oy_n) = (plan.g.filters, plan.g.oy);
        acc.iter_mut().for_each(|v| *v = T::zero());
        for_taps!(plan, rows, ox, |tap, row, start, lo, hi| {
            for f in 0..f_n {
                axpy(&mut acc[f * oy_n + lo..f * oy_n + hi], w[tap * f_n + f], &row[start..start + hi - lo]);
            }
        });
    }
}

/// out = the output rows a..b of one sample (OY·F values each). `taps` is scratch.
#[inline(never)]
pub fn forward_rows<T: Real>(plan: &Plan, rows: Rows<'_, T>, w: &[T], a: usize, b: usize, out: &mut [T], taps: &mut TapList) {
    let (f_n, oy_n) = (plan.g.filters, plan.g.oy);
    if let (Some(data), Some(w), Some(out)) = (f32s(rows.data), f32s(w), f32s_mut(out)) {
        if let Some(l) = one_filter_kernels(&plan.g) {
            for (r0, r1) in runs(&plan.g, a, b) {
                row_taps(plan, Rows { data, x0: rows.x0 }, w, r0, taps);
                direct1::gather(l, data, row_stride(&plan.g), r1 - r0, taps.as_slice(), &plan.out_cuts, &mut out[(r0 - a) * oy_n..(r1 - a) * oy_n]);
            }
            return;
        }
    }
    for (ox, s_row) in (a..b).zip(out.chunks_mut(oy_n * f_n)) {
        if f_n == 1 {
            forward_acc(plan, rows, w, ox, s_row);
            continue;
        }
        with_scratch(f_n * oy_n, |acc: &mut [T]| {
            forward_acc(plan, rows, w, ox, acc);
            for (oy, s) in s_row.chunks_mut(f_n).enumerate() {
                for (f, v) in s.iter_mut().enumerate() {
                    *v = acc[f * oy_n + oy];
                }
            }
        });
    }
}

/// Split output rows a..b into runs whose rows read the same taps (the same kx lie inside
/// the input): within a run, row ox + 1 reads what row ox reads, sx input rows further.
fn runs(g: &ConvGeom, a: usize, b: usize) -> impl Iterator<Item = (usize, usize)> + '_ {
    let inside = move |ox: usize| (0..g.fx).all(|kx| input_row(g, ox, kx).is_some());
    let mut ox = a;
    std::iter::from_fn(move || {
        if ox >= b {
            return None;
        }
        let start = ox;
        ox += 1;
        // edge rows (some kx in the padding) run alone; inner rows together
        if inside(start) {
            while ox < b && inside(ox) {
                ox += 1;
            }
        }
        Some((start, ox))
    })
}

/// The distance between the planar rows that consecutive output rows start at.
#[inline(always)]
fn row_stride(g: &ConvGeom) -> usize {
    g.sx * g.z * g.y
}

/// The instruction set of the register-blocked one-filter f32 kernels of direct1.rs, if
/// they take this layer (the caller has checked that T is f32).
#[inline(always)]
fn one_filter_kernels(g: &ConvGeom) -> Option<Isa> {
    crate::lanes::detect().filter(|_| g.filters == 1 && g.k() <= direct1::MAX_TAPS)
}

/// The taps of output row `ox` for direct1.rs: output oy reads rows.data[base + oy].
#[inline(always)]
fn row_taps(plan: &Plan, rows: Rows<'_, f32>, w: &[f32], ox: usize, taps: &mut TapList) {
    taps.clear();
    for_taps!(plan, rows, ox, |tap, row, start, lo, hi| {
        // `row` is a sub-slice of rows.data: where it starts, from the addresses
        let at = ((row.as_ptr().addr() - rows.data.as_ptr().addr()) / std::mem::size_of::<f32>()) as isize;
        taps.push(Tap { base: at + start as isize - lo as isize, w: w.get(tap).copied().unwrap_or(0.0), id: tap as u32, lo: lo as u32, hi: hi as u32 });
    });
}

/// `s` as f32 when T is f32.
#[inline(always)]
fn f32s<T: Real>(s: &[T]) -> Option<&[f32]> {
    T::as_f32_slice(s)
}

#[inline(always)]
fn f32s_mut<T: Real>(s: &mut [T]) -> Option<&mut [f32]> {
    T::as_f32_slice_mut(s)
}

simd_fn! {
    /// dw[tap, f] += Σ_oy input · d, with d filter-major ([f][oy]).
    fn weight_grad_acc<T: Real>(plan: &Plan, rows: Rows<'_, T>, d: &[T], ox: usize, dw: &mut [T]) {
        let (f_n, oy_n) = (plan.g.filters, plan.g.oy);
        for_taps!(plan, rows, ox, |tap, row, start, lo, hi| {
            for f in 0..f_n {
                dw[tap * f_n + f] += dot(&row[start..start + hi - lo], &d[f * oy_n + lo..f * oy_n + hi]);
            }
        });
    }
}

/// dw[tap, f] += Σ_oy input · delta over output rows a..b of one sample (`d`: their
/// deltas, OY·F each).
#[inline(never)]
pub fn weight_grad_rows<T: Real>(plan: &Plan, rows: Rows<'_, T>, d: &[T], a: usize, b: usize, dw: &mut [T], taps: &mut TapList) {
    let g = &plan.g;
    let row = g.oy * g.filters;
    if let (Some(data), Some(d), Some(dw)) = (f32s(rows.data), f32s(d), f32s_mut(dw)) {
        if let Some(l) = one_filter_kernels(g) {
            for (r0, r1) in runs(g, a, b) {
                row_taps(plan, Rows { data, x0: rows.x0 }, &[], r0, taps);
                direct1::correlate(l, data, row_stride(g), r1 - r0, taps.as_slice(), &plan.out_cuts, &d[(r0 - a) * row..(r1 - a) * row], dw);
            }
            return;
        }
    }
    for (ox, d_row) in (a..b).zip(d.chunks(row)) {
        if g.filters == 1 {
            weight_grad_acc(plan, rows, d_row, ox, dw);
            continue;
        }
        with_scratch(g.filters * g.oy, |buf: &mut [T]| {
            let d = by_filter(g, d_row, buf);
            weight_grad_acc(plan, rows, d, ox, dw);
        });
    }
}

simd_fn! {
    /// acc (planar order, Z·Y) = ∂L/∂input row `ix`: a gather over the output rows that
    /// read it. `dbuf` is scratch for a delta row in filter-major order.
    fn input_grad_acc<T: Real>(plan: &Plan, w: &[T], delta: &[T], ix: usize, acc: &mut [T], dbuf: &mut [T]) {
        let g = &plan.g;
        let (f_n, oy_n, yn) = (g.filters, g.oy, g.y);
        acc.iter_mut().for_each(|v| *v = T::zero());
        for kx in 0..g.fx {
            let Some(ox) = output_row(g, ix, kx) else { continue };
            let d = by_filter(g, &delta[ox * oy_n * f_n..(ox + 1) * oy_n * f_n], dbuf);
            for sp in &plan.spans {
                let (ky, lo, hi, start) = (sp.ky, sp.lo, sp.hi, sp.start);
                for c in 0..g.z {
                    let tap = (kx * g.fy + ky) * g.z + c;
                    let seg = &mut acc[c * yn + start..c * yn + start + hi - lo];
                    for f in 0..f_n {
                        axpy(seg, w[tap * f_n + f], &d[f * oy_n + lo..f * oy_n + hi]);
                    }
                }
            }
        }
    }
}

/// input_grad_acc for one filter in f32, by direct1::gather: per channel, each tap a
/// shifted view of the delta row of the output row that reads input row `ix`.
fn input_grad_gather(l: Isa, plan: &Plan, w: &[f32], delta: &[f32], ix: usize, acc: &mut [f32], taps: &mut TapList) {
    let g = &plan.g;
    let yn = g.y;
    for c in 0..g.z {
        input_taps(plan, w, ix, c, taps);
        direct1::gather(l, delta, 0, 1, taps.as_slice(), &plan.in_cuts, &mut acc[c * yn..(c + 1) * yn]);
    }
}

/// The taps of input row `ix`, channel c, for the gather form of the input gradient:
/// planar position q ∈ [start, start + hi − lo) reads delta[ox·OY + lo + q − start].
fn input_taps(plan: &Plan, w: &[f32], ix: usize, c: usize, taps: &mut TapList) {
    let g = &plan.g;
    taps.clear();
    for kx in 0..g.fx {
        let Some(ox) = output_row(g, ix, kx) else { continue };
        for sp in &plan.spans {
            let (ky, lo, hi, start) = (sp.ky, sp.lo, sp.hi, sp.start);
            let tap = (kx * g.fy + ky) * g.z + c;
            taps.push(Tap { base: (ox * g.oy + lo) as isize - start as isize, w: w[tap], id: tap as u32, lo: start as u32, hi: (start + hi - lo) as u32 });
        }
    }
}

/// dx rows ix0.. of one sample (`block`: whole rows of Y·Z values; see input_grad_row).
/// For one filter on one channel at stride 1 (f32, AVX2), the rows whose taps all lie
/// inside the delta share one tap list and are gathered together.
pub fn input_grad_rows<T: Real>(plan: &Plan, w: &[T], delta: &[T], ix0: usize, block: &mut [T], mask: Option<&Activator>, taps: &mut TapList) {
    let g = &plan.g;
    let yz = g.y * g.z;
    let nrows = block.len() / yz;
    if let (Some(wf), Some(df), Some(l)) = (f32s(w), f32s(delta), one_filter_kernels(g)) {
        if g.z == 1 && g.sx == 1 && !needs_planar(g) {
            // rows whose every kx reads an output row: ix + px − kx ∈ [0, OX) for all kx
            let (lo, hi) = ((g.fx - 1).saturating_sub(g.px), g.ox.saturating_sub(g.px));
            let a = lo.clamp(ix0, ix0 + nrows);
            let b = hi.clamp(a, ix0 + nrows);
            for (i, row) in block[..(a - ix0) * yz].chunks_mut(yz).enumerate() {
                input_grad_row(plan, w, delta, ix0 + i, row, mask, taps);
            }
            if b > a {
                inner_input_rows(l, plan, wf, df, a, b, &mut block[(a - ix0) * yz..(b - ix0) * yz], mask, taps);
            }
            for (i, row) in block[(b - ix0) * yz..].chunks_mut(yz).enumerate() {
                input_grad_row(plan, w, delta, b + i, row, mask, taps);
            }
            return;
        }
    }
    for (i, row) in block.chunks_mut(yz).enumerate() {
        input_grad_row(plan, w, delta, ix0 + i, row, mask, taps);
    }
}

/// Inner input rows a..b (one filter, one channel, stride 1, f32): one gather over all
/// of them, then the mask.
#[allow(clippy::too_many_arguments)]
fn inner_input_rows<T: Real>(l: Isa, plan: &Plan, w: &[f32], delta: &[f32], a: usize, b: usize, dx: &mut [T], mask: Option<&Activator>, taps: &mut TapList) {
    let g = &plan.g;
    with_scratch((b - a) * g.y, |acc: &mut [T]| {
        let accf = f32s_mut(acc).expect("T is f32 here");
        input_taps(plan, w, a, 0, taps);
        // rows a..b read one output row further per input row (all their kx are inside)
        direct1::gather(l, delta, g.oy, b - a, taps.as_slice(), &plan.in_cuts, accf);
        crate::conv::epilogue(acc, dx, mask);
    });
}

/// dx_row = ∂L/∂input for input row `ix` of one sample (Y·Z values, channels last),
/// computed as a gather so rows can run in parallel. With `mask`, dx_row holds the
/// previous layer's activations on entry and receives the gradient ⊙ f'(a) (see
/// conv::epilogue).
#[inline(never)]
pub fn input_grad_row<T: Real>(plan: &Plan, w: &[T], delta: &[T], ix: usize, dx_row: &mut [T], mask: Option<&Activator>, taps: &mut TapList) {
    let g = &plan.g;
    let zy = g.z * g.y;
    let dlen = if g.filters == 1 { 0 } else { g.filters * g.oy };
    with_scratch(2 * zy + dlen, |buf: &mut [T]| {
        let (acc, rest) = buf.split_at_mut(zy);
        let (row, dbuf) = rest.split_at_mut(zy);
        match (f32s(w), f32s(delta), f32s_mut(acc), one_filter_kernels(g)) {
            (Some(w), Some(delta), Some(acc), Some(l)) => input_grad_gather(l, plan, w, delta, ix, acc, taps),
            _ => input_grad_acc(plan, w, delta, ix, acc, dbuf),
        }
        // back to channels-last order
        let acc: &[T] = if needs_planar(g) {
            from_planar_row(g, acc, row);
            row
        } else {
            acc
        };
        crate::conv::epilogue(acc, dx_row, mask);
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::matmul::{matmul, Mat};
    use crate::planar::for_rows;

    #[test]
    fn dot_matches_a_plain_sum_for_every_length() {
        for n in 0..80 {
            let a: Vec<f32> = (0..n).map(|i| ((i * 37) % 23) as f32 / 7.0 - 1.5).collect();
            let b: Vec<f32> = (0..n).map(|i| ((i * 11) % 19) as f32 / 5.0 - 1.7).collect();
            let want: f64 = a.iter().zip(&b).map(|(x, y)| *x as f64 * *y as f64).sum();
            let got = dot(&a, &b) as f64;
            assert!((got - want).abs() <= 1e-5 * (1.0 + want.abs()), "n = {n}: {got} vs {want}");
            let (a64, b64): (Vec<f64>, Vec<f64>) = (a.iter().map(|&v| v as f64).collect(), b.iter().map(|&v| v as f64).collect());
            assert!((dot(&a64, &b64) - want).abs() <= 1e-12 * (1.0 + want.abs()));
        }
    }

    /// The direct kernels against im2col × gemm on awkward geometries.
    #[test]
    fn direct_matches_im2col() {
        for &(dim, pad, field, stride, filters) in &[
            ([9, 7, 1], [1, 1], [3, 3], [1, 1], 1),
            ([10, 8, 3], [1, 1], [4, 4], [2, 2], 1),
            ([6, 11, 2], [2, 0], [3, 2], [1, 3], 3),
            ([5, 5, 1], [3, 3], [2, 2], [1, 1], 2),
            ([7, 9, 3], [0, 2], [1, 5], [3, 2], 4),
            ([5, 41, 3], [1, 1], [3, 3], [1, 1], 1),
            ([6, 40, 1], [1, 1], [4, 4], [2, 2], 1),
            ([4, 83, 3], [1, 1], [3, 3], [1, 1], 1),
            ([5, 86, 1], [1, 1], [4, 4], [1, 2], 1),
            ([3, 70, 2], [0, 2], [2, 5], [1, 1], 1),
            ([70, 9, 3], [1, 1], [3, 3], [1, 1], 1),   // several chunks of for_rows
            ([68, 10, 1], [1, 1], [4, 4], [2, 2], 1),
        ] {
            let g = ConvGeom::new(dim, pad, field, stride, filters).unwrap();
            let plan = Plan::new(g);
            let mut taps = TapList::new();
            let (k, f) = (g.k(), g.filters);
            let x: Vec<f64> = (0..g.in_size()).map(|i| ((i * 31) % 17) as f64 / 8.0 - 1.0).collect();
            let w: Vec<f64> = (0..k * f).map(|i| ((i * 7) % 13) as f64 / 6.0 - 1.0).collect();
            let d: Vec<f64> = (0..g.out_size()).map(|i| ((i * 11) % 19) as f64 / 9.0 - 1.0).collect();
            let p = g.out_positions();
            let mut col = vec![0.0; p * k];
            g.im2col(&x, 0, p, &mut col);
            let mut want = vec![0.0; p * f];
            matmul(Mat::new(&col, p, k), Mat::new(&w, k, f), &mut want, false, 1);
            // forward and weight gradient through the row windows of `for_rows`, each
            // window starting at a different output row
            let mut got = vec![f64::NAN; p * f];
            let cut = g.ox / 2;
            for (a, b) in [(0, cut), (cut, g.ox)] {
                for_rows(&g, &x, a, b, |rows, r0, r1| forward_rows(&plan, rows, &w, r0, r1, &mut got[r0 * g.oy * f..r1 * g.oy * f], &mut taps));
            }
            assert!(got.iter().zip(&want).all(|(a, b)| (a - b).abs() < 1e-12), "forward {dim:?}");
            // f32 (the register-blocked AVX2 kernel where the CPU has it), outputs poisoned
            let (x32, w32): (Vec<f32>, Vec<f32>) = (x.iter().map(|&v| v as f32).collect(), w.iter().map(|&v| v as f32).collect());
            let mut got32 = vec![f32::NAN; p * f];
            for_rows(&g, &x32, 0, g.ox, |rows, r0, r1| forward_rows(&plan, rows, &w32, r0, r1, &mut got32[r0 * g.oy * f..r1 * g.oy * f], &mut taps));
            assert!(got32.iter().zip(&want).all(|(a, b)| (*a as f64 - b).abs() < 1e-4 * (1.0 + b.abs())), "forward f32 {dim:?}");
            let mut dw_want = vec![0.0; k * f];
            matmul(Mat::new(&col, p, k).t(), Mat::new(&d, p, f), &mut dw_want, false, 1);
            let mut dw = vec![0.0; k * f];
            for (a, b) in [(0, 1), (1, g.ox)] {
                for_rows(&g, &x, a, b, |rows, r0, r1| weight_grad_rows(&plan, rows, &d[r0 * g.oy * f..r1 * g.oy * f], r0, r1, &mut dw, &mut taps));
            }
            assert!(dw.iter().zip(&dw_want).all(|(a, b)| (a - b).abs() < 1e-10), "weight grad {dim:?}");
            let mut dcol = vec![0.0; p * k];
            matmul(Mat::new(&d, p, f), Mat::new(&w, k, f).t(), &mut dcol, false, 1);
            let mut dx_want = vec![0.0; g.in_size()];
            g.col2im_add(&dcol, 0, p, &mut dx_want);
            let mut dx = vec![f64::NAN; g.in_size()];
            let yz = g.y * g.z;
            let cut = g.x / 3; // two blocks of rows, the second starting inside the input
            input_grad_rows(&plan, &w, &d, 0, &mut dx[..cut * yz], None, &mut taps);
            input_grad_rows(&plan, &w, &d, cut, &mut dx[cut * yz..], None, &mut taps);
            assert!(dx.iter().zip(&dx_want).all(|(a, b)| (a - b).abs() < 1e-10), "input grad {dim:?}");
            // f32 backward (direct1.rs's kernels for one filter where the CPU has AVX2)
            let d32: Vec<f32> = d.iter().map(|&v| v as f32).collect();
            let close = |a: f32, b: f64| (a as f64 - b).abs() < 1e-4 * (1.0 + b.abs());
            let mut dw32 = vec![0f32; k * f];
            for_rows(&g, &x32, 0, g.ox, |rows, r0, r1| weight_grad_rows(&plan, rows, &d32[r0 * g.oy * f..r1 * g.oy * f], r0, r1, &mut dw32, &mut taps));
            assert!(dw32.iter().zip(&dw_want).all(|(a, b)| close(*a, *b)), "weight grad f32 {dim:?}");
            let mut dx32 = vec![f32::NAN; g.in_size()];
            input_grad_rows(&plan, &w32, &d32, 0, &mut dx32[..cut * yz], None, &mut taps);
            input_grad_rows(&plan, &w32, &d32, cut, &mut dx32[cut * yz..], None, &mut taps);
            assert!(dx32.iter().zip(&dx_want).all(|(a, b)| close(*a, *b)), "input grad f32 {dim:?}");
        }
    }

    /// Not a test: in-cache speed of the direct kernels (cargo test --release kernel_speed -- --ignored --nocapture).
    #[test]
    #[ignore]
    fn kernel_speed() {
        for &(dim, field, stride) in &[([400usize, 400, 3], 3usize, 1usize), ([400, 400, 1], 3, 1), ([400, 400, 1], 4, 2), ([200, 200, 1], 3, 1)] {
            let g = ConvGeom::new(dim, [1, 1], [field, field], [stride, stride], 1).unwrap();
            let plan = Plan::new(g);
            let mut taps = TapList::new();
            let x: Vec<f32> = (0..g.in_size()).map(|i| (i % 7) as f32 * 0.1).collect();
            let w: Vec<f32> = (0..g.k()).map(|i| i as f32 * 0.01).collect();
            let mut out = vec![0f32; g.out_size()];
            let mut dw = vec![0f32; g.k()];
            let macs = (g.out_size() * g.k()) as f64;
            let time = |f: &mut dyn FnMut()| {
                f();
                let t = std::time::Instant::now();
                for _ in 0..20 {
                    f();
                }
                t.elapsed().as_secs_f64() / 20.0
            };
            let fwd = time(&mut || for_rows(&g, &x, 0, g.ox, |rows, a, b| forward_rows(&plan, rows, &w, a, b, &mut out[a * g.oy..b * g.oy], &mut taps)));
            let wg = time(&mut || for_rows(&g, &x, 0, g.ox, |rows, a, b| weight_grad_rows(&plan, rows, &out[a * g.oy..b * g.oy], a, b, &mut dw, &mut taps)));
            let mut dx = vec![0f32; g.in_size()];
            let ig = time(&mut || input_grad_rows(&plan, &w, &out, 0, &mut dx, None, &mut taps));
            println!("{dim:?} f{field} s{stride}: forward {:.2} GMAC/s, weight grad {:.2}, input grad {:.2} ({:.2} ms fwd)", macs / fwd / 1e9, macs / wg / 1e9, macs / ig / 1e9, fwd * 1e3);
        }
    }
}
