//! Winograd F(M×M, R×R) for stride-1 convolutions with many channels: F(2×2, 3×3) and
//! F(4×4, 3×3) for 3×3 fields, F(4×4, 2×2) for 2×2 fields (the phases of 4×4 stride-2
//! layers, phases.rs). Each M×M block of outputs ("tile") comes from an (M+R−1)² input
//! patch with (M+R−1)² multiplies per channel pair instead of R²M², so the gemm work of
//! these layers falls by 2.25× (F(2×2, 3×3)), 4× (F(4×4, 3×3)) or 2.56× (F(4×4, 2×2)).
//!
//!   forward:          Y = Aᵀ [ (G g Gᵀ) ⊙ (Bᵀ d B) ] A
//!   weight gradient:  ∂g = Gᵀ [ Σ_tiles (Bᵀ d B) ⊙ (A δ Aᵀ) ] G
//!
//! Per block of tiles, the (M+2)² transformed positions ξ are independent matrix products
//! over channels: M_ξ (tiles × F) = V_ξ (tiles × Z) · U_ξ (Z × F), and the weight
//! gradient's ∂U_ξ (Z × F) += V_ξᵀ · Q_ξ. Channels last makes every transform a loop over
//! contiguous channels. The input gradient of a stride-1 layer is itself a 3×3 stride-1
//! convolution (conv.rs, `input_grad_transposed`), so it runs here too. The tilings
//! differ only in their five small transforms (`Tiling`); the rest is shared.

// The transforms are small matrix formulas: index loops read closer to the maths.
#![allow(clippy::needless_range_loop)]

use crate::im2col::ConvGeom;
use crate::matmul::{matmul, Mat};
use crate::real::Real;
use crate::scratch::with_scratch;
use crate::simd::simd_fn;
use rayon::prelude::*;
use crate::winograd_lanes::{Lane, Val, L};
#[cfg(target_arch = "x86_64")]
use crate::lanes::{self, Y8, Z16};

/// Tiles per work unit of F(2×2, 3×3): enough rows for each of the 16 products to run
/// gemm near peak. F(4×4, 3×3) tiles hold 4× the outputs and 2.25× the transformed
/// values, so its units hold fewer tiles: 32–96 measured alike on the speed net (Zen 4,
/// 2026-12-03), 128 and 256 slower by 5–10 % (the 36 products' operands leave L2).
const TARGET_TILES_2: usize = 256;
const TARGET_TILES_4: usize = 64;
/// Units of whole samples are made smaller where a batch would give fewer than this many:
/// the units are the parallel tasks (a batch of 64 maps of 3×3 is 64 tiles, one unit of
/// the target). A constant, not the thread count, so that the weight gradient's sums and
/// so the results do not depend on the number of threads.
const MIN_UNITS: usize = 4;
/// Values between the planes of transformed values (`Wino::plane`): one cache line of f32.
const PLANE_PAD: usize = 16;

/// Does this layer run through Winograd? 3×3 (or 2×2, F(4×4) only), stride 1, and enough
/// channels on both sides for the products to be real matrix products.
pub fn applies(g: &ConvGeom) -> bool {
    (g.fx == 3 || g.fx == 2) && g.fy == g.fx && g.sx == 1 && g.sy == 1 && g.z >= 8 && g.filters >= 8
}

/// Does the tiling F(m×m, field) exist here? (F(2×2, 2×2) is not built: F(4×4, 2×2) fits the
/// phases of the strided layers it serves.)
pub fn has_tiling(g: &ConvGeom, m: usize) -> bool {
    applies(g) && (g.fx == 3 || m == 4)
}

/// The output tile side `auto` picks for this layer, or None where im2col is faster.
/// F(4×4) from 16 channels on both sides and outputs of 7×7 up. Measured 2026-12-03 on a
/// 2-core Zen 4 (AVX-512), whole train steps in one process against the previous rule
/// (F(2×2) from 64 channels and 8×8 outputs, im2col below): the speed net at batch 500
/// 1.18× (widths 32–128) and 1.24× (64–256), small CIFAR 1.14×, NeuroFlow's CIFAR net
/// 1.13×, even the 24-channel 31×31 layer gains. On 3×3 maps a tile is mostly padding and
/// the (M+2)²·Z·F weight-sized passes (transforms, per-group sums) outweigh the 576
/// outputs of a batch of 64: 5–10 ms a step slower there. F(2×2) never wins over F(4×4)
/// here; it stays for `algorithm="winograd"`. The same rule serves 2×2 layers (F(4×4, 2×2)),
/// the phases of 4×4 stride-2 ones (conv.rs): on small CIFAR at batch 128 its two 4×4
/// stride-2 layers with outputs 16×16 and 8×8 made the step 3–5 % faster (A/B, 2026-12-03);
/// forcing it on the third too (4×4 outputs: a tile a sample, and weight-sized passes over
/// 512 channels) made it slower than im2col (222 against 207 ms), so 7×7 stays the bound.
pub fn auto_tile(g: &ConvGeom) -> Option<usize> {
    (applies(g) && g.z >= 16 && g.filters >= 16 && g.ox >= 7 && g.oy >= 7).then_some(4)
}

/// A layer's tiling F(M×M, R×R): tiles in ⌈OX/M⌉ rows of ⌈OY/M⌉, grouped
/// into work units of whole samples (small images) or of tile rows within one sample
/// (large images).
#[derive(Clone, Copy, Debug)]
pub struct Wino {
    pub g: ConvGeom,
    /// Outputs per tile side.
    m: usize,
    /// The field's side.
    r: usize,
    ntx: usize,
    nty: usize,
    /// Samples per unit at most (> 1 only when one sample has fewer tiles than the target;
    /// `samples_for` makes it smaller for small batches).
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

/// Call `$f::<T, F2>`, `$f::<T, F4>` or `$f::<T, F42>` by the tiling's tile and field sides.
macro_rules! by_tile {
    ($w:expr, $f:ident::<$t:ty>($($arg:expr),* $(,)?)) => {
        match ($w.m, $w.r) {
            (2, _) => $f::<$t, F2>($($arg),*),
            (_, 3) => $f::<$t, F4>($($arg),*),
            _ => $f::<$t, F42>($($arg),*),
        }
    };
}

impl Wino {
    /// The tiling F(m×m, r×r) of a layer (`has_tiling`).
    pub fn new(g: ConvGeom, m: usize) -> Wino {
        assert!((m == 2 || m == 4) && has_tiling(&g, m), "Winograd F({m}×{m}, {}×{}) is not built", g.fx, g.fy);
        let target = if m == 2 { TARGET_TILES_2 } else { TARGET_TILES_4 };
        let (ntx, nty) = (g.ox.div_ceil(m), g.oy.div_ceil(m));
        let per_sample = ntx * nty;
        let (samples, rows) = if per_sample >= target { (1, target.div_ceil(nty).min(ntx)) } else { (target.div_ceil(per_sample), ntx) };
        Wino { g, m, r: g.fx, ntx, nty, samples, rows }
    }

    /// Outputs per tile side.
    pub fn tile(&self) -> usize {
        self.m
    }

    /// Transformed positions ξ per tile, (m + r − 1)²: the number of channel products.
    pub fn positions(&self) -> usize {
        (self.m + self.r - 1) * (self.m + self.r - 1)
    }

    /// Values of the transformed weights U (and of one weight-gradient sum ∂U): Z·F per
    /// position.
    pub fn u_len(&self) -> usize {
        self.positions() * self.g.z * self.g.filters
    }

    /// Run `f(unit, its output chunk)` for every unit of a batch of n samples, in parallel;
    /// `out` is the batch's output (n · out_size).
    pub fn par_units<T: Real>(&self, out: &mut [T], n: usize, f: impl Fn(&Unit, &mut [T]) + Sync) {
        let osz = self.g.out_size();
        let out = &mut out[..n * osz];
        match self.units_per_sample() {
            0 => out.par_chunks_mut(self.samples_for(n) * osz).enumerate().for_each(|(i, c)| f(&self.unit(i, n), c)),
            ups => out.par_chunks_mut(osz).enumerate().for_each(|(ni, o)| {
                o.par_chunks_mut(self.unit_len()).enumerate().for_each(|(ui, c)| f(&self.unit(ni * ups + ui, n), c));
            }),
        }
    }

    /// Output elements of a unit of tile rows (the last unit of a sample may be shorter).
    fn unit_len(&self) -> usize {
        (self.m * self.rows).min(self.g.ox) * self.g.oy * self.g.filters
    }

    /// Samples per unit for a batch of n, where units hold whole samples.
    fn samples_for(&self, n: usize) -> usize {
        self.samples.min(n.div_ceil(MIN_UNITS)).max(1)
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
            0 => n.div_ceil(self.samples_for(n)),
            u => n * u,
        }
    }

    /// The unit with index `i` (in output order) for a batch of n samples.
    pub fn unit(&self, i: usize, n: usize) -> Unit {
        match self.units_per_sample() {
            0 => {
                let per = self.samples_for(n);
                let n0 = i * per;
                Unit { n0, ns: per.min(n - n0), tx0: 0, tx1: self.ntx }
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

    /// The distance between two positions' planes of a unit's transformed values (tiles ×
    /// `width` values each), padded by a cache line: unpadded, the units' planes were
    /// multiples of 4 KiB apart (64 tiles of 16k channels), so a tile's (m + r − 1)²
    /// values fell into one set of the L1 cache and evicted each other. Padding made the
    /// transforms 2–3× faster (Zen 4, 2026-12-04).
    fn plane(&self, u: &Unit, width: usize) -> usize {
        self.tiles(u) * width + PLANE_PAD
    }

    /// U = G g Gᵀ for every (c, f): u[ξ][c][f] from w[(kx·r + ky)·Z + c][f].
    pub fn weights<T: Real>(&self, w: &[T], u: &mut [T]) {
        by_tile!(self, weight_transform::<T>(&self.g, w, u))
    }

    /// out = the convolution for unit `un` (out is that unit's chunk of the batch output,
    /// x the whole batch's input), given U from `weights`.
    pub fn forward_unit<T: Real>(&self, x: &[T], u: &[T], un: &Unit, out: &mut [T]) {
        let g = &self.g;
        let (z, f, t, pp) = (g.z, g.filters, self.tiles(un), self.positions());
        let (sv, sm) = (self.plane(un, z), self.plane(un, f));
        with_scratch(pp * (sv + sm) + z, |buf: &mut [T]| {
            let (v, rest) = buf.split_at_mut(pp * sv);
            let (m, zeros) = rest.split_at_mut(pp * sm);
            zeros.iter_mut().for_each(|v| *v = T::zero());
            by_tile!(self, input_transform::<T>(self, x, un, v, zeros));
            for xi in 0..pp {
                let (vx, mx) = (&v[xi * sv..][..t * z], &mut m[xi * sm..][..t * f]);
                matmul(Mat::new(vx, t, z), Mat::new(&u[xi * z * f..(xi + 1) * z * f], z, f), mx, false, 1);
            }
            by_tile!(self, output_transform::<T>(self, m, un, out));
        });
    }

    /// du ((m+2)²·Z·F) = Σ over the unit's tiles of V_ξᵀ · Q_ξ, or du += that with
    /// `accumulate`; x and delta are the whole batch's input and output gradient.
    pub fn weight_grad_unit<T: Real>(&self, x: &[T], delta: &[T], un: &Unit, du: &mut [T], accumulate: bool) {
        let g = &self.g;
        let (z, f, t, pp) = (g.z, g.filters, self.tiles(un), self.positions());
        let (sv, sq) = (self.plane(un, z), self.plane(un, f));
        with_scratch(pp * (sv + sq) + z.max(f), |buf: &mut [T]| {
            let (v, rest) = buf.split_at_mut(pp * sv);
            let (q, zeros) = rest.split_at_mut(pp * sq);
            zeros.iter_mut().for_each(|v| *v = T::zero());
            by_tile!(self, input_transform::<T>(self, x, un, v, zeros));
            by_tile!(self, delta_transform::<T>(self, delta, un, q, zeros));
            for xi in 0..pp {
                let (vx, qx) = (&v[xi * sv..][..t * z], &q[xi * sq..][..t * f]);
                matmul(Mat::new(vx, t, z).t(), Mat::new(qx, t, f), &mut du[xi * z * f..(xi + 1) * z * f], accumulate, 1);
            }
        });
    }

    /// dw[(kx·r + ky)·Z + c][f] = (Gᵀ ∂U G)[kx][ky].
    pub fn weight_grad_finish<T: Real>(&self, du: &[T], dw: &mut [T]) {
        by_tile!(self, weight_grad_back::<T>(&self.g, du, dw))
    }
}

/// A tiling F(M×M, R×R) as its five transforms on one column of values (arrays hold up
/// to 6; only the first P = M + R − 1, or M, or R, are read and written).
trait Tiling: 'static {
    const M: usize;
    const R: usize;
    const P: usize;
    /// Bᵀ d: the patch (P values) into transformed positions (P).
    fn bt<T: Real, V: Val<T>>(d: &[V; 6]) -> [V; 6];
    /// Aᵀ m: positions (P) into outputs (M).
    fn at<T: Real, V: Val<T>>(m: &[V; 6]) -> [V; 4];
    /// A δ: output gradients (M) into positions (P).
    fn a<T: Real, V: Val<T>>(d: &[V; 4]) -> [V; 6];
    /// G k: a filter column (R) into positions (P).
    fn g<T: Real, V: Val<T>>(k: &[V; 3]) -> [V; 6];
    /// Gᵀ p: positions (P) back into a filter column (R).
    fn gt<T: Real, V: Val<T>>(p: &[V; 6]) -> [V; 3];
}

/// F(2×2, 3×3): Bᵀ = [[1, 0, −1, 0], [0, 1, 1, 0], [0, −1, 1, 0], [0, 1, 0, −1]],
/// G = [[1, 0, 0], [½, ½, ½], [½, −½, ½], [0, 0, 1]], Aᵀ = [[1, 1, 1, 0], [0, 1, −1, −1]].
/// Constants 0, ±1 and ½: results differ from direct summation by rounding only.
struct F2;

impl Tiling for F2 {
    const M: usize = 2;
    const R: usize = 3;
    const P: usize = 4;
    #[inline(always)]
    fn bt<T: Real, V: Val<T>>(d: &[V; 6]) -> [V; 6] {
        let z = V::zero();
        [d[0] - d[2], d[1] + d[2], d[2] - d[1], d[1] - d[3], z, z]
    }
    #[inline(always)]
    fn at<T: Real, V: Val<T>>(m: &[V; 6]) -> [V; 4] {
        let z = V::zero();
        [m[0] + m[1] + m[2], m[1] - m[2] - m[3], z, z]
    }
    #[inline(always)]
    fn a<T: Real, V: Val<T>>(d: &[V; 4]) -> [V; 6] {
        let z = V::zero();
        [d[0], d[0] + d[1], d[0] - d[1], -d[1], z, z]
    }
    #[inline(always)]
    fn g<T: Real, V: Val<T>>(k: &[V; 3]) -> [V; 6] {
        let (h, z) = (T::of(0.5), V::zero());
        [k[0], (k[0] + k[1] + k[2]) * h, (k[0] - k[1] + k[2]) * h, k[2], z, z]
    }
    #[inline(always)]
    fn gt<T: Real, V: Val<T>>(p: &[V; 6]) -> [V; 3] {
        let h = T::of(0.5);
        [p[0] + (p[1] + p[2]) * h, (p[1] - p[2]) * h, (p[1] + p[2]) * h + p[3]]
    }
}

/// F(4×4, 3×3) on the points 0, ±1, ±2, ∞ (Lavin & Gray 2016): 36 products per 16
/// outputs instead of 144. Bᵀ has entries up to 5 and Aᵀ up to 8, G has sixths: the
/// results carry ~10× the rounding error of F(2×2) (tested in f32).
struct F4;

impl Tiling for F4 {
    const M: usize = 4;
    const R: usize = 3;
    const P: usize = 6;
    #[inline(always)]
    fn bt<T: Real, V: Val<T>>(d: &[V; 6]) -> [V; 6] {
        let (two, four, five) = (T::of(2.0), T::of(4.0), T::of(5.0));
        let (a, b) = (d[4] - d[2] * four, d[3] - d[1] * four);
        let (c, e) = (d[4] - d[2], (d[3] - d[1]) * two);
        [d[0] * four - d[2] * five + d[4], a + b, a - b, c + e, c - e, d[1] * four - d[3] * five + d[5]]
    }
    #[inline(always)]
    fn at<T: Real, V: Val<T>>(m: &[V; 6]) -> [V; 4] {
        let (two, four, eight) = (T::of(2.0), T::of(4.0), T::of(8.0));
        let (sp, sm, tp, tm) = (m[1] + m[2], m[1] - m[2], m[3] + m[4], m[3] - m[4]);
        [m[0] + sp + tp, sm + tm * two, sp + tp * four, sm + tm * eight + m[5]]
    }
    #[inline(always)]
    fn a<T: Real, V: Val<T>>(d: &[V; 4]) -> [V; 6] {
        let (two, four, eight) = (T::of(2.0), T::of(4.0), T::of(8.0));
        let (even, odd) = (d[0] + d[2], d[1] + d[3]);
        let (even2, odd2) = (d[0] + d[2] * four, d[1] * two + d[3] * eight);
        [d[0], even + odd, even - odd, even2 + odd2, even2 - odd2, d[3]]
    }
    #[inline(always)]
    fn g<T: Real, V: Val<T>>(k: &[V; 3]) -> [V; 6] {
        let (sixth, twelfth) = (T::of(1.0 / 6.0), T::of(1.0 / 12.0));
        let (even, odd) = (k[0] + k[2], k[1]);
        let (even2, odd2) = (k[0] * T::of(1.0 / 24.0) + k[2] * sixth, k[1] * twelfth);
        [k[0] * T::of(0.25), -(even + odd) * sixth, -(even - odd) * sixth, even2 + odd2, even2 - odd2, k[2]]
    }
    #[inline(always)]
    fn gt<T: Real, V: Val<T>>(p: &[V; 6]) -> [V; 3] {
        let (sixth, twelfth) = (T::of(1.0 / 6.0), T::of(1.0 / 12.0));
        let (sp, sm, tp, tm) = (p[1] + p[2], p[2] - p[1], p[3] + p[4], p[3] - p[4]);
        [p[0] * T::of(0.25) - sp * sixth + tp * T::of(1.0 / 24.0), sm * sixth + tm * twelfth, (tp - sp) * sixth + p[5]]
    }
}

/// F(4×4, 2×2) on the points 0, ±1, 2, ∞: 25 products per 16 outputs instead of 64.
/// Bᵀ = [[2, −1, −2, 1, 0], [0, 2, 1, −1, 0], [0, −2, 3, −1, 0], [0, −1, 0, 1, 0],
/// [0, 2, −1, −2, 1]], G = [[½, 0], [½, ½], [⅙, −⅙], [⅙, ⅓], [0, 1]],
/// Aᵀ = [[1, 1, 1, 1, 0], [0, 1, −1, 2, 0], [0, 1, 1, 4, 0], [0, 1, −1, 8, 1]] (the
/// interpolation's inverse Vandermonde, its rows scaled to integers into Bᵀ).
struct F42;

impl Tiling for F42 {
    const M: usize = 4;
    const R: usize = 2;
    const P: usize = 5;
    #[inline(always)]
    fn bt<T: Real, V: Val<T>>(d: &[V; 6]) -> [V; 6] {
        let (two, three) = (T::of(2.0), T::of(3.0));
        let z = V::zero();
        [(d[0] - d[2]) * two - d[1] + d[3], d[1] * two + d[2] - d[3], d[2] * three - d[1] * two - d[3], d[3] - d[1],
         (d[1] - d[3]) * two - d[2] + d[4], z]
    }
    #[inline(always)]
    fn at<T: Real, V: Val<T>>(m: &[V; 6]) -> [V; 4] {
        let (two, four, eight) = (T::of(2.0), T::of(4.0), T::of(8.0));
        let (sp, sm) = (m[1] + m[2], m[1] - m[2]);
        [m[0] + sp + m[3], sm + m[3] * two, sp + m[3] * four, sm + m[3] * eight + m[4]]
    }
    #[inline(always)]
    fn a<T: Real, V: Val<T>>(d: &[V; 4]) -> [V; 6] {
        let (two, four, eight) = (T::of(2.0), T::of(4.0), T::of(8.0));
        let (even, odd) = (d[0] + d[2], d[1] + d[3]);
        [d[0], even + odd, even - odd, d[0] + d[1] * two + d[2] * four + d[3] * eight, d[3], V::zero()]
    }
    #[inline(always)]
    fn g<T: Real, V: Val<T>>(k: &[V; 3]) -> [V; 6] {
        let (h, sixth) = (T::of(0.5), T::of(1.0 / 6.0));
        [k[0] * h, (k[0] + k[1]) * h, (k[0] - k[1]) * sixth, (k[0] + k[1] * T::of(2.0)) * sixth, k[1], V::zero()]
    }
    #[inline(always)]
    fn gt<T: Real, V: Val<T>>(p: &[V; 6]) -> [V; 3] {
        let (h, sixth, third) = (T::of(0.5), T::of(1.0 / 6.0), T::of(1.0 / 3.0));
        [(p[0] + p[1]) * h + (p[2] + p[3]) * sixth, p[1] * h - p[2] * sixth + p[3] * third + p[4], V::zero()]
    }
}

// The weights' transforms, over lanes of consecutive filters (w and u hold the filters
// last). Scalar, they were 4 % of a small-CIFAR step (2026-12-04).

/// U[ξ][c][fi..] = (G g Gᵀ)[ξ] for channel c and the filters of lanes V from fi.
#[inline(always)]
fn weight_lanes<T: Real, W: Tiling, V: Lane<T>>(g: &ConvGeom, w: &[T], u: &mut [T], c: usize, fi: usize) {
    let (z, f, p, rr) = (g.z, g.filters, W::P, W::R);
    // (G g)[i][ky], column by column
    let mut r = [[V::zero(); 3]; 6];
    for ky in 0..rr {
        let mut k = [V::zero(); 3];
        for kx in 0..rr {
            k[kx] = V::load(w, ((kx * rr + ky) * z + c) * f + fi);
        }
        let col = W::g::<T, V>(&k);
        for i in 0..p {
            r[i][ky] = col[i];
        }
    }
    for i in 0..p {
        let row = W::g::<T, V>(&r[i]);
        for j in 0..p {
            row[j].store(u, (i * p + j) * z * f + c * f + fi);
        }
    }
}

/// dw = Gᵀ ∂U G for channel c and the filters of lanes V from fi.
#[inline(always)]
fn weight_back_lanes<T: Real, W: Tiling, V: Lane<T>>(g: &ConvGeom, du: &[T], dw: &mut [T], c: usize, fi: usize) {
    let (z, f, p, rr) = (g.z, g.filters, W::P, W::R);
    let mut rows = [[V::zero(); 6]; 3];
    for j in 0..p {
        let mut col = [V::zero(); 6];
        for i in 0..p {
            col[i] = V::load(du, (i * p + j) * z * f + c * f + fi);
        }
        let back = W::gt::<T, V>(&col);
        for kx in 0..rr {
            rows[kx][j] = back[kx];
        }
    }
    for kx in 0..rr {
        let vals = W::gt::<T, V>(&rows[kx]);
        for ky in 0..rr {
            vals[ky].store(dw, ((kx * rr + ky) * z + c) * f + fi);
        }
    }
}

/// `weight_lanes` (or, with `back`, `weight_back_lanes`) for every channel and filter.
#[inline(always)]
fn weight_all<T: Real, W: Tiling, V: Lane<T>, V2: Lane<T>>(g: &ConvGeom, from: &[T], to: &mut [T], back: bool) {
    for c in 0..g.z {
        let mut fi = 0;
        while fi + V::N <= g.filters {
            weight_group::<T, W, V>(g, from, to, c, fi, back);
            fi += V::N;
        }
        while fi + V2::N <= g.filters {
            weight_group::<T, W, V2>(g, from, to, c, fi, back);
            fi += V2::N;
        }
        while fi < g.filters {
            weight_group::<T, W, T>(g, from, to, c, fi, back);
            fi += 1;
        }
    }
}

#[inline(always)]
fn weight_group<T: Real, W: Tiling, V: Lane<T>>(g: &ConvGeom, from: &[T], to: &mut [T], c: usize, fi: usize, back: bool) {
    if back {
        weight_back_lanes::<T, W, V>(g, from, to, c, fi);
    } else {
        weight_lanes::<T, W, V>(g, from, to, c, fi);
    }
}

/// U[ξ][c][f] = (G g Gᵀ)[ξ] for every channel c and filter f.
fn weight_transform<T: Real, W: Tiling>(g: &ConvGeom, w: &[T], u: &mut [T]) {
    weights_either::<T, W>(g, w, u, false)
}

/// dw = Gᵀ ∂U G for every channel c and filter f.
fn weight_grad_back<T: Real, W: Tiling>(g: &ConvGeom, du: &[T], dw: &mut [T]) {
    weights_either::<T, W>(g, du, dw, true)
}

fn weights_either<T: Real, W: Tiling>(g: &ConvGeom, from: &[T], to: &mut [T], back: bool) {
    #[cfg(target_arch = "x86_64")]
    if let (Some(_), Some(from), Some(to)) = (lanes::detect(), T::as_f32_slice(from), T::as_f32_slice_mut(to)) {
        if lanes::has_avx512() {
            // SAFETY: has_avx512() found AVX-512F and DQ, and AVX2 and FMA.
            return unsafe { weights_avx512::<W>(g, from, to, back) };
        }
        // SAFETY: detect() found AVX2 and FMA.
        return unsafe { weights_avx2::<W>(g, from, to, back) };
    }
    weights_portable::<T, W>(g, from, to, back)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn weights_avx2<W: Tiling>(g: &ConvGeom, from: &[f32], to: &mut [f32], back: bool) {
    weight_all::<f32, W, Y8, Y8>(g, from, to, back)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma,avx512f,avx512dq")]
fn weights_avx512<W: Tiling>(g: &ConvGeom, from: &[f32], to: &mut [f32], back: bool) {
    weight_all::<f32, W, Z16, Y8>(g, from, to, back)
}

simd_fn! {
    fn weights_portable<T: Real, W: Tiling>(g: &ConvGeom, from: &[T], to: &mut [T], back: bool) {
        weight_all::<T, W, L<T, 8>, L<T, 8>>(g, from, to, back)
    }
}

// The data transforms: for each, the per-tile helpers generic over the lanes V, the loop
// over a unit's tiles (`*_tiles`: groups of V, then of V2, then single values), and its
// three compiled versions: AVX-512 registers then AVX ones for f32 where the CPU has
// AVX-512 (`*_avx512`: 4–9 % off a step of the CIFAR nets, Xeon, 2026-12-04), AVX ones
// where it has AVX2 (`*_avx2`), arrays of eight lanes otherwise (`*_portable`, by
// simd_fn). The helpers keep their intermediates in a small buffer that lives across tiles
// (input, delta) or in arrays of results (output): a zeroed array of 36 lanes per tile
// became a memset call per tile, and with the input's columns held in an array of lanes
// the compiler left the array version's second pass scalar. They form no closures: a
// closure is compiled without the features of the function it sits in (lanes.rs).

/// Lanes per group at most: the size of the helpers' buffers.
const MAX_LANES: usize = 16;

/// V for channels c.. of one tile: d[i][j] are the patch's rows (zeros in the padding).
#[inline(always)]
fn input_lanes<T: Real, W: Tiling, V: Lane<T>>(d: &[[&[T]; 6]; 6], c: usize, v: &mut [T], tz: usize, at: usize, tmp: &mut [T]) {
    let p = W::P;
    // columns j of Bᵀ d into tmp, then each row of that through B
    for j in 0..p {
        let mut col = [V::zero(); 6];
        for i in 0..p {
            col[i] = V::load(d[i][j], c);
        }
        let col = W::bt::<T, V>(&col);
        for i in 0..p {
            col[i].store(tmp, (i * 6 + j) * V::N);
        }
    }
    for i in 0..p {
        let mut row = [V::zero(); 6];
        for j in 0..p {
            row[j] = V::load(tmp, (i * 6 + j) * V::N);
        }
        let row = W::bt::<T, V>(&row);
        for j in 0..p {
            row[j].store(v, (i * p + j) * tz + at + c);
        }
    }
}

/// V[ξ][t][c] = (Bᵀ d B)[ξ] for the unit's tiles t; patch values outside the input are
/// zero (padding).
#[inline(always)]
fn input_tiles<T: Real, W: Tiling, V: Lane<T>, V2: Lane<T>>(wg: &Wino, x: &[T], un: &Unit, v: &mut [T], zeros: &[T]) {
    let g = &wg.g;
    let (z, m, p) = (g.z, W::M, W::P);
    let tz = wg.plane(un, z);
    let mut tmp = [T::zero(); 36 * MAX_LANES];
    let mut t = 0;
    for s in 0..un.ns {
        let xs = &x[(un.n0 + s) * g.in_size()..(un.n0 + s + 1) * g.in_size()];
        for tx in un.tx0..un.tx1 {
            for ty in 0..wg.nty {
                let (ix0, iy0) = ((m * tx) as isize - g.px as isize, (m * ty) as isize - g.py as isize);
                let mut d: [[&[T]; 6]; 6] = [[zeros; 6]; 6];
                for i in 0..p {
                    for j in 0..p {
                        let (ix, iy) = (ix0 + i as isize, iy0 + j as isize);
                        if ix >= 0 && iy >= 0 && ix < g.x as isize && iy < g.y as isize {
                            d[i][j] = &xs[(ix as usize * g.y + iy as usize) * z..][..z];
                        }
                    }
                }
                let mut c = 0;
                while c + V::N <= z {
                    input_lanes::<T, W, V>(&d, c, v, tz, t * z, &mut tmp);
                    c += V::N;
                }
                while c + V2::N <= z {
                    input_lanes::<T, W, V2>(&d, c, v, tz, t * z, &mut tmp);
                    c += V2::N;
                }
                while c < z {
                    input_lanes::<T, W, T>(&d, c, v, tz, t * z, &mut tmp);
                    c += 1;
                }
                t += 1;
            }
        }
    }
}

fn input_transform<T: Real, W: Tiling>(wg: &Wino, x: &[T], un: &Unit, v: &mut [T], zeros: &[T]) {
    #[cfg(target_arch = "x86_64")]
    if let (Some(_), Some(x), Some(v), Some(zeros)) = (lanes::detect(), T::as_f32_slice(x), T::as_f32_slice_mut(v), T::as_f32_slice(zeros)) {
        if lanes::has_avx512() {
            // SAFETY: has_avx512() found AVX-512F and DQ, and AVX2 and FMA.
            return unsafe { input_avx512::<W>(wg, x, un, v, zeros) };
        }
        // SAFETY: detect() found AVX2 and FMA.
        return unsafe { input_avx2::<W>(wg, x, un, v, zeros) };
    }
    input_portable::<T, W>(wg, x, un, v, zeros)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn input_avx2<W: Tiling>(wg: &Wino, x: &[f32], un: &Unit, v: &mut [f32], zeros: &[f32]) {
    input_tiles::<f32, W, Y8, Y8>(wg, x, un, v, zeros)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma,avx512f,avx512dq")]
fn input_avx512<W: Tiling>(wg: &Wino, x: &[f32], un: &Unit, v: &mut [f32], zeros: &[f32]) {
    input_tiles::<f32, W, Z16, Y8>(wg, x, un, v, zeros)
}

simd_fn! {
    fn input_portable<T: Real, W: Tiling>(wg: &Wino, x: &[T], un: &Unit, v: &mut [T], zeros: &[T]) {
        input_tiles::<T, W, L<T, 8>, L<T, 8>>(wg, x, un, v, zeros)
    }
}

/// The M×M outputs Aᵀ M A for filters f.. of one tile (m row ξ at ξ·tf + at).
#[inline(always)]
fn output_lanes<T: Real, W: Tiling, V: Lane<T>>(m: &[T], tf: usize, at: usize, f: usize) -> [[V; 4]; 4] {
    let at = at + f;
    // columns j of Aᵀ M, then each row of that through A
    let mut cols = [[V::zero(); 4]; 6];
    for j in 0..W::P {
        let mut col = [V::zero(); 6];
        for i in 0..W::P {
            col[i] = V::load(m, (i * W::P + j) * tf + at);
        }
        cols[j] = W::at::<T, V>(&col);
    }
    let mut y = [[V::zero(); 4]; 4];
    for i in 0..W::M {
        let mut row = [V::zero(); 6];
        for j in 0..W::P {
            row[j] = cols[j][i];
        }
        y[i] = W::at::<T, V>(&row);
    }
    y
}

/// out[s][M·tx + i][M·ty + j][f] = (Aᵀ M A)[i][j] for the outputs that exist (the last
/// tile row or column may be partly outside).
#[inline(always)]
fn output_tiles<T: Real, W: Tiling, V: Lane<T>, V2: Lane<T>>(wg: &Wino, m: &[T], un: &Unit, out: &mut [T]) {
    let g = &wg.g;
    let (nf, mm) = (g.filters, W::M);
    let tf = wg.plane(un, nf);
    let mut t = 0;
    for s in 0..un.ns {
        for tx in un.tx0..un.tx1 {
            for ty in 0..wg.nty {
                // where output (i, j) of this tile goes, if it exists
                let mut dst: [[Option<usize>; 4]; 4] = [[None; 4]; 4];
                for i in 0..mm {
                    for j in 0..mm {
                        let (ox, oy) = (mm * tx + i, mm * ty + j);
                        if ox < g.ox && oy < g.oy {
                            dst[i][j] = Some(s * g.out_size() + ((ox - mm * un.tx0) * g.oy + oy) * nf);
                        }
                    }
                }
                let mut f = 0;
                while f + V::N <= nf {
                    output_store::<T, W, V>(&output_lanes::<T, W, V>(m, tf, t * nf, f), &dst, f, out);
                    f += V::N;
                }
                while f + V2::N <= nf {
                    output_store::<T, W, V2>(&output_lanes::<T, W, V2>(m, tf, t * nf, f), &dst, f, out);
                    f += V2::N;
                }
                while f < nf {
                    output_store::<T, W, T>(&output_lanes::<T, W, T>(m, tf, t * nf, f), &dst, f, out);
                    f += 1;
                }
                t += 1;
            }
        }
    }
}

#[inline(always)]
fn output_store<T: Real, W: Tiling, V: Lane<T>>(y: &[[V; 4]; 4], dst: &[[Option<usize>; 4]; 4], f: usize, out: &mut [T]) {
    for i in 0..W::M {
        for j in 0..W::M {
            if let Some(o) = dst[i][j] {
                y[i][j].store(out, o + f);
            }
        }
    }
}

fn output_transform<T: Real, W: Tiling>(wg: &Wino, m: &[T], un: &Unit, out: &mut [T]) {
    #[cfg(target_arch = "x86_64")]
    if let (Some(_), Some(m), Some(out)) = (lanes::detect(), T::as_f32_slice(m), T::as_f32_slice_mut(out)) {
        if lanes::has_avx512() {
            // SAFETY: has_avx512() found AVX-512F and DQ, and AVX2 and FMA.
            return unsafe { output_avx512::<W>(wg, m, un, out) };
        }
        // SAFETY: detect() found AVX2 and FMA.
        return unsafe { output_avx2::<W>(wg, m, un, out) };
    }
    output_portable::<T, W>(wg, m, un, out)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn output_avx2<W: Tiling>(wg: &Wino, m: &[f32], un: &Unit, out: &mut [f32]) {
    output_tiles::<f32, W, Y8, Y8>(wg, m, un, out)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma,avx512f,avx512dq")]
fn output_avx512<W: Tiling>(wg: &Wino, m: &[f32], un: &Unit, out: &mut [f32]) {
    output_tiles::<f32, W, Z16, Y8>(wg, m, un, out)
}

simd_fn! {
    fn output_portable<T: Real, W: Tiling>(wg: &Wino, m: &[T], un: &Unit, out: &mut [T]) {
        output_tiles::<T, W, L<T, 8>, L<T, 8>>(wg, m, un, out)
    }
}

/// Q = A δ Aᵀ for filters f.. of one tile: d[i][j] the tile's delta rows (zeros where
/// there is no such output).
#[inline(always)]
fn delta_lanes<T: Real, W: Tiling, V: Lane<T>>(d: &[[&[T]; 4]; 4], f: usize, q: &mut [T], tf: usize, at: usize, tmp: &mut [T]) {
    let (m, p) = (W::M, W::P);
    // as input_lanes: the columns through tmp
    for j in 0..m {
        let mut col = [V::zero(); 4];
        for i in 0..m {
            col[i] = V::load(d[i][j], f);
        }
        let col = W::a::<T, V>(&col);
        for i in 0..p {
            col[i].store(tmp, (i * 4 + j) * V::N);
        }
    }
    for i in 0..p {
        let mut row = [V::zero(); 4];
        for j in 0..m {
            row[j] = V::load(tmp, (i * 4 + j) * V::N);
        }
        let row = W::a::<T, V>(&row);
        for j in 0..p {
            row[j].store(q, (i * p + j) * tf + at + f);
        }
    }
}

/// Q[ξ][t][f] = (A δ Aᵀ)[ξ] for the unit's tiles; deltas of outputs that do not exist
/// are zero.
#[inline(always)]
fn delta_tiles<T: Real, W: Tiling, V: Lane<T>, V2: Lane<T>>(wg: &Wino, delta: &[T], un: &Unit, q: &mut [T], zeros: &[T]) {
    let g = &wg.g;
    let (nf, m) = (g.filters, W::M);
    let tf = wg.plane(un, nf);
    let mut tmp = [T::zero(); 24 * MAX_LANES];
    let mut t = 0;
    for s in 0..un.ns {
        let ds = &delta[(un.n0 + s) * g.out_size()..(un.n0 + s + 1) * g.out_size()];
        for tx in un.tx0..un.tx1 {
            for ty in 0..wg.nty {
                let mut d: [[&[T]; 4]; 4] = [[zeros; 4]; 4];
                for i in 0..m {
                    for j in 0..m {
                        let (ox, oy) = (m * tx + i, m * ty + j);
                        if ox < g.ox && oy < g.oy {
                            d[i][j] = &ds[(ox * g.oy + oy) * nf..][..nf];
                        }
                    }
                }
                let mut f = 0;
                while f + V::N <= nf {
                    delta_lanes::<T, W, V>(&d, f, q, tf, t * nf, &mut tmp);
                    f += V::N;
                }
                while f + V2::N <= nf {
                    delta_lanes::<T, W, V2>(&d, f, q, tf, t * nf, &mut tmp);
                    f += V2::N;
                }
                while f < nf {
                    delta_lanes::<T, W, T>(&d, f, q, tf, t * nf, &mut tmp);
                    f += 1;
                }
                t += 1;
            }
        }
    }
}

fn delta_transform<T: Real, W: Tiling>(wg: &Wino, delta: &[T], un: &Unit, q: &mut [T], zeros: &[T]) {
    #[cfg(target_arch = "x86_64")]
    if let (Some(_), Some(delta), Some(q), Some(zeros)) = (lanes::detect(), T::as_f32_slice(delta), T::as_f32_slice_mut(q), T::as_f32_slice(zeros)) {
        if lanes::has_avx512() {
            // SAFETY: has_avx512() found AVX-512F and DQ, and AVX2 and FMA.
            return unsafe { delta_avx512::<W>(wg, delta, un, q, zeros) };
        }
        // SAFETY: detect() found AVX2 and FMA.
        return unsafe { delta_avx2::<W>(wg, delta, un, q, zeros) };
    }
    delta_portable::<T, W>(wg, delta, un, q, zeros)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn delta_avx2<W: Tiling>(wg: &Wino, delta: &[f32], un: &Unit, q: &mut [f32], zeros: &[f32]) {
    delta_tiles::<f32, W, Y8, Y8>(wg, delta, un, q, zeros)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma,avx512f,avx512dq")]
fn delta_avx512<W: Tiling>(wg: &Wino, delta: &[f32], un: &Unit, q: &mut [f32], zeros: &[f32]) {
    delta_tiles::<f32, W, Z16, Y8>(wg, delta, un, q, zeros)
}

simd_fn! {
    fn delta_portable<T: Real, W: Tiling>(wg: &Wino, delta: &[T], un: &Unit, q: &mut [T], zeros: &[T]) {
        delta_tiles::<T, W, L<T, 8>, L<T, 8>>(wg, delta, un, q, zeros)
    }
}

#[cfg(all(test, target_arch = "x86_64"))]
mod tests {
    use super::*;

    /// Seeded values in (−1, 1), none near zero.
    fn draws(n: usize, seed: u64) -> Vec<f32> {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        (0..n).map(|_| rng.random_range(0.01f32..0.99) * if rng.random::<bool>() { 1.0 } else { -1.0 }).collect()
    }

    fn same_bits(a: &[f32], b: &[f32], what: &str) {
        assert_eq!(a.len(), b.len());
        for (i, (x, y)) in a.iter().zip(b).enumerate() {
            assert_eq!(x.to_bits(), y.to_bits(), "{what}: element {i}: {x} against {y}");
        }
    }

    /// The AVX and AVX-512 register lanes compute exactly what the array lanes do, and
    /// write the same elements (outputs poisoned with NaN beforehand), for every tiling, on
    /// channel counts with remainders past the last group of 16 and of 8 (20 = 16 + 4,
    /// 24 = 16 + 8, 43 = 2·16 + 8 + 3) and outputs with partial tiles.
    fn avx2_against_arrays<W: Tiling>(m: usize, field: usize, z: usize, filters: usize, side: usize, pad: usize) {
        if lanes::detect().is_none() {
            eprintln!("skipped: this CPU has no AVX2");
            return;
        }
        let g = ConvGeom::new([side, side + 1, z], [pad, pad], [field, field], [1, 1], filters).unwrap();
        let wg = Wino::new(g, m);
        let n = 3;
        let x = draws(n * g.in_size(), 1);
        let delta = draws(n * g.out_size(), 2);
        let zeros = vec![0f32; z.max(filters)];
        let w = draws(field * field * z * filters, 4);
        let (mut u1, mut u2) = (vec![f32::NAN; wg.u_len()], vec![f32::NAN; wg.u_len()]);
        weights_portable::<f32, W>(&g, &w, &mut u1, false);
        // SAFETY: detect() found AVX2 above.
        unsafe { weights_avx2::<W>(&g, &w, &mut u2, false) };
        same_bits(&u1, &u2, "weight transform");
        if lanes::has_avx512() {
            u2.fill(f32::NAN);
            // SAFETY: has_avx512() found AVX-512F and DQ.
            unsafe { weights_avx512::<W>(&g, &w, &mut u2, false) };
            same_bits(&u1, &u2, "weight transform, AVX-512");
        }
        assert!(u1.iter().all(|v| v.is_finite()), "the weight transform writes every element");
        let du = draws(wg.u_len(), 5);
        let (mut w1, mut w2) = (vec![f32::NAN; w.len()], vec![f32::NAN; w.len()]);
        weights_portable::<f32, W>(&g, &du, &mut w1, true);
        // SAFETY: as above.
        unsafe { weights_avx2::<W>(&g, &du, &mut w2, true) };
        same_bits(&w1, &w2, "weight gradient's transform back");
        if lanes::has_avx512() {
            w2.fill(f32::NAN);
            // SAFETY: has_avx512() found AVX-512F and DQ.
            unsafe { weights_avx512::<W>(&g, &du, &mut w2, true) };
            same_bits(&w1, &w2, "weight gradient's transform back, AVX-512");
        }
        assert!(w1.iter().all(|v| v.is_finite()), "the transform back writes every weight");
        for i in 0..wg.unit_count(n) {
            let un = wg.unit(i, n);
            let (t, pp) = (wg.tiles(&un), wg.positions());
            let (sv, sf) = (wg.plane(&un, z), wg.plane(&un, filters));
            let (mut v1, mut v2) = (vec![f32::NAN; pp * sv], vec![f32::NAN; pp * sv]);
            input_portable::<f32, W>(&wg, &x, &un, &mut v1, &zeros);
            // SAFETY: detect() found AVX2 above.
            unsafe { input_avx2::<W>(&wg, &x, &un, &mut v2, &zeros) };
            same_bits(&v1, &v2, "input transform");
            if lanes::has_avx512() {
                v2.fill(f32::NAN);
                // SAFETY: has_avx512() found AVX-512F and DQ.
                unsafe { input_avx512::<W>(&wg, &x, &un, &mut v2, &zeros) };
                same_bits(&v1, &v2, "input transform, AVX-512");
            }
            assert!(v1.chunks(sv).all(|p| p[..t * z].iter().all(|v| v.is_finite())), "the input transform writes every element");
            let (mut q1, mut q2) = (vec![f32::NAN; pp * sf], vec![f32::NAN; pp * sf]);
            delta_portable::<f32, W>(&wg, &delta, &un, &mut q1, &zeros);
            // SAFETY: as above.
            unsafe { delta_avx2::<W>(&wg, &delta, &un, &mut q2, &zeros) };
            same_bits(&q1, &q2, "delta transform");
            if lanes::has_avx512() {
                q2.fill(f32::NAN);
                // SAFETY: has_avx512() found AVX-512F and DQ.
                unsafe { delta_avx512::<W>(&wg, &delta, &un, &mut q2, &zeros) };
                same_bits(&q1, &q2, "delta transform, AVX-512");
            }
            assert!(q1.chunks(sf).all(|p| p[..t * filters].iter().all(|v| v.is_finite())), "the delta transform writes every element");
            let mt = draws(pp * sf, 3 + i as u64);
            let len = un.ns * (m * (un.tx1 - un.tx0)).min(g.ox - m * un.tx0) * g.oy * filters;
            let (mut o1, mut o2) = (vec![f32::NAN; len], vec![f32::NAN; len]);
            output_portable::<f32, W>(&wg, &mt, &un, &mut o1);
            // SAFETY: as above.
            unsafe { output_avx2::<W>(&wg, &mt, &un, &mut o2) };
            same_bits(&o1, &o2, "output transform");
            if lanes::has_avx512() {
                o2.fill(f32::NAN);
                // SAFETY: has_avx512() found AVX-512F and DQ.
                unsafe { output_avx512::<W>(&wg, &mt, &un, &mut o2) };
                same_bits(&o1, &o2, "output transform, AVX-512");
            }
            assert!(o1.iter().all(|v| v.is_finite()), "the output transform writes every output of its unit");
        }
    }

    #[test]
    fn avx2_lanes_match_array_lanes() {
        avx2_against_arrays::<F2>(2, 3, 20, 19, 9, 1);
        avx2_against_arrays::<F4>(4, 3, 20, 19, 9, 1);
        avx2_against_arrays::<F4>(4, 3, 16, 24, 30, 0);
        avx2_against_arrays::<F42>(4, 2, 19, 20, 10, 0);
        avx2_against_arrays::<F4>(4, 3, 43, 43, 9, 1);
    }
}

#[cfg(all(test, target_arch = "x86_64"))]
mod timing {
    use super::*;
    use std::time::Instant;

    /// cargo test --release timing -- --ignored --nocapture
    #[test]
    #[ignore]
    fn transform_times() {
        let n: usize = std::env::var("NF_N").map_or(64, |v| v.parse().unwrap());
        for (side, z, f) in [(31, 24, 32), (15, 32, 64), (7, 64, 128)] {
            let g = ConvGeom::new([side, side, z], [1, 1], [3, 3], [1, 1], f).unwrap();
            let wg = Wino::new(g, 4);
            let x: Vec<f32> = (0..n * g.in_size()).map(|i| (i % 97) as f32 * 0.01 + 0.1).collect();
            let zeros = vec![0f32; z.max(f)];
            let units: Vec<Unit> = (0..wg.unit_count(n)).map(|i| wg.unit(i, n)).collect();
            let maxt = units.iter().map(|u| wg.tiles(u)).max().unwrap();
            let mut v = vec![0f32; 36 * (maxt * z + PLANE_PAD)];
            let mut mm = vec![0.5f32; 36 * (maxt * f + PLANE_PAD)];
            let mut out = vec![0f32; n * g.out_size()];
            let tiles: usize = units.iter().map(|u| wg.tiles(u)).sum();
            for rep in 0..3 {
                let t0 = Instant::now();
                for u in &units {
                    input_transform::<f32, F4>(&wg, &x, u, &mut v, &zeros);
                }
                let ti = t0.elapsed().as_secs_f64();
                let t0 = Instant::now();
                for u in &units {
                    let len = u.ns * (4 * (u.tx1 - u.tx0)).min(g.ox - 4 * u.tx0) * g.oy * f;
                    let o0 = u.n0 * g.out_size();
                    output_transform::<f32, F4>(&wg, &mm, u, &mut out[o0..o0 + len]);
                }
                let to = t0.elapsed().as_secs_f64();
                let t0 = Instant::now();
                for u in &units {
                    delta_transform::<f32, F4>(&wg, &out, u, &mut mm, &zeros);
                }
                let td = t0.elapsed().as_secs_f64();
                if rep == 2 {
                    let ns = |t: f64, c: usize| t * 1e9 / (tiles * c.div_ceil(8)) as f64;
                    println!("{side}x{side}x{z}->{f}: {tiles} tiles; ns per tile and group of 8: input {:.1}, output {:.1}, delta {:.1}; ms: {:.2} {:.2} {:.2}",
                        ns(ti, z), ns(to, f), ns(td, f), ti * 1e3, to * 1e3, td * 1e3);
                }
            }
            mm[0] = v[0];
        }
    }
}
