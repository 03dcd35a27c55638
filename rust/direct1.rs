//! One-filter direct kernels for f32 on CPUs with AVX2 and FMA (the article's glasses
//! net has one filter per layer). Each kernel sees a layer row as a list of taps, each a
//! shifted view of a source row with a weight and the range of outputs it reaches, and
//! keeps its sums in registers across all taps (the generic kernels of direct.rs read and
//! write memory once per tap). Output ranges are cut where some tap starts or stops
//! (direct::Plan), so inside each piece the same taps are live and the loops need no
//! bounds tests.

#[cfg(target_arch = "x86_64")]
use std::arch::x86_64::*;

/// Most taps a row may have (a 4×4 field on 4 channels); more go to the generic kernels.
pub const MAX_TAPS: usize = 64;

/// Output q of this tap reads `src[base + q]`, for lo ≤ q < hi; `id` is its weight index.
#[derive(Clone, Copy)]
pub struct Tap {
    pub base: isize,
    pub w: f32,
    pub id: u32,
    pub lo: u32,
    pub hi: u32,
}

/// Are these kernels usable here (x86-64 with AVX2 and FMA)?
#[inline(always)]
pub fn available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
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

/// Call `f(u, v, live)` for the pieces [u, v) between consecutive `cuts` (sorted; every
/// tap's lo and hi among them), `live` being the taps that reach every output of the piece.
#[inline(always)]
fn pieces(taps: &[Tap], cuts: &[usize], mut f: impl FnMut(usize, usize, &[Tap])) {
    let mut live = TapList::new();
    for win in cuts.windows(2) {
        let (u, v) = (win[0], win[1]);
        live.clear();
        for t in taps.iter().filter(|t| t.lo as usize <= u && v <= t.hi as usize) {
            live.push(*t);
        }
        f(u, v, live.as_slice());
    }
}

/// out[q] = Σ over the taps reaching q of w · src[base + q] (forward, and the input
/// gradient as a gather), for `rows` rows: row r reads src + r·stride and writes
/// out[r·n..], n = out.len() / rows (rows of one tap pattern share one tap list).
///
/// # Safety
/// The CPU has AVX2 and FMA; for every row r and tap, `src + r·stride + base + q` is
/// readable for lo ≤ q < hi; `cuts` runs from 0 to n and holds every tap's lo and hi.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
pub unsafe fn gather(src: *const f32, stride: isize, rows: usize, taps: &[Tap], cuts: &[usize], out: &mut [f32]) {
    let n = out.len() / rows.max(1);
    pieces(taps, cuts, |u, v, live| {
        for r in 0..rows {
            gather_piece(src.offset(r as isize * stride), live, u, v, out[r * n..(r + 1) * n].as_mut_ptr());
        }
    });
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[inline]
unsafe fn gather_piece(src: *const f32, live: &[Tap], u: usize, v: usize, o: *mut f32) {
    // 64 outputs (eight registers: enough independent sums to cover the FMA latency) per
    // pass over the taps, then 32, then 8
    let mut q = u;
    while q + 64 <= v {
        gather_block::<8>(src, live, q, o);
        q += 64;
    }
    while q + 32 <= v {
        gather_block::<4>(src, live, q, o);
        q += 32;
    }
    while q + 8 <= v {
        gather_block::<1>(src, live, q, o);
        q += 8;
    }
    if q < v && v - u >= 8 {
        // the last 1..7 outputs: one more block ending at v, recomputing a few outputs of
        // the block before (the same values; cheaper than a scalar loop over the taps)
        gather_block::<1>(src, live, v - 8, o);
    } else {
        for q in q..v {
            let mut acc = 0f32;
            for t in live {
                acc += t.w * *src.offset(t.base + q as isize);
            }
            *o.add(q) = acc;
        }
    }
}

/// Outputs q..q + 8R, summed over the taps in R registers.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[inline]
unsafe fn gather_block<const R: usize>(src: *const f32, live: &[Tap], q: usize, o: *mut f32) {
    let mut acc = [_mm256_setzero_ps(); R];
    for t in live {
        let (w, p) = (_mm256_set1_ps(t.w), src.offset(t.base + q as isize));
        for (j, a) in acc.iter_mut().enumerate() {
            *a = _mm256_fmadd_ps(w, _mm256_loadu_ps(p.add(8 * j)), *a);
        }
    }
    for (j, a) in acc.iter().enumerate() {
        _mm256_storeu_ps(o.add(q + 8 * j), *a);
    }
}

/// Lanes 0..k of 8 selected (k < 8), for masked loads and stores.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
#[inline]
unsafe fn tail_mask(k: usize) -> __m256i {
    let lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    _mm256_cmpgt_epi32(_mm256_set1_epi32(k as i32), lane)
}

/// dw[id] += Σ_rows Σ_q src[r·stride + base + q] · d[r·n + q] over each tap's range (the
/// weight gradient), n = d.len() / rows; each sum stays in registers across the rows.
///
/// # Safety
/// As `gather`, with `cuts` ending at most at n.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
pub unsafe fn correlate(src: *const f32, stride: isize, rows: usize, taps: &[Tap], cuts: &[usize], d: &[f32], dw: &mut [f32]) {
    let n = d.len() / rows.max(1);
    let rs = RowSteps { stride, rows, n };
    pieces(taps, cuts, |u, v, live| {
        // groups of at most 12 taps, as even as possible, share each load of d
        let groups = live.len().div_ceil(12);
        let mut rest = live;
        for gi in 0..groups {
            let (group, more) = rest.split_at(rest.len() / (groups - gi));
            rest = more;
            match group.len() {
                1 => correlate_group::<1>(src, &rs, group, d, u, v, dw),
                2 => correlate_group::<2>(src, &rs, group, d, u, v, dw),
                3 => correlate_group::<3>(src, &rs, group, d, u, v, dw),
                4 => correlate_group::<4>(src, &rs, group, d, u, v, dw),
                5 => correlate_group::<5>(src, &rs, group, d, u, v, dw),
                6 => correlate_group::<6>(src, &rs, group, d, u, v, dw),
                7 => correlate_group::<7>(src, &rs, group, d, u, v, dw),
                8 => correlate_group::<8>(src, &rs, group, d, u, v, dw),
                9 => correlate_group::<9>(src, &rs, group, d, u, v, dw),
                10 => correlate_group::<10>(src, &rs, group, d, u, v, dw),
                11 => correlate_group::<11>(src, &rs, group, d, u, v, dw),
                _ => correlate_group::<12>(src, &rs, group, d, u, v, dw),
            }
        }
    });
}

/// Rows of a correlate call: source stride, count, and length of a delta row.
struct RowSteps {
    stride: isize,
    rows: usize,
    n: usize,
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[inline]
unsafe fn correlate_group<const G: usize>(src: *const f32, rs: &RowSteps, taps: &[Tap], d: &[f32], u: usize, v: usize, dw: &mut [f32]) {
    let mut acc = [_mm256_setzero_ps(); G];
    let mut tail = [_mm256_setzero_ps(); G];
    for r in 0..rs.rows {
        let mut p = [std::ptr::null::<f32>(); G];
        for j in 0..G {
            p[j] = src.offset(r as isize * rs.stride + taps[j].base);
        }
        let dp = d.as_ptr().add(r * rs.n);
        let mut q = u;
        while q + 8 <= v {
            let dv = _mm256_loadu_ps(dp.add(q));
            for j in 0..G {
                acc[j] = _mm256_fmadd_ps(_mm256_loadu_ps(p[j].add(q)), dv, acc[j]);
            }
            q += 8;
        }
        if q < v {
            // the last 1..7 positions, masked (masked-off lanes load as zero)
            let m = tail_mask(v - q);
            let dv = _mm256_maskload_ps(dp.add(q), m);
            for j in 0..G {
                tail[j] = _mm256_fmadd_ps(_mm256_maskload_ps(p[j].add(q), m), dv, tail[j]);
            }
        }
    }
    for j in 0..G {
        let mut lanes = [0f32; 8];
        _mm256_storeu_ps(lanes.as_mut_ptr(), _mm256_add_ps(acc[j], tail[j]));
        let total = ((lanes[0] + lanes[4]) + (lanes[1] + lanes[5])) + ((lanes[2] + lanes[6]) + (lanes[3] + lanes[7]));
        dw[taps[j].id as usize] += total;
    }
}
