//! The direct kernels' view of their input: *phase-planar* rows. For input row x and
//! channel c, the Y values of that row ordered by phase (y mod sy), then y / sy, so that
//! consecutive outputs along y read consecutive inputs for every tap, whatever the stride
//! and depth. For Z = 1 and sy = 1 that is the input itself; otherwise the rows are copied
//! into a small per-thread window just before they are used (`for_rows`).

use crate::im2col::ConvGeom;
use crate::lanes::{chunk, chunk_mut, lanes_fn, Lanes};
use crate::real::Real;
use crate::scratch::with_window;
use crate::simd::simd_fn;

/// Does this layer need a planar copy of its input (or is the input already planar)?
pub fn needs_planar(g: &ConvGeom) -> bool {
    g.z > 1 || g.sy > 1
}

/// Number of input columns y with y mod sy = r.
#[inline(always)]
pub fn phase_len(g: &ConvGeom, r: usize) -> usize {
    if r < g.y {
        (g.y - r).div_ceil(g.sy)
    } else {
        0
    }
}

#[inline(always)]
pub fn phase_start(g: &ConvGeom, r: usize) -> usize {
    (0..r).map(|q| phase_len(g, q)).sum()
}

simd_fn! {
    /// Planar copy of one input row: dst[c·Y + start(y mod sy) + y / sy] = src[y·Z + c].
    /// The source is n = sy·Z interleaved streams, stream r·Z + c being phase r of channel
    /// c; for f32 with vector instructions (lanes.rs), 2 or 3 streams are split 8 groups
    /// at a time.
    pub fn to_planar_row<T: Real>(g: &ConvGeom, src: &[T], dst: &mut [T]) {
        let (yn, z) = (g.y, g.z);
        let n = g.sy * z;
        let mut j0 = 0; // groups already split by the vector code
        if let (true, Some(src), Some(dst), Some(l)) = ((n == 2 || n == 3) && yn >= g.sy, T::as_f32_slice(src), T::as_f32_slice_mut(dst), crate::lanes::detect()) {
            // every stream has at least Y / sy values; split whole blocks of 8 of those
            j0 = yn / g.sy / 8 * 8;
            let starts: [usize; 3] = std::array::from_fn(|s| if s < n { (s % z) * yn + phase_start(g, s / z) } else { 0 });
            split_streams(l, &src[..n * j0], n, &starts, dst);
        }
        for s in 0..n {
            let (r, c) = (s / z, s % z);
            let d = &mut dst[c * yn + phase_start(g, r)..c * yn + phase_start(g, r) + phase_len(g, r)];
            for (j, v) in d.iter_mut().enumerate().skip(j0) {
                *v = src[j * n + s];
            }
        }
    }
}

simd_fn! {
    /// The inverse of `to_planar_row`: dst[y·Z + c] = src[c·Y + start(y mod sy) + y / sy]
    /// (the input gradient's way back to channels last). For f32 with vector
    /// instructions, 2 streams are merged 8 groups at a time.
    pub fn from_planar_row<T: Real>(g: &ConvGeom, src: &[T], dst: &mut [T]) {
        let (yn, z) = (g.y, g.z);
        let n = g.sy * z;
        let mut j0 = 0;
        if let (true, Some(src), Some(dst), Some(l)) = (n == 2 && yn >= g.sy, T::as_f32_slice(src), T::as_f32_slice_mut(dst), crate::lanes::detect()) {
            j0 = yn / g.sy / 8 * 8;
            let [a, b]: [&[f32]; 2] = std::array::from_fn(|s| {
                let at = (s % z) * yn + phase_start(g, s / z);
                &src[at..at + j0]
            });
            merge_streams2(l, a, b, &mut dst[..2 * j0]);
        }
        for s in 0..n {
            let (r, c) = (s / z, s % z);
            let from = c * yn + phase_start(g, r);
            for (j, &v) in src[from..from + phase_len(g, r)].iter().enumerate().skip(j0) {
                dst[j * n + s] = v;
            }
        }
    }
}

lanes_fn! {
    /// Interleave two f32 streams of equal length (a multiple of 8) into dst.
    fn merge_streams2(l: Isa, a: &[f32], b: &[f32], dst: &mut [f32]) {
        for (j, out) in (0..a.len() / 8).map(|k| 8 * k).zip(dst.chunks_exact_mut(16)) {
            let (x, y) = (l.load(chunk(a, j)), l.load(chunk(b, j)));
            l.merge2(x, y, chunk_mut(out, 0));
        }
    }
}

lanes_fn! {
    /// Split src, groups of n ∈ {2, 3} interleaved f32 values (a multiple of 8 groups),
    /// into n streams, stream s written to dst[starts[s]..].
    fn split_streams(l: Isa, src: &[f32], n: usize, starts: &[usize; 3], dst: &mut [f32]) {
        let groups = src.len() / n;
        for j in (0..groups).step_by(8) {
            if n == 2 {
                for (v, &at) in l.split2(chunk(src, 2 * j)).into_iter().zip(starts) {
                    l.store(v, chunk_mut(dst, at + j));
                }
            } else {
                for (v, &at) in l.split3(chunk(src, 3 * j)).into_iter().zip(starts) {
                    l.store(v, chunk_mut(dst, at + j));
                }
            }
        }
    }
}

/// Input rows x0.. of one sample in planar order: row ix, channel c is
/// `data[((ix − x0)·Z + c)·Y ..][..Y]`. For Z = 1 and sy = 1 the input itself, x0 = 0.
#[derive(Clone, Copy)]
pub struct Rows<'a, T> {
    pub data: &'a [T],
    pub x0: usize,
}

impl<'a, T> Rows<'a, T> {
    /// Where row ix, channel c starts in `data`.
    #[inline(always)]
    pub fn offset(&self, g: &ConvGeom, c: usize, ix: usize) -> usize {
        ((ix - self.x0) * g.z + c) * g.y
    }

    #[inline(always)]
    pub fn row(&self, g: &ConvGeom, c: usize, ix: usize) -> &'a [T] {
        let i = self.offset(g, c, ix);
        &self.data[i..i + g.y]
    }
}

/// The input rows [lo, hi) that output rows ox0..ox1 read.
fn input_rows(g: &ConvGeom, ox0: usize, ox1: usize) -> (usize, usize) {
    let lo = (ox0 * g.sx).saturating_sub(g.px).min(g.x);
    let hi = ((ox1 - 1) * g.sx + g.fx).saturating_sub(g.px).min(g.x);
    (lo, hi.max(lo))
}

/// Output rows per call of `for_rows`'s callback: long runs of rows share one tap set-up
/// (8 rows → 32: ~8 % on the glasses step), and their input rows still fit L2.
const ROW_CHUNK: usize = 32;

/// Run `f(rows, a, b)` for consecutive chunks [a, b) of the output rows ox0..ox1 of one
/// sample `x`, in order. Where the layout needs a planar copy, each input row is copied
/// into a per-thread window just before the first chunk that reads it: the copy is made
/// while the row is in cache and read back from cache, and no full-size copy of the
/// input is ever kept.
pub fn for_rows<T: Real>(g: &ConvGeom, x: &[T], ox0: usize, ox1: usize, mut f: impl FnMut(Rows<'_, T>, usize, usize)) {
    let chunks = (ox0..ox1).step_by(ROW_CHUNK).map(|a| (a, (a + ROW_CHUNK).min(ox1)));
    if !needs_planar(g) {
        for (a, b) in chunks {
            f(Rows { data: x, x0: 0 }, a, b);
        }
        return;
    }
    if ox0 >= ox1 {
        return;
    }
    let yz = g.y * g.z;
    let (lo, hi) = input_rows(g, ox0, ox1);
    with_window((hi - lo) * yz, |win: &mut [T]| {
        let mut done = lo;
        for (a, b) in chunks {
            let need = input_rows(g, a, b).1;
            while done < need {
                let at = (done - lo) * yz;
                to_planar_row(g, &x[done * yz..(done + 1) * yz], &mut win[at..at + yz]);
                done += 1;
            }
            f(Rows { data: &win[..], x0: lo }, a, b);
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every layout (the vector splits for 2 and 3 streams included) against the index
    /// formula, with the destination poisoned.
    #[test]
    fn planar_rows_match_the_index_formula() {
        for (z, sy) in [(1, 2), (3, 1), (2, 1), (1, 3), (3, 2), (2, 2)] {
            for yn in [1, 2, 7, 16, 17, 40, 41, 50] {
                let fy = 1 + (yn - 1) % sy; // the stride must divide Y − field
                let g = ConvGeom::new([2, yn, z], [0, 0], [1, fy], [1, sy], 1).unwrap();
                let src: Vec<f32> = (0..yn * z).map(|i| i as f32 * 0.5 + 1.0).collect();
                let mut dst = vec![f32::NAN; yn * z];
                to_planar_row(&g, &src, &mut dst);
                for y in 0..yn {
                    for c in 0..z {
                        let at = c * yn + phase_start(&g, y % sy) + y / sy;
                        assert_eq!(dst[at], src[y * z + c], "z {z} sy {sy} Y {yn} y {y} c {c}");
                    }
                }
                let mut back = vec![f32::NAN; yn * z];
                from_planar_row(&g, &dst, &mut back);
                assert_eq!(back, src, "back: z {z} sy {sy} Y {yn}");
            }
        }
    }
}
