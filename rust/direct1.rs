//! One-filter direct kernels for f32, in the vector instructions of lanes.rs (AVX2 + FMA,
//! NEON; the article's glasses net has one filter per layer). Each kernel sees a layer row
//! as a list of taps, each a shifted view of a source row with a weight and the range of
//! outputs it reaches, and keeps its sums in registers across all taps (the generic
//! kernels of direct.rs read and write memory once per tap). Output ranges are cut where
//! some tap starts or stops (direct::Plan), so inside each piece the same taps are live:
//! each tap's inputs are checked once per piece for all rows (`check_inputs`), and the
//! vector loops read inside them unchecked.

use crate::lanes::{chunk, chunk_mut, chunk_unchecked, lanes_fn, Isa, Lanes};

/// Most taps a row may have (a 4×4 field on 4 channels); more go to the generic kernels.
pub const MAX_TAPS: usize = 64;

/// Output q of this tap reads `src[origin + base + q]`, for lo ≤ q < hi, where origin is
/// where its row starts; `id` is its weight index.
#[derive(Clone, Copy)]
pub struct Tap {
    pub base: isize,
    pub w: f32,
    pub id: u32,
    pub lo: u32,
    pub hi: u32,
}

/// Up to MAX_TAPS taps on the stack, not initialised until pushed (zeroing two whole
/// arrays per row had cost a few per cent of the glasses step).
pub struct TapList {
    taps: std::mem::MaybeUninit<[Tap; MAX_TAPS]>,
    len: usize,
}

impl Default for TapList {
    fn default() -> Self {
        Self::new()
    }
}

impl TapList {
    #[inline(always)]
    pub fn new() -> TapList {
        TapList { taps: std::mem::MaybeUninit::uninit(), len: 0 }
    }
    #[inline(always)]
    pub fn push(&mut self, t: Tap) {
        assert!(self.len < MAX_TAPS, "more than {MAX_TAPS} taps");
        // SAFETY: len < MAX_TAPS, inside the array.
        unsafe { (self.taps.as_mut_ptr() as *mut Tap).add(self.len).write(t) };
        self.len += 1;
    }
    #[inline(always)]
    pub fn clear(&mut self) {
        self.len = 0;
    }
    #[inline(always)]
    pub fn as_slice(&self) -> &[Tap] {
        // SAFETY: the first len elements were written by push.
        unsafe { std::slice::from_raw_parts(self.taps.as_ptr() as *const Tap, self.len) }
    }
}

/// The taps that reach every output of the piece [u, v) between two consecutive cuts
/// (sorted; every tap's lo and hi among them), collected in `live`.
#[inline(always)]
fn live_in<'a>(taps: &[Tap], u: usize, v: usize, live: &'a mut TapList) -> &'a [Tap] {
    live.clear();
    for t in taps {
        if t.lo as usize <= u && v <= t.hi as usize {
            live.push(*t);
        }
    }
    live.as_slice()
}

/// The slice `src[origin + base + q]` for q in [u, v): where a tap reads for those outputs
/// (one bounds check for all of them; a negative index panics as out of bounds).
#[inline(always)]
fn span<'a>(src: &'a [f32], origin: usize, t: &Tap, u: usize, v: usize) -> &'a [f32] {
    let at = (origin as isize + t.base + u as isize) as usize;
    &src[at..at + (v - u)]
}

/// Panics unless every tap's inputs for outputs [u, v) lie inside src in every row (the
/// rows' origins grow with r: the first and the last bound them). The loops that read
/// them unchecked rely on this.
#[inline(always)]
fn check_inputs(src: &[f32], stride: usize, rows: usize, live: &[Tap], u: usize, v: usize) {
    // in checked arithmetic: a wrapped sum could pass the test and still read outside
    let span = isize::try_from(rows.saturating_sub(1)).ok().zip(isize::try_from(stride).ok()).and_then(|(r, s)| r.checked_mul(s));
    let (u, v) = (isize::try_from(u).ok(), isize::try_from(v).ok());
    for t in live {
        let first = u.and_then(|u| t.base.checked_add(u));
        let last = span.zip(v).and_then(|(span, v)| span.checked_add(t.base)?.checked_add(v));
        let inside = matches!((first, last), (Some(f), Some(l)) if f >= 0 && l >= 0 && l as usize <= src.len());
        assert!(inside, "direct kernel: tap {} reads outside its source", t.id);
    }
}

lanes_fn! {
    /// out[q] = Σ over the taps reaching q of w · src[base + q] (forward, and the input
    /// gradient as a gather), for `rows` rows: row r reads from origin r·stride and writes
    /// out[r·n..], n = out.len() / rows (rows of one tap pattern share one tap list).
    /// `cuts` runs from 0 to n and holds every tap's lo and hi. Panics if a tap reads
    /// outside `src`.
    pub fn gather(l: Isa, src: &[f32], stride: usize, rows: usize, taps: &[Tap], cuts: &[usize], out: &mut [f32]) {
        let n = out.len() / rows.max(1);
        if n == 0 || rows == 0 {
            return;
        }
        let mut live = TapList::new();
        for win in cuts.windows(2) {
            let (u, v) = (win[0], win[1]);
            let live = live_in(taps, u, v, &mut live);
            check_inputs(src, stride, rows, live, u, v);
            for (r, o) in out.chunks_exact_mut(n).take(rows).enumerate() {
                gather_piece(l, src, r * stride, live, u, v, o);
            }
        }
    }
}

#[inline(always)]
fn gather_piece(l: Isa, src: &[f32], origin: usize, live: &[Tap], u: usize, v: usize, o: &mut [f32]) {
    // 64 outputs (eight registers: enough independent sums to cover the FMA latency) per
    // pass over the taps, then 32, then 8
    let mut q = u;
    while q + 64 <= v {
        gather_block::<8, 64>(l, src, origin, live, q, chunk_mut(o, q));
        q += 64;
    }
    while q + 32 <= v {
        gather_block::<4, 32>(l, src, origin, live, q, chunk_mut(o, q));
        q += 32;
    }
    while q + 8 <= v {
        gather_block::<1, 8>(l, src, origin, live, q, chunk_mut(o, q));
        q += 8;
    }
    if q < v && v - u >= 8 {
        // the last 1..7 outputs: one more block ending at v, recomputing a few outputs of
        // the block before (the same values; cheaper than a scalar loop over the taps)
        gather_block::<1, 8>(l, src, origin, live, v - 8, chunk_mut(o, v - 8));
    } else {
        // fewer than 8 outputs in all: each summed in a register
        for q in q..v {
            let mut acc = 0f32;
            for t in live {
                acc += t.w * span(src, origin, t, q, q + 1)[0];
            }
            o[q] = acc;
        }
    }
}

/// Outputs q..q + N (N = 8R), summed over the taps in R registers, inside a piece whose
/// taps' inputs gather has checked.
#[inline(always)]
fn gather_block<const R: usize, const N: usize>(l: Isa, src: &[f32], origin: usize, live: &[Tap], q: usize, o: &mut [f32; N]) {
    let mut acc = [l.zero(); R];
    for t in live {
        let at = (origin as isize + t.base + q as isize) as usize;
        // SAFETY: u ≤ q and q + N ≤ v inside the piece [u, v), whose inputs of this tap,
        // origin + base + u to origin + base + v, gather checked inside src.
        let s: &[f32; N] = unsafe { chunk_unchecked(src, at) };
        let w = l.splat(t.w);
        for (j, a) in acc.iter_mut().enumerate() {
            *a = l.fma(w, l.load(chunk(s, 8 * j)), *a);
        }
    }
    for (j, a) in acc.iter().enumerate() {
        l.store(*a, chunk_mut(o, 8 * j));
    }
}

lanes_fn! {
    /// dw[id] += Σ_rows Σ_q src[r·stride + base + q] · d[r·n + q] over each tap's range
    /// (the weight gradient), n = d.len() / rows; each sum stays in registers across the
    /// rows. `cuts` ends at most at n. Panics if a tap reads outside `src`.
    pub fn correlate(l: Isa, src: &[f32], stride: usize, rows: usize, taps: &[Tap], cuts: &[usize], d: &[f32], dw: &mut [f32]) {
        if rows == 0 {
            return;
        }
        let n = d.len() / rows;
        let rs = RowSteps { stride, rows, n };
        let mut live = TapList::new();
        for win in cuts.windows(2) {
            let (u, v) = (win[0], win[1]);
            let live = live_in(taps, u, v, &mut live);
            check_inputs(src, stride, rows, live, u, v);
            // groups of at most 12 taps, as even as possible, share each load of d
            let groups = live.len().div_ceil(12);
            let mut rest = live;
            for gi in 0..groups {
                let (group, more) = rest.split_at(rest.len() / (groups - gi));
                rest = more;
                match group.len() {
                    1 => correlate_group::<1>(l, src, &rs, group, d, u, v, dw),
                    2 => correlate_group::<2>(l, src, &rs, group, d, u, v, dw),
                    3 => correlate_group::<3>(l, src, &rs, group, d, u, v, dw),
                    4 => correlate_group::<4>(l, src, &rs, group, d, u, v, dw),
                    5 => correlate_group::<5>(l, src, &rs, group, d, u, v, dw),
                    6 => correlate_group::<6>(l, src, &rs, group, d, u, v, dw),
                    7 => correlate_group::<7>(l, src, &rs, group, d, u, v, dw),
                    8 => correlate_group::<8>(l, src, &rs, group, d, u, v, dw),
                    9 => correlate_group::<9>(l, src, &rs, group, d, u, v, dw),
                    10 => correlate_group::<10>(l, src, &rs, group, d, u, v, dw),
                    11 => correlate_group::<11>(l, src, &rs, group, d, u, v, dw),
                    _ => correlate_group::<12>(l, src, &rs, group, d, u, v, dw),
                }
            }
        }
    }
}

/// Rows of a correlate call: source stride, count, and length of a delta row.
struct RowSteps {
    stride: usize,
    rows: usize,
    n: usize,
}

#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn correlate_group<const G: usize>(l: Isa, src: &[f32], rs: &RowSteps, taps: &[Tap], d: &[f32], u: usize, v: usize, dw: &mut [f32]) {
    let mut acc = [l.zero(); G];
    let mut tail = [l.zero(); G];
    let len = v - u;
    let whole = len / 8 * 8;
    for r in 0..rs.rows {
        // where each tap's inputs for this row start (correlate checked them: at[j] + len
        // ≤ src.len())
        let mut at = [0usize; G];
        for (a, t) in at.iter_mut().zip(taps) {
            *a = (r as isize * rs.stride as isize + t.base + u as isize) as usize;
        }
        let dr = &d[r * rs.n + u..r * rs.n + v];
        for q in (0..whole).step_by(8) {
            // SAFETY: q + 8 ≤ whole ≤ len = dr.len().
            let dv = l.load(unsafe { chunk_unchecked(dr, q) });
            for j in 0..G {
                // SAFETY: at[j] + q + 8 ≤ at[j] + len ≤ src.len() (see `at`).
                acc[j] = l.fma(l.load(unsafe { chunk_unchecked(src, at[j] + q) }), dv, acc[j]);
            }
        }
        if whole < len {
            // the last 1..7 positions (missing lanes load as zero)
            let dv = l.load_part(&dr[whole..]);
            for j in 0..G {
                tail[j] = l.fma(l.load_part(&src[at[j] + whole..at[j] + len]), dv, tail[j]);
            }
        }
    }
    for j in 0..G {
        dw[taps[j].id as usize] += l.sum(l.add(acc[j], tail[j]));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Seeded values in [-1, 1).
    fn values(n: usize, seed: u64) -> Vec<f32> {
        let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        (0..n)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                (s >> 40) as f32 / (1u64 << 23) as f32 - 1.0
            })
            .collect()
    }

    /// Taps over a row of n outputs with ranges that start and stop at odd places.
    fn some_taps(n: usize, k: usize) -> (Vec<Tap>, Vec<usize>) {
        let w = values(k, 7);
        let taps: Vec<Tap> = (0..k)
            .map(|i| {
                let lo = ((i * 5) % 11).min(n / 3);
                let hi = n.saturating_sub((i * 3) % 7).max(lo + 1);
                Tap { base: (i % 4) as isize + 3, w: w[i], id: i as u32, lo: lo as u32, hi: hi as u32 }
            })
            .collect();
        let mut cuts: Vec<usize> = [0, n].into_iter().chain(taps.iter().flat_map(|t| [t.lo as usize, t.hi as usize])).collect();
        cuts.sort_unstable();
        cuts.dedup();
        (taps, cuts)
    }

    /// The kernels against a scalar statement of exactly the operations they do (fused
    /// multiply-adds in tap order; per-lane sums, then the fixed tree): equal bit for bit,
    /// which, run on x86-64 and aarch64, makes AVX2 and NEON agree bit for bit too.
    #[test]
    fn kernels_do_exactly_their_scalar_operations() {
        let Some(l) = crate::lanes::detect() else { return };
        for (n, k, rows) in [(5, 3, 1), (83, 9, 2), (150, 27, 3), (64, 12, 1), (41, 13, 2)] {
            let (taps, cuts) = some_taps(n, k);
            let stride = n + 9;
            let src = values(rows * stride + 16, 3);
            let mut out = vec![f32::NAN; rows * n];
            gather(l, &src, stride, rows, &taps, &cuts, &mut out);
            for r in 0..rows {
                for win in cuts.windows(2) {
                    let (u, v) = (win[0], win[1]);
                    for q in u..v {
                        let mut acc = 0f32;
                        for t in taps.iter().filter(|t| t.lo as usize <= u && v <= t.hi as usize) {
                            let x = src[(r * stride) as isize as usize + (t.base + q as isize) as usize];
                            acc = if v - u >= 8 { t.w.mul_add(x, acc) } else { acc + t.w * x };
                        }
                        assert_eq!(out[r * n + q].to_bits(), acc.to_bits(), "gather n {n} row {r} q {q}");
                    }
                }
            }
            let d = values(rows * n, 5);
            let mut dw = values(k, 9);
            let mut want = dw.clone();
            correlate(l, &src, stride, rows, &taps, &cuts, &d, &mut dw);
            for win in cuts.windows(2) {
                let (u, v) = (win[0], win[1]);
                let whole = u + (v - u) / 8 * 8;
                for t in taps.iter().filter(|t| t.lo as usize <= u && v <= t.hi as usize) {
                    let (mut acc, mut tail) = ([0f32; 8], [0f32; 8]);
                    for r in 0..rows {
                        for q in u..v {
                            let x = src[r * stride + (t.base + q as isize) as usize];
                            let lane = if q < whole { &mut acc[(q - u) % 8] } else { &mut tail[q - whole] };
                            *lane = x.mul_add(d[r * n + q], *lane);
                        }
                    }
                    let s: Vec<f32> = (0..8).map(|i| acc[i] + tail[i]).collect();
                    want[t.id as usize] += ((s[0] + s[4]) + (s[1] + s[5])) + ((s[2] + s[6]) + (s[3] + s[7]));
                }
            }
            for (i, (a, b)) in dw.iter().zip(&want).enumerate() {
                assert_eq!(a.to_bits(), b.to_bits(), "correlate n {n} tap {i}");
            }
        }
    }

    /// One tap reading 16 values from 10 on of a 20-value source, in `rows` rows `stride` apart.
    fn gather_past_the_end(stride: usize, rows: usize) {
        let Some(l) = crate::lanes::detect() else { panic!("reads outside its source (no vector kernels here)") };
        let taps = [Tap { base: 10, w: 1.0, id: 0, lo: 0, hi: 16 }];
        let mut out = vec![0f32; 16 * rows];
        gather(l, &[0.5; 20], stride, rows, &taps, &[0, 16], &mut out);
    }

    #[test]
    #[should_panic(expected = "reads outside its source")]
    fn a_tap_outside_its_source_panics() {
        gather_past_the_end(0, 1);
    }

    /// A stride so large that the last row's end wraps around to a small number.
    #[test]
    #[should_panic(expected = "reads outside its source")]
    fn a_wrapping_stride_panics() {
        gather_past_the_end(usize::MAX - 9, 2);
    }
}
