//! The batch pipeline: a data set held once, as it is (uint8 stays uint8), and per step a
//! list of sample indices; gathering, converting (÷255 for bytes, then the spec's
//! per-channel normalisation) and augmenting (random translation with reflected or zero
//! padding, horizontal flip, cutout) straight into the engine's input buffer, in
//! parallel. Every random choice comes from a counter-based hash of (seed, epoch, sample),
//! so a batch is the same whatever the thread count or the batch it falls in.

use crate::error::{Error, Result};
use crate::layers::dropout::fmix;
use crate::real::{Raw, Real};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

/// Values the data set reads: its own, or memory the caller keeps alive and unchanged
/// while the data set lives (the Python bindings hold the NumPy array: no copy).
pub struct Shared<T> {
    ptr: *const T,
    len: usize,
    _own: Vec<T>,
}

// SAFETY: read-only access to plain numbers; the owner keeps the memory alive.
unsafe impl<T: Sync> Send for Shared<T> {}
// SAFETY: as for Send: shared reads only.
unsafe impl<T: Sync> Sync for Shared<T> {}

impl<T> Shared<T> {
    pub fn owned(v: Vec<T>) -> Self {
        Shared { ptr: v.as_ptr(), len: v.len(), _own: v }
    }

    /// # Safety
    /// `s` must stay alive and unchanged as long as the returned value.
    pub unsafe fn borrowed(s: &[T]) -> Self {
        Shared { ptr: s.as_ptr(), len: s.len(), _own: Vec::new() }
    }

    pub fn as_slice(&self) -> &[T] {
        // SAFETY: see the constructors.
        unsafe { std::slice::from_raw_parts(self.ptr, self.len) }
    }
}

/// A data set's values, as given.
pub enum Values {
    Bytes(Shared<u8>),
    F32(Shared<f32>),
    F64(Shared<f64>),
}

pub struct Dataset {
    pub values: Values,
    /// Shape of one sample: [X, Y, Z] or [D].
    pub shape: Vec<usize>,
    pub n: usize,
    /// Targets, (n, K) as f64 rows.
    pub targets: Vec<f64>,
    pub k: usize,
    pub fingerprint: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Flip {
    #[default]
    None,
    /// Each sample flipped with probability ½, drawn anew each epoch.
    Random,
    /// Each sample flipped on every other epoch, starting with a random half (airbench).
    Alternate,
}

#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Padding {
    #[default]
    Reflect,
    Zero,
}

/// Augmentation of training batches (docs/engine.md).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize, Default)]
pub struct Augment {
    /// Random translation by up to ± this many pixels on X and Y.
    #[serde(default)]
    pub translate: usize,
    #[serde(default)]
    pub padding: Padding,
    #[serde(default)]
    pub flip: Flip,
    /// Side of a square set to 0 at a random place (0: none).
    #[serde(default)]
    pub cutout: usize,
    #[serde(default)]
    pub seed: u64,
}

impl Augment {
    pub fn is_identity(&self) -> bool {
        self.translate == 0 && self.flip == Flip::None && self.cutout == 0
    }
}

/// Where one sample's output pixels come from, drawn for (seed, epoch, sample).
#[derive(Clone, Copy, Debug, PartialEq)]
struct Draw {
    dx: isize,
    dy: isize,
    flip: bool,
    /// Cutout square's corner (may lie partly outside).
    cut: Option<(isize, isize)>,
}

fn draw(a: &Augment, epoch: u64, sample: usize, x: usize, y: usize) -> Draw {
    let key = fmix(fmix(fmix(a.seed as u32) ^ (a.seed >> 32) as u32) ^ 0x5bd1_e995);
    let bits = |j: u32| fmix(fmix(key ^ fmix(sample as u32) ^ j.wrapping_mul(0x9e37_79b9)) ^ epoch as u32);
    let span = 2 * a.translate as u32 + 1;
    let shift = |j| (bits(j) % span) as isize - a.translate as isize;
    let flip = match a.flip {
        Flip::None => false,
        Flip::Random => bits(3) & 1 == 1,
        // one draw per sample, independent of the epoch, then alternating
        Flip::Alternate => (fmix(key ^ fmix(sample as u32) ^ 0x2545_f491) as u64 + epoch) % 2 == 1,
    };
    let cut = (a.cutout > 0).then(|| {
        let c = a.cutout as isize;
        let (bx, by) = (bits(4) % x as u32, bits(5) % y as u32);
        (bx as isize - c / 2, by as isize - c / 2)
    });
    Draw { dx: shift(1), dy: shift(2), flip, cut }
}

/// A coordinate of the translated sample, reflected back inside [0, size) or None (zero).
#[inline]
fn source(i: isize, size: usize, pad: Padding) -> Option<usize> {
    let s = size as isize;
    if (0..s).contains(&i) {
        return Some(i as usize);
    }
    match pad {
        Padding::Zero => None,
        Padding::Reflect => {
            // reflection without repeating the edge (as numpy's "reflect"), for shifts < size
            let r = if i < 0 { -i } else { 2 * (s - 1) - i };
            (0..s).contains(&r).then_some(r as usize)
        }
    }
}

/// How values become the engine's numbers: v·scale (1/255 for bytes), then
/// (v − mean[c])/std[c] per channel when a normalisation is given.
pub struct Convert<T> {
    scale: T,
    shift: Vec<T>,
    mul: Vec<T>,
}

impl<T: Real> Convert<T> {
    pub fn new(bytes: bool, norm: Option<(&[f64], &[f64])>, channels: usize) -> Self {
        let scale = if bytes { T::of(1.0 / 255.0) } else { T::one() };
        match norm {
            None => Convert { scale, shift: vec![], mul: vec![] },
            Some((m, s)) => {
                debug_assert_eq!(m.len(), channels);
                Convert { scale, shift: m.iter().map(|&v| T::of(v)).collect(), mul: s.iter().map(|&v| T::of(1.0 / v)).collect() }
            }
        }
    }

    /// out[i] from the raw values of whole samples (channels last).
    #[inline]
    pub fn row<S: Raw>(&self, src: &[S], out: &mut [T]) {
        let c = self.shift.len();
        if c == 0 {
            for (o, &v) in out.iter_mut().zip(src) {
                *o = T::of(v.raw()) * self.scale;
            }
        } else {
            for (o, s) in out.chunks_exact_mut(c).zip(src.chunks_exact(c)) {
                for ch in 0..c {
                    o[ch] = (T::of(s[ch].raw()) * self.scale - self.shift[ch]) * self.mul[ch];
                }
            }
        }
    }

    pub fn zero(&self, out: &mut [T]) {
        let c = self.shift.len();
        if c == 0 {
            out.iter_mut().for_each(|v| *v = T::zero());
        } else {
            for o in out.chunks_exact_mut(c) {
                for ch in 0..c {
                    o[ch] = (T::zero() - self.shift[ch]) * self.mul[ch];
                }
            }
        }
    }
}

/// A fast 64-bit fingerprint of bytes: fixed 1 MiB chunks hashed in parallel, combined in
/// order (the same value on every machine and thread count).
pub fn fingerprint(parts: &[&[u8]]) -> String {
    const CHUNK: usize = 1 << 20;
    let mut h: u64 = 0x6a09_e667_f3bc_c908;
    for part in parts {
        let sums: Vec<u64> = part
            .par_chunks(CHUNK)
            .map(|c| {
                // four independent lanes over 32-byte blocks, then the tail
                let mut lanes = [0x9e37_79b9_7f4a_7c15u64 ^ c.len() as u64, 1, 2, 3];
                let blocks = c.chunks_exact(32);
                let tail = blocks.remainder();
                for b in blocks {
                    for (l, w) in lanes.iter_mut().zip(b.chunks_exact(8)) {
                        *l = (*l ^ u64::from_le_bytes(w.try_into().unwrap())).wrapping_mul(0x100_0000_01b3).rotate_left(29);
                    }
                }
                let mut a = lanes.iter().fold(0u64, |h, &l| (h ^ l).wrapping_mul(0xff51_afd7_ed55_8ccd).rotate_left(27));
                for &byte in tail {
                    a = (a ^ byte as u64).wrapping_mul(0x100_0000_01b3);
                }
                a
            })
            .collect();
        h = (h ^ part.len() as u64).wrapping_mul(0xff51_afd7_ed55_8ccd);
        for s in sums {
            h = (h ^ s).wrapping_mul(0xc4ce_b9fe_1a85_ec53).rotate_left(31);
        }
    }
    format!("nf64:{h:016x}")
}

impl Dataset {
    pub fn new(values: Values, shape: Vec<usize>, targets: Vec<f64>, k: usize) -> Result<Self> {
        let d: usize = shape.iter().product();
        let len = match &values {
            Values::Bytes(v) => v.len,
            Values::F32(v) => v.len,
            Values::F64(v) => v.len,
        };
        if d == 0 || len == 0 || len % d != 0 {
            crate::bail!("x: expected a non-empty data set of samples of shape {shape:?}");
        }
        let n = len / d;
        if k == 0 || targets.len() != n * k {
            crate::bail!("targets: expected {n} rows of {k} values, got {} values", targets.len());
        }
        let finite = match &values {
            Values::Bytes(_) => true,
            Values::F32(v) => v.as_slice().par_iter().all(|x| x.is_finite()),
            Values::F64(v) => v.as_slice().par_iter().all(|x| x.is_finite()),
        };
        if !finite || !targets.par_iter().all(|x| x.is_finite()) {
            crate::bail!("x or targets: contains NaN or infinity");
        }
        let raw: &[u8] = match &values {
            Values::Bytes(v) => v.as_slice(),
            Values::F32(v) => bytes_of(v.as_slice()),
            Values::F64(v) => bytes_of(v.as_slice()),
        };
        let kind = match &values {
            Values::Bytes(_) => "u8",
            Values::F32(_) => "f32",
            Values::F64(_) => "f64",
        };
        let head = format!("{kind}{shape:?}{n}{k}");
        let fingerprint = fingerprint(&[head.as_bytes(), raw, bytes_of(&targets)]);
        Ok(Dataset { values, shape, n, targets, k, fingerprint })
    }

    pub fn sample_size(&self) -> usize {
        self.shape.iter().product()
    }

    fn check(&self, idx: &[usize]) -> Result<()> {
        if idx.is_empty() {
            crate::bail!("indices: the batch is empty");
        }
        if let Some(&bad) = idx.iter().find(|&&i| i >= self.n) {
            return Err(Error::new(format!("indices: {bad} is not a sample of this data set (0..{})", self.n)));
        }
        Ok(())
    }

    /// The samples `idx`, augmented for `epoch`, converted into `out` (n·D values).
    pub fn gather_into<T: Real>(&self, idx: &[usize], aug: Option<&Augment>, epoch: u64, conv: &Convert<T>, out: &mut [T]) -> Result<()> {
        self.check(idx)?;
        match &self.values {
            Values::Bytes(v) => self.gather_typed(v.as_slice(), idx, aug, epoch, conv, out),
            Values::F32(v) => self.gather_typed(v.as_slice(), idx, aug, epoch, conv, out),
            Values::F64(v) => self.gather_typed(v.as_slice(), idx, aug, epoch, conv, out),
        }
        Ok(())
    }

    fn gather_typed<S: Raw, T: Real>(&self, v: &[S], idx: &[usize], aug: Option<&Augment>, epoch: u64, conv: &Convert<T>, out: &mut [T]) {
        let d = self.sample_size();
        out[..idx.len() * d].par_chunks_mut(d).zip(idx.par_iter()).for_each(|(o, &i)| {
            let src = &v[i * d..(i + 1) * d];
            match aug.filter(|a| !a.is_identity() && self.shape.len() == 3) {
                None => conv.row(src, o),
                Some(a) => self.augment_sample(src, a, epoch, i, conv, o),
            }
        });
    }

    /// One sample translated, flipped and cut out, row by row (an output row of fixed x is
    /// one contiguous run of the source row, or its mirror).
    fn augment_sample<S: Raw, T: Real>(&self, src: &[S], a: &Augment, epoch: u64, sample: usize, conv: &Convert<T>, out: &mut [T]) {
        let [x, y, z] = [self.shape[0], self.shape[1], self.shape[2]];
        let dr = draw(a, epoch, sample, x, y);
        for ox in 0..x {
            let row = &mut out[ox * y * z..(ox + 1) * y * z];
            let fx = if dr.flip { x - 1 - ox } else { ox };
            let Some(sx) = source(fx as isize + dr.dx, x, a.padding) else {
                conv.zero(row);
                continue;
            };
            for oy in 0..y {
                let o = &mut row[oy * z..(oy + 1) * z];
                match source(oy as isize + dr.dy, y, a.padding) {
                    Some(sy) => conv.row(&src[(sx * y + sy) * z..(sx * y + sy + 1) * z], o),
                    None => conv.zero(o),
                }
            }
        }
        if let Some((cx, cy)) = dr.cut {
            let c = a.cutout as isize;
            for ox in cx.max(0)..(cx + c).min(x as isize) {
                for oy in cy.max(0)..(cy + c).min(y as isize) {
                    let at = (ox as usize * y + oy as usize) * z;
                    conv.zero(&mut out[at..at + z]);
                }
            }
        }
    }

    /// The targets of `idx` as rows of T.
    pub fn targets_into<T: Real>(&self, idx: &[usize], out: &mut Vec<T>) -> Result<()> {
        if !idx.is_empty() {
            self.check(idx)?;
        }
        out.clear();
        crate::alloc::grow(out, crate::alloc::size(&[idx.len(), self.k], || "targets".into())?, T::zero(), || format!("targets: a batch of {}", idx.len()))?;
        for (o, &i) in out.chunks_exact_mut(self.k).zip(idx) {
            o.iter_mut().zip(&self.targets[i * self.k..(i + 1) * self.k]).for_each(|(o, &v)| *o = T::of(v));
        }
        Ok(())
    }
}

fn bytes_of<T>(v: &[T]) -> &[u8] {
    // SAFETY: plain numbers (u8, f32, f64) viewed as their bytes.
    unsafe { std::slice::from_raw_parts(v.as_ptr() as *const u8, std::mem::size_of_val(v)) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(x: usize, y: usize, z: usize, n: usize) -> Dataset {
        let v: Vec<u8> = (0..n * x * y * z).map(|i| (i * 7 % 251) as u8).collect();
        Dataset::new(Values::Bytes(Shared::owned(v)), vec![x, y, z], vec![1.0; n], 1).unwrap()
    }

    /// Augmentation against its definition written plainly: out[x][y] = in[f(x) + dx][y + dy]
    /// with reflection, flip, cutout; the same draw wherever the sample sits in a batch.
    #[test]
    fn augmentation_follows_its_definition() {
        let (x, y, z, n) = (7, 5, 3, 6);
        let ds = set(x, y, z, n);
        for &(translate, flip, cutout, padding) in &[(2, Flip::Random, 0, Padding::Reflect), (3, Flip::Alternate, 3, Padding::Zero), (0, Flip::None, 2, Padding::Reflect)] {
            let a = Augment { translate, padding, flip, cutout, seed: 42 };
            let conv = Convert::<f64>::new(true, None, z);
            let idx = [4usize, 1, 4, 0];
            let mut out = vec![f64::NAN; idx.len() * x * y * z];
            ds.gather_into(&idx, Some(&a), 3, &conv, &mut out).unwrap();
            let Values::Bytes(raw) = &ds.values else { unreachable!() };
            let raw = raw.as_slice();
            for (b, &i) in idx.iter().enumerate() {
                let dr = draw(&a, 3, i, x, y);
                for ox in 0..x {
                    for oy in 0..y {
                        for c in 0..z {
                            let fx = if dr.flip { x - 1 - ox } else { ox } as isize + dr.dx;
                            let fy = oy as isize + dr.dy;
                            let refl = |i: isize, s: isize| if i < 0 { -i } else if i >= s { 2 * (s - 1) - i } else { i };
                            let inside = |i: isize, s: isize| (0..s).contains(&i);
                            let (sx, sy) = match padding {
                                Padding::Reflect => (refl(fx, x as isize), refl(fy, y as isize)),
                                Padding::Zero => (fx, fy),
                            };
                            let mut want = if inside(sx, x as isize) && inside(sy, y as isize) {
                                raw[i * x * y * z + (sx as usize * y + sy as usize) * z + c] as f64 / 255.0
                            } else {
                                0.0
                            };
                            if let Some((cx, cy)) = dr.cut {
                                let cc = cutout as isize;
                                if (cx..cx + cc).contains(&(ox as isize)) && (cy..cy + cc).contains(&(oy as isize)) {
                                    want = 0.0;
                                }
                            }
                            let got = out[b * x * y * z + (ox * y + oy) * z + c];
                            assert!((got - want).abs() < 1e-15, "{translate} {flip:?} sample {i} at {ox},{oy},{c}: {got} vs {want}");
                        }
                    }
                }
            }
            // the same sample in two places of a batch: the same draw
            assert_eq!(out[..x * y * z], out[2 * x * y * z..3 * x * y * z]);
        }
    }

    #[test]
    fn draws_vary_and_alternate() {
        let a = Augment { translate: 4, flip: Flip::Alternate, ..Default::default() };
        let flips: Vec<bool> = (0..4).map(|e| draw(&a, e, 9, 32, 32).flip).collect();
        assert!(flips.windows(2).all(|w| w[0] != w[1]), "{flips:?}");
        let shifts: std::collections::HashSet<(isize, isize)> = (0..200).map(|s| (draw(&a, 0, s, 32, 32).dx, draw(&a, 0, s, 32, 32).dy)).collect();
        assert!(shifts.len() > 60 && shifts.iter().all(|&(dx, dy)| dx.abs() <= 4 && dy.abs() <= 4));
        let r = Augment { flip: Flip::Random, ..a };
        let share = (0..1000).filter(|&s| draw(&r, 1, s, 8, 8).flip).count();
        assert!((400..600).contains(&share), "{share}");
    }

    #[test]
    fn normalisation_and_fingerprints() {
        let ds = set(2, 2, 3, 2);
        let conv = Convert::<f32>::new(true, Some((&[0.5, 0.25, 0.0], &[0.5, 2.0, 1.0])), 3);
        let mut out = vec![f32::NAN; 12];
        ds.gather_into(&[1], None, 0, &conv, &mut out).unwrap();
        let Values::Bytes(raw) = &ds.values else { unreachable!() };
        let raw = raw.as_slice();
        for i in 0..12 {
            let (m, s) = ([0.5f32, 0.25, 0.0][i % 3], [0.5f32, 2.0, 1.0][i % 3]);
            let want = (raw[12 + i] as f32 * (1.0f32 / 255.0) - m) * (1.0 / s);
            assert_eq!(out[i], want);
        }
        assert!(ds.gather_into(&[2], None, 0, &conv, &mut out).is_err());
        let other = set(2, 2, 3, 2);
        assert_eq!(ds.fingerprint, other.fingerprint);
        let changed = Dataset::new(Values::Bytes(Shared::owned({ let mut v = vec![0u8; 24]; v[23] = 1; v })), vec![2, 2, 3], vec![1.0; 2], 1).unwrap();
        let zeros = Dataset::new(Values::Bytes(Shared::owned(vec![0u8; 24])), vec![2, 2, 3], vec![1.0; 2], 1).unwrap();
        assert_ne!(changed.fingerprint, zeros.fingerprint);
    }
}
