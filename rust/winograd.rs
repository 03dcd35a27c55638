//! Winograd F(2×2, 3×3) for 3×3 stride-1 convolutions with many channels: each 2×2 block
//! of outputs ("tile") comes from a 4×4 input patch with 16 multiplies per channel pair
//! instead of 36, so the gemm work of these layers falls by 2.25×.
//!
//!   forward:          Y = Aᵀ [ (G g Gᵀ) ⊙ (Bᵀ d B) ] A
//!   weight gradient:  ∂g = Gᵀ [ Σ_tiles (Bᵀ d B) ⊙ (A δ Aᵀ) ] G
//!
//! Per block of tiles, the 16 transformed positions ξ are 16 independent matrix products
//! over channels: M_ξ (tiles × F) = V_ξ (tiles × Z) · U_ξ (Z × F), and the weight
//! gradient's ∂U_ξ (Z × F) += V_ξᵀ · Q_ξ. Channels last makes every transform a loop over
//! contiguous channels. The input gradient of a stride-1 layer is itself a 3×3 stride-1
//! convolution (conv.rs, `input_grad_transposed`), so it runs here too. The transforms'
//! constants are 0, ±1 and ½: the results differ from direct summation by rounding only.

// The transforms are small matrix formulas: index loops read closer to the maths.
#![allow(clippy::needless_range_loop)]

use crate::im2col::ConvGeom;
use crate::matmul::{matmul, Mat};
use crate::real::Real;
use crate::scratch::with_scratch;
use crate::simd::simd_fn;
use rayon::prelude::*;

/// Tiles per work unit: enough rows for each of the 16 products to run gemm near peak.
const TARGET_TILES: usize = 256;

/// Does this layer run through Winograd? 3×3, stride 1, and enough channels on both sides
/// for the 16 products to be real matrix products.
pub fn applies(g: &ConvGeom) -> bool {
    g.fx == 3 && g.fy == 3 && g.sx == 1 && g.sy == 1 && g.z >= 8 && g.filters >= 8
}

/// Does Winograd pay over im2col for this layer, so that `auto` picks it? Only with ≥ 64
/// channels on both sides and an output of at least 8×8: below that the transforms
/// (memory-bound, 16 streams) cost more than the multiplications they save. Measured
/// 2026-12-02 on a 2-core Xeon (AVX-512): the speed recipe's net (24–128 channels, maps
/// 31 down to 3) 1.21× faster a step with this rule, NeuroFlow's CIFAR net (128 channels)
/// unchanged, the small CIFAR net 1.03×.
pub fn pays(g: &ConvGeom) -> bool {
    applies(g) && g.z >= 64 && g.filters >= 64 && g.ox >= 8 && g.oy >= 8
}

/// A layer's tiling: tiles in ⌈OX/2⌉ rows of ⌈OY/2⌉, grouped into work units of whole
/// samples (small images) or of tile rows within one sample (large images).
#[derive(Clone, Copy, Debug)]
pub struct Wino {
    pub g: ConvGeom,
    ntx: usize,
    nty: usize,
    /// Samples per unit (> 1 only when one sample has fewer than TARGET_TILES tiles).
    samples: usize,
    /// Tile rows per unit (all of them when samples > 1).
    rows: usize,
}

/// One work unit: samples n0..n0+ns, tile rows tx0..tx1 of each.
#[derive(Clone, Copy, Debug)]
pub struct Unit {
    pub n0: usize,
    pub ns: usize,
    pub tx0: usize,
    pub tx1: usize,
}

impl Wino {
    pub fn new(g: ConvGeom) -> Wino {
        let (ntx, nty) = (g.ox.div_ceil(2), g.oy.div_ceil(2));
        let per_sample = ntx * nty;
        let (samples, rows) = if per_sample >= TARGET_TILES { (1, TARGET_TILES.div_ceil(nty).min(ntx)) } else { (TARGET_TILES.div_ceil(per_sample), ntx) };
        Wino { g, ntx, nty, samples, rows }
    }

    /// Run `f(unit, its output chunk)` for every unit of a batch of n samples, in parallel;
    /// `out` is the batch's output (n · out_size).
    pub fn par_units<T: Real>(&self, out: &mut [T], n: usize, f: impl Fn(&Unit, &mut [T]) + Sync) {
        let osz = self.g.out_size();
        let out = &mut out[..n * osz];
        match self.units_per_sample() {
            0 => out.par_chunks_mut(self.samples * osz).enumerate().for_each(|(i, c)| f(&self.unit(i, n), c)),
            ups => out.par_chunks_mut(osz).enumerate().for_each(|(ni, o)| {
                o.par_chunks_mut(self.unit_len()).enumerate().for_each(|(ui, c)| f(&self.unit(ni * ups + ui, n), c));
            }),
        }
    }

    /// Output elements of a unit (the last unit of a sample or batch may be shorter).
    fn unit_len(&self) -> usize {
        let g = &self.g;
        if self.samples > 1 {
            self.samples * g.out_size()
        } else {
            (2 * self.rows).min(g.ox) * g.oy * g.filters
        }
    }

    /// Units per sample when units split samples (0 when a unit holds whole samples).
    fn units_per_sample(&self) -> usize {
        if self.samples > 1 {
            0
        } else {
            self.ntx.div_ceil(self.rows)
        }
    }

    /// Units for a batch of n samples.
    pub fn unit_count(&self, n: usize) -> usize {
        match self.units_per_sample() {
            0 => n.div_ceil(self.samples),
            u => n * u,
        }
    }

    /// The unit with index `i` (in output order) for a batch of n samples.
    pub fn unit(&self, i: usize, n: usize) -> Unit {
        match self.units_per_sample() {
            0 => {
                let n0 = i * self.samples;
                Unit { n0, ns: self.samples.min(n - n0), tx0: 0, tx1: self.ntx }
            }
            u => {
                let tx0 = (i % u) * self.rows;
                Unit { n0: i / u, ns: 1, tx0, tx1: (tx0 + self.rows).min(self.ntx) }
            }
        }
    }

    fn tiles(&self, u: &Unit) -> usize {
        u.ns * (u.tx1 - u.tx0) * self.nty
    }

    /// f(t, s, tx, ty) for the unit's tiles in order: t counts them, s is the sample
    /// within the unit.
    #[inline(always)]
    fn each_tile(&self, u: &Unit, mut f: impl FnMut(usize, usize, usize, usize)) {
        let mut t = 0;
        for s in 0..u.ns {
            for tx in u.tx0..u.tx1 {
                for ty in 0..self.nty {
                    f(t, s, tx, ty);
                    t += 1;
                }
            }
        }
    }

    /// U = G g Gᵀ for every (c, f): u[ξ][c][f] from w[(kx·3 + ky)·Z + c][f].
    pub fn weights<T: Real>(&self, w: &[T], u: &mut [T]) {
        weight_transform(&self.g, w, u);
    }

    /// out = the convolution for unit `un` (out is that unit's chunk of the batch output,
    /// x the whole batch's input), given U from `weights`.
    pub fn forward_unit<T: Real>(&self, x: &[T], u: &[T], un: &Unit, out: &mut [T]) {
        let g = &self.g;
        let (z, f, t) = (g.z, g.filters, self.tiles(un));
        with_scratch(16 * t * (z + f) + z, |buf: &mut [T]| {
            let (v, rest) = buf.split_at_mut(16 * t * z);
            let (m, zeros) = rest.split_at_mut(16 * t * f);
            zeros.iter_mut().for_each(|v| *v = T::zero());
            input_transform(self, x, un, v, zeros);
            for xi in 0..16 {
                let (vx, mx) = (&v[xi * t * z..(xi + 1) * t * z], &mut m[xi * t * f..(xi + 1) * t * f]);
                matmul(Mat::new(vx, t, z), Mat::new(&u[xi * z * f..(xi + 1) * z * f], z, f), mx, false, 1);
            }
            output_transform(self, m, un, out);
        });
    }

    /// du (16·Z·F) += Σ over the unit's tiles of V_ξᵀ · Q_ξ, with x and delta the whole
    /// batch's input and output gradient.
    pub fn weight_grad_unit<T: Real>(&self, x: &[T], delta: &[T], un: &Unit, du: &mut [T]) {
        let g = &self.g;
        let (z, f, t) = (g.z, g.filters, self.tiles(un));
        with_scratch(16 * t * (z + f) + z.max(f), |buf: &mut [T]| {
            let (v, rest) = buf.split_at_mut(16 * t * z);
            let (q, zeros) = rest.split_at_mut(16 * t * f);
            zeros.iter_mut().for_each(|v| *v = T::zero());
            input_transform(self, x, un, v, zeros);
            delta_transform(self, delta, un, q, zeros);
            for xi in 0..16 {
                let (vx, qx) = (&v[xi * t * z..(xi + 1) * t * z], &q[xi * t * f..(xi + 1) * t * f]);
                matmul(Mat::new(vx, t, z).t(), Mat::new(qx, t, f), &mut du[xi * z * f..(xi + 1) * z * f], true, 1);
            }
        });
    }

    /// dw[(kx·3 + ky)·Z + c][f] = (Gᵀ ∂U G)[kx][ky].
    pub fn weight_grad_finish<T: Real>(&self, du: &[T], dw: &mut [T]) {
        weight_grad_back(&self.g, du, dw);
    }
}

simd_fn! {
    /// U[ξ][c][f] = (G g Gᵀ)[ξ], G = [[1, 0, 0], [½, ½, ½], [½, −½, ½], [0, 0, 1]].
    fn weight_transform<T: Real>(g: &ConvGeom, w: &[T], u: &mut [T]) {
        let (z, f) = (g.z, g.filters);
        let (zf, half) = (z * f, T::of(0.5));
        for c in 0..z {
            for fi in 0..f {
                let k = |kx: usize, ky: usize| w[((kx * 3 + ky) * z + c) * f + fi];
                // rows: (G g)[i][ky]
                let mut r = [[T::zero(); 3]; 4];
                for ky in 0..3 {
                    let (a, b, d) = (k(0, ky), k(1, ky), k(2, ky));
                    r[0][ky] = a;
                    r[1][ky] = (a + b + d) * half;
                    r[2][ky] = (a - b + d) * half;
                    r[3][ky] = d;
                }
                for (i, ri) in r.iter().enumerate() {
                    let (a, b, d) = (ri[0], ri[1], ri[2]);
                    let cols = [a, (a + b + d) * half, (a - b + d) * half, d];
                    for (j, &val) in cols.iter().enumerate() {
                        u[(i * 4 + j) * zf + c * f + fi] = val;
                    }
                }
            }
        }
    }
}

simd_fn! {
    /// dw = Gᵀ ∂U G per (c, f): Gᵀ = [[1, ½, ½, 0], [0, ½, −½, 0], [0, ½, ½, 1]].
    fn weight_grad_back<T: Real>(g: &ConvGeom, du: &[T], dw: &mut [T]) {
        let (z, f) = (g.z, g.filters);
        let (zf, half) = (z * f, T::of(0.5));
        let back = |p: [T; 4]| [p[0] + (p[1] + p[2]) * half, (p[1] - p[2]) * half, (p[1] + p[2]) * half + p[3]];
        for c in 0..z {
            for fi in 0..f {
                let mut rows = [[T::zero(); 4]; 3];
                for j in 0..4 {
                    let col = back([du[j * zf + c * f + fi], du[(4 + j) * zf + c * f + fi], du[(8 + j) * zf + c * f + fi], du[(12 + j) * zf + c * f + fi]]);
                    for kx in 0..3 {
                        rows[kx][j] = col[kx];
                    }
                }
                for (kx, row) in rows.iter().enumerate() {
                    for (ky, &val) in back(*row).iter().enumerate() {
                        dw[((kx * 3 + ky) * z + c) * f + fi] = val;
                    }
                }
            }
        }
    }
}

/// N lanes of consecutive channels (or filters): the transforms work on these, so that
/// each line below becomes one vector instruction.
type Lanes<T, const N: usize> = [T; N];

#[inline(always)]
fn load<T: Real, const N: usize>(s: &[T], at: usize) -> Lanes<T, N> {
    s[at..at + N].try_into().unwrap()
}

#[inline(always)]
fn store<T: Real, const N: usize>(d: &mut [T], at: usize, v: Lanes<T, N>) {
    d[at..at + N].copy_from_slice(&v);
}

/// [e(0), …, e(N−1)], as a plain loop (std::array::from_fn's closure was not always
/// inlined into the vector code).
macro_rules! lanes {
    ($n:expr, |$i:ident| $e:expr) => {{
        let mut r = [T::zero(); $n];
        for $i in 0..$n {
            r[$i] = $e;
        }
        r
    }};
}

/// Bᵀ · (four values) for each lane: [a − e, b + e, e − b, b − h].
#[inline(always)]
fn bt<T: Real, const N: usize>(a: Lanes<T, N>, b: Lanes<T, N>, e: Lanes<T, N>, h: Lanes<T, N>) -> [Lanes<T, N>; 4] {
    [lanes!(N, |i| a[i] - e[i]), lanes!(N, |i| b[i] + e[i]), lanes!(N, |i| e[i] - b[i]), lanes!(N, |i| b[i] - h[i])]
}

/// V for channels c..c+N of one tile: d[i][j] are the patch's rows (zeros in the padding).
#[inline(always)]
fn input_lanes<T: Real, const N: usize>(d: &[[&[T]; 4]; 4], c: usize, v: &mut [T], tz: usize, at: usize) {
    let ld = |i: usize, j: usize| -> Lanes<T, N> { load(d[i][j], c) };
    // columns j of Bᵀ d, then each row of that through B
    let mut cols = [[[T::zero(); N]; 4]; 4];
    for (j, col) in cols.iter_mut().enumerate() {
        *col = bt(ld(0, j), ld(1, j), ld(2, j), ld(3, j));
    }
    for i in 0..4 {
        let row = bt(cols[0][i], cols[1][i], cols[2][i], cols[3][i]);
        for (j, val) in row.into_iter().enumerate() {
            store(v, (i * 4 + j) * tz + at + c, val);
        }
    }
}

simd_fn! {
    /// V[ξ][t][c] = (Bᵀ d B)[ξ] for the unit's tiles t, Bᵀ = [[1, 0, −1, 0], [0, 1, 1, 0],
    /// [0, −1, 1, 0], [0, 1, 0, −1]]; patch values outside the input are zero (padding).
    fn input_transform<T: Real>(wg: &Wino, x: &[T], un: &Unit, v: &mut [T], zeros: &[T]) {
        let g = &wg.g;
        let z = g.z;
        let tz = wg.tiles(un) * z;
        wg.each_tile(un, #[inline(always)] |t, s, tx, ty| {
            let xs = &x[(un.n0 + s) * g.in_size()..(un.n0 + s + 1) * g.in_size()];
            let (ix0, iy0) = ((2 * tx) as isize - g.px as isize, (2 * ty) as isize - g.py as isize);
            let mut d: [[&[T]; 4]; 4] = [[zeros; 4]; 4];
            for (i, row) in d.iter_mut().enumerate() {
                for (j, v) in row.iter_mut().enumerate() {
                    let (ix, iy) = (ix0 + i as isize, iy0 + j as isize);
                    if ix >= 0 && iy >= 0 && ix < g.x as isize && iy < g.y as isize {
                        *v = &xs[(ix as usize * g.y + iy as usize) * z..][..z];
                    }
                }
            }
            let mut c = 0;
            while c + 8 <= z {
                input_lanes::<T, 8>(&d, c, v, tz, t * z);
                c += 8;
            }
            while c < z {
                input_lanes::<T, 1>(&d, c, v, tz, t * z);
                c += 1;
            }
        });
    }
}

/// Aᵀ · (four values) for each lane: [a + b + c, b − c − d].
#[inline(always)]
fn at2<T: Real, const N: usize>(a: Lanes<T, N>, b: Lanes<T, N>, c: Lanes<T, N>, d: Lanes<T, N>) -> [Lanes<T, N>; 2] {
    [lanes!(N, |i| a[i] + b[i] + c[i]), lanes!(N, |i| b[i] - c[i] - d[i])]
}

/// The 2×2 outputs Aᵀ M A for filters f..f+N of one tile (m row ξ at ξ·tf + at).
#[inline(always)]
fn output_lanes<T: Real, const N: usize>(m: &[T], tf: usize, at: usize, f: usize) -> [[Lanes<T, N>; 2]; 2] {
    let ld = |xi: usize| -> Lanes<T, N> { load(m, xi * tf + at + f) };
    let mut cols = [[[T::zero(); N]; 2]; 4];
    for (j, col) in cols.iter_mut().enumerate() {
        *col = at2(ld(j), ld(4 + j), ld(8 + j), ld(12 + j));
    }
    [at2(cols[0][0], cols[1][0], cols[2][0], cols[3][0]), at2(cols[0][1], cols[1][1], cols[2][1], cols[3][1])]
}

simd_fn! {
    /// out[s][2tx + i][2ty + j][f] = (Aᵀ M A)[i][j], Aᵀ = [[1, 1, 1, 0], [0, 1, −1, −1]],
    /// for the outputs that exist (the last tile row or column may be half outside).
    fn output_transform<T: Real>(wg: &Wino, m: &[T], un: &Unit, out: &mut [T]) {
        let g = &wg.g;
        let nf = g.filters;
        let tf = wg.tiles(un) * nf;
        wg.each_tile(un, #[inline(always)] |t, s, tx, ty| {
            // where output (i, j) of this tile goes, if it exists
            let mut dst: [[Option<usize>; 2]; 2] = [[None; 2]; 2];
            for (i, row) in dst.iter_mut().enumerate() {
                for (j, v) in row.iter_mut().enumerate() {
                    let (ox, oy) = (2 * tx + i, 2 * ty + j);
                    if ox < g.ox && oy < g.oy {
                        *v = Some(s * g.out_size() + ((ox - 2 * un.tx0) * g.oy + oy) * nf);
                    }
                }
            }
            let mut f = 0;
            while f + 8 <= nf {
                let y = output_lanes::<T, 8>(m, tf, t * nf, f);
                for i in 0..2 {
                    for j in 0..2 {
                        if let Some(o) = dst[i][j] {
                            store(out, o + f, y[i][j]);
                        }
                    }
                }
                f += 8;
            }
            while f < nf {
                let y = output_lanes::<T, 1>(m, tf, t * nf, f);
                for i in 0..2 {
                    for j in 0..2 {
                        if let Some(o) = dst[i][j] {
                            store(out, o + f, y[i][j]);
                        }
                    }
                }
                f += 1;
            }
        });
    }
}

/// A · (two values) for each lane: [a, a + b, a − b, −b].
#[inline(always)]
fn a4<T: Real, const N: usize>(a: Lanes<T, N>, b: Lanes<T, N>) -> [Lanes<T, N>; 4] {
    [a, lanes!(N, |i| a[i] + b[i]), lanes!(N, |i| a[i] - b[i]), lanes!(N, |i| -b[i])]
}

/// Q = A δ Aᵀ for filters f..f+N of one tile: d[i][j] the tile's delta rows (zeros where
/// there is no such output).
#[inline(always)]
fn delta_lanes<T: Real, const N: usize>(d: &[[&[T]; 2]; 2], f: usize, q: &mut [T], tf: usize, at: usize) {
    let ld = |i: usize, j: usize| -> Lanes<T, N> { load(d[i][j], f) };
    let cols = [a4(ld(0, 0), ld(1, 0)), a4(ld(0, 1), ld(1, 1))];
    for i in 0..4 {
        for (j, val) in a4(cols[0][i], cols[1][i]).into_iter().enumerate() {
            store(q, (i * 4 + j) * tf + at + f, val);
        }
    }
}

simd_fn! {
    /// Q[ξ][t][f] = (A δ Aᵀ)[ξ] for the unit's tiles, A = [[1, 0], [1, 1], [1, −1], [0, −1]];
    /// deltas of outputs that do not exist are zero.
    fn delta_transform<T: Real>(wg: &Wino, delta: &[T], un: &Unit, q: &mut [T], zeros: &[T]) {
        let g = &wg.g;
        let nf = g.filters;
        let tf = wg.tiles(un) * nf;
        wg.each_tile(un, #[inline(always)] |t, s, tx, ty| {
            let ds = &delta[(un.n0 + s) * g.out_size()..(un.n0 + s + 1) * g.out_size()];
            let mut d: [[&[T]; 2]; 2] = [[zeros; 2]; 2];
            for (i, row) in d.iter_mut().enumerate() {
                for (j, v) in row.iter_mut().enumerate() {
                    let (ox, oy) = (2 * tx + i, 2 * ty + j);
                    if ox < g.ox && oy < g.oy {
                        *v = &ds[(ox * g.oy + oy) * nf..][..nf];
                    }
                }
            }
            let mut f = 0;
            while f + 8 <= nf {
                delta_lanes::<T, 8>(&d, f, q, tf, t * nf);
                f += 8;
            }
            while f < nf {
                delta_lanes::<T, 1>(&d, f, q, tf, t * nf);
                f += 1;
            }
        });
    }
}
