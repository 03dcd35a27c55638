//! Dropout (train mode only): y = x · keep / (1 − rate), with keep drawn by a counter-based
//! hash of (seed, step, layer, element index), so every engine and every thread count
//! draws the same masks and the backward pass redraws them instead of storing them.

use super::{Ctx, Layer, Slot, Tensors, XDx};
use crate::real::Real;
use crate::spec::{Kind, LayerSpec};
use rayon::prelude::*;

/// murmur3's 32-bit finaliser.
#[inline(always)]
pub fn fmix(mut h: u32) -> u32 {
    h ^= h >> 16;
    h = h.wrapping_mul(0x85eb_ca6b);
    h ^= h >> 13;
    h = h.wrapping_mul(0xc2b2_ae35);
    h ^ (h >> 16)
}

/// The key of one layer's masks in one step (docs/engine.md).
pub fn key(seed: u64, step: u64, uid: usize) -> u32 {
    fmix(fmix(fmix(fmix(seed as u32) ^ (seed >> 32) as u32) ^ step as u32) ^ uid as u32)
}

/// The random bits of element `i` of the batch.
#[inline(always)]
pub fn bits(key: u32, i: usize) -> u32 {
    fmix(key ^ fmix(i as u32))
}

pub struct Dropout<T> {
    spec: LayerSpec,
    rate: f64,
    uid: usize,
    _t: std::marker::PhantomData<T>,
}

const CHUNK: usize = 1 << 14;

impl<T: Real> Dropout<T> {
    pub fn new(spec: &LayerSpec, slot: Slot) -> Self {
        let Kind::Dropout { rate } = spec.kind else { unreachable!() };
        Dropout { spec: spec.clone(), rate, uid: slot.uid, _t: std::marker::PhantomData }
    }

    /// out = v · keep/(1 − rate) over the batch.
    fn apply(&self, cx: &Ctx, v: &[T], out: &mut [T]) {
        let key = key(cx.seed, cx.step, self.uid);
        let threshold = (self.rate * 4_294_967_296.0).floor() as u64;
        let scale = T::of(1.0 / (1.0 - self.rate));
        let first = cx.offset * self.spec.in_size();
        out.par_chunks_mut(CHUNK).zip(v.par_chunks(CHUNK)).enumerate().for_each(|(ci, (o, v))| {
            for (j, (o, &v)) in o.iter_mut().zip(v).enumerate() {
                let keep = bits(key, first + ci * CHUNK + j) as u64 >= threshold;
                *o = if keep { v * scale } else { T::zero() };
            }
        });
    }
}

impl<T: Real> Layer<T> for Dropout<T> {
    fn spec(&self) -> &LayerSpec {
        &self.spec
    }

    fn reserve(&mut self, _n: usize, _what: &str) -> crate::Result<()> {
        Ok(())
    }

    fn forward(&mut self, cx: &Ctx, x: &[T], y: &mut [T], _t: &mut Tensors<'_, T>) {
        let len = cx.n * self.spec.in_size();
        if cx.mode.train() && self.rate > 0.0 {
            self.apply(cx, &x[..len], &mut y[..len]);
        } else {
            y[..len].copy_from_slice(&x[..len]);
        }
    }

    fn backward(&mut self, cx: &Ctx, io: XDx<'_, T>, dy: &mut [T], _y: Option<&[T]>, _folded: bool, _t: &mut Tensors<'_, T>) {
        let XDx::Separate(_, Some(dx)) = io else { return };
        let len = cx.n * self.spec.in_size();
        self.apply(cx, &dy[..len], &mut dx[..len]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fmix_is_murmur3s_finaliser() {
        // values of the reference implementation
        assert_eq!(fmix(0), 0);
        assert_eq!(fmix(1), 0x514e_28b7);
        assert_eq!(fmix(0xdead_beef), 0x0de5_c6a9);
    }

    #[test]
    fn masks_keep_about_one_minus_rate() {
        let k = key(7, 3, 2);
        let kept = (0..100_000).filter(|&i| bits(k, i) as u64 >= (0.3 * 4_294_967_296.0) as u64).count();
        assert!((kept as f64 / 100_000.0 - 0.7).abs() < 0.01, "{kept}");
        assert_ne!(key(7, 3, 2), key(7, 4, 2));
        assert_ne!(key(7, 3, 2), key(8, 3, 2));
    }
}
