//! Direct convolution for layers with few filters (the article's glasses net has one):
//! there gemm's output would have a column or two, im2col only moves memory, and a
//! sliding multiply-add along each input row is faster.
//!
//! The kernels read the input rows in *phase-planar* order (planar.rs): consecutive
//! outputs along y then read consecutive inputs for every tap, whatever the stride and
//! depth, so each tap is a contiguous axpy (forward, input gradient) or dot product
//! (weight gradient). Index map as im2col.rs: tap = (kx·fy + ky)·Z + c.

use crate::activator::Activator;
use crate::im2col::ConvGeom;
use crate::real::Real;
use crate::planar::{needs_planar, phase_len, phase_start, Rows};
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

/// For output row `ox`: run `$body` for each tap with its contiguous input segment
/// (`$row[$start..]`, the planar row of channel c at input row ix) and its oy range
/// `$lo..$hi`. A macro, not a function taking a closure, so that the body is compiled
/// inside the caller (and so into its AVX2 version).
macro_rules! for_taps {
    ($g:expr, $rows:expr, $ox:expr, |$tap:ident, $row:ident, $start:ident, $lo:ident, $hi:ident| $body:block) => {
        let (g, rows, ox) = ($g, $rows, $ox);
        for kx in 0..g.fx {
            let ix = (ox * g.sx + kx) as isize - g.px as isize;
            if ix < 0 || ix >= g.x as isize {
                continue;
            }
            for ky in 0..g.fy {
                let ($lo, $hi) = oy_range(g, ky);
                if $lo >= $hi {
                    continue;
                }
                let $start = segment_start(g, ky, $lo);
                for c in 0..g.z {
                    let $row = rows.row(g, c, ix as usize);
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
    #[cfg(target_arch = "x86_64")]
    if std::any::TypeId::of::<T>() == std::any::TypeId::of::<f32>()
        && std::is_x86_feature_detected!("avx2")
        && std::is_x86_feature_detected!("fma")
    {
        // SAFETY: T is f32 (same layout), and the CPU has AVX2 and FMA.
        let (a, b) = unsafe {
            (
                std::slice::from_raw_parts(a.as_ptr() as *const f32, a.len()),
                std::slice::from_raw_parts(b.as_ptr() as *const f32, b.len()),
            )
        };
        return T::of(unsafe { dot_f32_avx2(a, b) } as f64);
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

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn dot_f32_avx2(a: &[f32], b: &[f32]) -> f32 {
    use std::arch::x86_64::*;
    let n = a.len().min(b.len());
    let (pa, pb) = (a.as_ptr(), b.as_ptr());
    let mut acc = [_mm256_setzero_ps(); 4];
    let mut i = 0;
    // SAFETY (all loads): i + 8·j + 8 ≤ n ≤ both lengths.
    while i + 32 <= n {
        for (j, v) in acc.iter_mut().enumerate() {
            *v = _mm256_fmadd_ps(_mm256_loadu_ps(pa.add(i + 8 * j)), _mm256_loadu_ps(pb.add(i + 8 * j)), *v);
        }
        i += 32;
    }
    while i + 8 <= n {
        acc[0] = _mm256_fmadd_ps(_mm256_loadu_ps(pa.add(i)), _mm256_loadu_ps(pb.add(i)), acc[0]);
        i += 8;
    }
    let s = _mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(acc[2], acc[3]));
    let mut lanes = [0f32; 8];
    _mm256_storeu_ps(lanes.as_mut_ptr(), s);
    let mut total = ((lanes[0] + lanes[4]) + (lanes[1] + lanes[5])) + ((lanes[2] + lanes[6]) + (lanes[3] + lanes[7]));
    while i < n {
        total += a[i] * b[i];
        i += 1;
    }
    total
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
    fn forward_acc<T: Real>(g: &ConvGeom, rows: Rows<'_, T>, w: &[T], ox: usize, acc: &mut [T]) {
        let (f_n, oy_n) = (g.filters, g.oy);
        acc.iter_mut().for_each(|v| *v = T::zero());
        for_taps!(g, rows, ox, |tap, row, start, lo, hi| {
            for f in 0..f_n {
                axpy(&mut acc[f * oy_n + lo..f * oy_n + hi], w[tap * f_n + f], &row[start..start + hi - lo]);
            }
        });
    }
}

/// s_row[oy, f] = Σ over taps, for output row `ox` of one sample (s_row is OY·F long).
#[inline(never)]
pub fn forward_row<T: Real>(g: &ConvGeom, rows: Rows<'_, T>, w: &[T], ox: usize, s_row: &mut [T]) {
    let (f_n, oy_n) = (g.filters, g.oy);
    #[cfg(target_arch = "x86_64")]
    if f_n == 1
        && g.k() <= MAX_TAPS
        && std::any::TypeId::of::<T>() == std::any::TypeId::of::<f32>()
        && std::is_x86_feature_detected!("avx2")
        && std::is_x86_feature_detected!("fma")
    {
        // SAFETY: T is f32 (same layout), and the CPU has AVX2 and FMA.
        unsafe {
            let data = std::slice::from_raw_parts(rows.data.as_ptr() as *const f32, rows.data.len());
            let rows = Rows { data, x0: rows.x0 };
            let w = std::slice::from_raw_parts(w.as_ptr() as *const f32, w.len());
            let out = std::slice::from_raw_parts_mut(s_row.as_mut_ptr() as *mut f32, s_row.len());
            return forward_row1_f32_avx2(g, rows, w, ox, out);
        }
    }
    if f_n == 1 {
        return forward_acc(g, rows, w, ox, s_row);
    }
    with_scratch(f_n * oy_n, |acc: &mut [T]| {
        forward_acc(g, rows, w, ox, acc);
        for (oy, s) in s_row.chunks_mut(f_n).enumerate() {
            for (f, v) in s.iter_mut().enumerate() {
                *v = acc[f * oy_n + oy];
            }
        }
    });
}

/// Taps the register-blocked one-filter forward kernel takes at most (a 4×4 field on 4
/// channels is 64); more go through `forward_acc`.
const MAX_TAPS: usize = 64;

/// One filter, f32, AVX2+FMA: out[oy] = Σ_taps w·input, with 8 outputs held in a register
/// across all taps (the generic kernel reads and writes its accumulator once per tap).
/// Outputs whose patch reaches into the padding are summed tap by tap at the edges.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn forward_row1_f32_avx2(g: &ConvGeom, rows: Rows<'_, f32>, w: &[f32], ox: usize, out: &mut [f32]) {
    use std::arch::x86_64::*;
    // (offset of oy = 0 in `rows.data`, weight, first and last+1 valid oy) for each live tap
    let mut taps = [(0isize, 0f32, 0usize, 0usize); MAX_TAPS];
    let mut nt = 0;
    let (mut a, mut b) = (0usize, g.oy);
    for_taps!(g, rows, ox, |tap, row, start, lo, hi| {
        let row_at = row.as_ptr().offset_from(rows.data.as_ptr());
        taps[nt] = (row_at + start as isize - lo as isize, w[tap], lo, hi);
        nt += 1;
        a = a.max(lo);
        b = b.min(hi);
    });
    let taps = &taps[..nt];
    let p = rows.data.as_ptr();
    let scalar = |oy: usize| -> f32 {
        let mut acc = 0f32;
        for &(base, wv, lo, hi) in taps {
            if lo <= oy && oy < hi {
                acc += wv * *p.offset(base + oy as isize);
            }
        }
        acc
    };
    let b = b.max(a);
    for oy in 0..a.min(g.oy) {
        out[oy] = scalar(oy);
    }
    let mut oy = a;
    // SAFETY: for a ≤ oy < b every tap's index base + oy lies inside its planar row.
    // 32 outputs (four registers) per pass over the taps, then 8.
    while oy + 32 <= b {
        let mut acc = [_mm256_setzero_ps(); 4];
        for &(base, wv, _, _) in taps {
            let (wv, q) = (_mm256_set1_ps(wv), p.offset(base + oy as isize));
            for (j, v) in acc.iter_mut().enumerate() {
                *v = _mm256_fmadd_ps(wv, _mm256_loadu_ps(q.add(8 * j)), *v);
            }
        }
        for (j, v) in acc.iter().enumerate() {
            _mm256_storeu_ps(out.as_mut_ptr().add(oy + 8 * j), *v);
        }
        oy += 32;
    }
    while oy + 8 <= b {
        let mut acc = _mm256_setzero_ps();
        for &(base, wv, _, _) in taps {
            acc = _mm256_fmadd_ps(_mm256_set1_ps(wv), _mm256_loadu_ps(p.offset(base + oy as isize)), acc);
        }
        _mm256_storeu_ps(out.as_mut_ptr().add(oy), acc);
        oy += 8;
    }
    for oy in oy..g.oy {
        out[oy] = scalar(oy);
    }
}

simd_fn! {
    /// dw[tap, f] += Σ_oy input · d, with d filter-major ([f][oy]).
    fn weight_grad_acc<T: Real>(g: &ConvGeom, rows: Rows<'_, T>, d: &[T], ox: usize, dw: &mut [T]) {
        let (f_n, oy_n) = (g.filters, g.oy);
        for_taps!(g, rows, ox, |tap, row, start, lo, hi| {
            for f in 0..f_n {
                dw[tap * f_n + f] += dot(&row[start..start + hi - lo], &d[f * oy_n + lo..f * oy_n + hi]);
            }
        });
    }
}

/// dw[tap, f] += Σ_oy input · delta, for output row `ox` of one sample.
#[inline(never)]
pub fn weight_grad_row<T: Real>(g: &ConvGeom, rows: Rows<'_, T>, d_row: &[T], ox: usize, dw: &mut [T]) {
    if g.filters == 1 {
        return weight_grad_acc(g, rows, d_row, ox, dw);
    }
    with_scratch(g.filters * g.oy, |buf: &mut [T]| {
        let d = by_filter(g, d_row, buf);
        weight_grad_acc(g, rows, d, ox, dw);
    });
}

simd_fn! {
    /// acc (planar order, Z·Y) = ∂L/∂input row `ix`: a gather over the output rows that
    /// read it. `dbuf` is scratch for a delta row in filter-major order.
    fn input_grad_acc<T: Real>(g: &ConvGeom, w: &[T], delta: &[T], ix: usize, acc: &mut [T], dbuf: &mut [T]) {
        let (f_n, oy_n, yn) = (g.filters, g.oy, g.y);
        acc.iter_mut().for_each(|v| *v = T::zero());
        for kx in 0..g.fx {
            let t = ix as isize + g.px as isize - kx as isize;
            if t < 0 || t as usize % g.sx != 0 || t as usize / g.sx >= g.ox {
                continue;
            }
            let ox = t as usize / g.sx;
            let d = by_filter(g, &delta[ox * oy_n * f_n..(ox + 1) * oy_n * f_n], dbuf);
            for ky in 0..g.fy {
                let (lo, hi) = oy_range(g, ky);
                if lo >= hi {
                    continue;
                }
                let start = segment_start(g, ky, lo);
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

/// dx_row = ∂L/∂input for input row `ix` of one sample (Y·Z values, channels last),
/// computed as a gather so rows can run in parallel. With `mask`, dx_row holds the
/// previous layer's activations on entry and receives the gradient ⊙ f'(a) (see
/// conv::epilogue).
#[inline(never)]
pub fn input_grad_row<T: Real>(g: &ConvGeom, w: &[T], delta: &[T], ix: usize, dx_row: &mut [T], mask: Option<&Activator>) {
    let (yn, zy) = (g.y, g.z * g.y);
    let dlen = if g.filters == 1 { 0 } else { g.filters * g.oy };
    with_scratch(2 * zy + dlen, |buf: &mut [T]| {
        let (acc, rest) = buf.split_at_mut(zy);
        let (row, dbuf) = rest.split_at_mut(zy);
        input_grad_acc(g, w, delta, ix, acc, dbuf);
        // back to channels-last order
        let acc: &[T] = if needs_planar(g) {
            for r in 0..g.sy.min(yn) {
                let s0 = phase_start(g, r);
                for j in 0..phase_len(g, r) {
                    let iy = r + j * g.sy;
                    for c in 0..g.z {
                        row[iy * g.z + c] = acc[c * yn + s0 + j];
                    }
                }
            }
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
        ] {
            let g = ConvGeom::new(dim, pad, field, stride, filters).unwrap();
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
                for_rows(&g, &x, a, b, |rows, ox| forward_row(&g, rows, &w, ox, &mut got[ox * g.oy * f..(ox + 1) * g.oy * f]));
            }
            assert!(got.iter().zip(&want).all(|(a, b)| (a - b).abs() < 1e-12), "forward {dim:?}");
            // f32 (the register-blocked AVX2 kernel where the CPU has it), outputs poisoned
            let (x32, w32): (Vec<f32>, Vec<f32>) = (x.iter().map(|&v| v as f32).collect(), w.iter().map(|&v| v as f32).collect());
            let mut got32 = vec![f32::NAN; p * f];
            for_rows(&g, &x32, 0, g.ox, |rows, ox| forward_row(&g, rows, &w32, ox, &mut got32[ox * g.oy * f..(ox + 1) * g.oy * f]));
            assert!(got32.iter().zip(&want).all(|(a, b)| (*a as f64 - b).abs() < 1e-4 * (1.0 + b.abs())), "forward f32 {dim:?}");
            let mut dw_want = vec![0.0; k * f];
            matmul(Mat::new(&col, p, k).t(), Mat::new(&d, p, f), &mut dw_want, false, 1);
            let mut dw = vec![0.0; k * f];
            for (a, b) in [(0, 1), (1, g.ox)] {
                for_rows(&g, &x, a, b, |rows, ox| weight_grad_row(&g, rows, &d[ox * g.oy * f..(ox + 1) * g.oy * f], ox, &mut dw));
            }
            assert!(dw.iter().zip(&dw_want).all(|(a, b)| (a - b).abs() < 1e-10), "weight grad {dim:?}");
            let mut dcol = vec![0.0; p * k];
            matmul(Mat::new(&d, p, f), Mat::new(&w, k, f).t(), &mut dcol, false, 1);
            let mut dx_want = vec![0.0; g.in_size()];
            g.col2im_add(&dcol, 0, p, &mut dx_want);
            let mut dx = vec![f64::NAN; g.in_size()];
            let yz = g.y * g.z;
            for ix in 0..g.x {
                input_grad_row(&g, &w, &d, ix, &mut dx[ix * yz..(ix + 1) * yz], None);
            }
            assert!(dx.iter().zip(&dx_want).all(|(a, b)| (a - b).abs() < 1e-10), "input grad {dim:?}");
        }
    }
}
