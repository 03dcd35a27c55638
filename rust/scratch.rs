//! Per-thread scratch memory (im2col tiles, planar row windows): grown once, reused
//! every step, so a training step allocates nothing after the first.

use crate::real::Real;
use std::cell::RefCell;

thread_local! {
    // f64 storage is aligned for both f32 and f64.
    static SCRATCH: RefCell<Vec<f64>> = const { RefCell::new(Vec::new()) };
    static WINDOW: RefCell<Vec<f64>> = const { RefCell::new(Vec::new()) };
}

/// Run `f` with a scratch slice of `len` elements of T (contents unspecified).
/// `f` must not start parallel work that could run another `with_scratch` on this thread.
pub fn with_scratch<T: Real, R>(len: usize, f: impl FnOnce(&mut [T]) -> R) -> R {
    SCRATCH.with(|cell| lend(cell, len, f))
}

/// A second per-thread slice, for the direct kernels' window of planar input rows: `f`
/// may call `with_scratch` (but not `with_window`).
pub fn with_window<T: Real, R>(len: usize, f: impl FnOnce(&mut [T]) -> R) -> R {
    WINDOW.with(|cell| lend(cell, len, f))
}

fn lend<T: Real, R>(cell: &RefCell<Vec<f64>>, len: usize, f: impl FnOnce(&mut [T]) -> R) -> R {
    let mut buf = cell.borrow_mut();
    let words = len.saturating_mul(std::mem::size_of::<T>()).div_ceil(8);
    if buf.len() < words {
        crate::alloc::grown(&mut buf, words, || format!("per-thread scratch of {len} values"));
    }
    // SAFETY: T is f32 or f64 (sealed), any bit pattern is valid, f64 alignment covers
    // both, and `words` 8-byte words hold `len` elements of T.
    let s = unsafe { std::slice::from_raw_parts_mut(buf.as_mut_ptr() as *mut T, len) };
    f(s)
}
