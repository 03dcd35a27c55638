//! Convolution layer: im2col × gemm over tiles of output positions, so a tile of the
//! column matrix stays in cache whatever the image size; the activation is applied to a
//! tile while it is still in cache. 1×1 stride-1 convolutions use the input as it is.

use crate::activator::Activator;
use crate::im2col::ConvGeom;
use crate::matmul::{matmul, Mat};
use crate::real::Real;
use crate::scratch::with_scratch;
use rayon::prelude::*;

/// Target elements of one column tile (128 KiB of f32): fits L2 beside its weights.
const TILE_ELEMS: usize = 1 << 15;
/// Weight-gradient partial sums: a fixed number of groups summed in a fixed order, so the
/// result does not depend on thread scheduling (reproducible training).
const MAX_GROUPS: usize = 16;

#[derive(Clone, Debug)]
pub struct Conv {
    pub g: ConvGeom,
    pub act: Activator,
}

impl Conv {
    /// Output positions per tile.
    fn tile_rows(&self) -> usize {
        (TILE_ELEMS / self.g.k()).max(8).min(self.g.out_positions().max(1))
    }

    /// s = conv(input, w), a = act(s), for `n` samples.
    pub fn forward<T: Real>(&self, input: &[T], w: &[T], s: &mut [T], a: &mut [T], n: usize) {
        let g = &self.g;
        let (k, f, rows) = (g.k(), g.filters, self.tile_rows());
        let (out, inp) = (g.out_size(), g.in_size());
        s[..n * out]
            .par_chunks_mut(out)
            .zip(a[..n * out].par_chunks_mut(out))
            .enumerate()
            .for_each(|(ni, (s_n, a_n))| {
                let x = &input[ni * inp..(ni + 1) * inp];
                s_n.par_chunks_mut(rows * f).zip(a_n.par_chunks_mut(rows * f)).enumerate().for_each(|(ti, (st, at))| {
                    let (p0, r) = (ti * rows, st.len() / f);
                    let wm = Mat::new(w, k, f);
                    if g.pointwise() {
                        matmul(Mat::new(&x[p0 * k..(p0 + r) * k], r, k), wm, st, false, 1);
                    } else {
                        with_scratch(r * k, |col: &mut [T]| {
                            g.im2col(x, p0, p0 + r, col);
                            matmul(Mat::new(col, r, k), wm, st, false, 1);
                        });
                    }
                    self.act.forward(st, at);
                });
            });
    }

    /// dw = ∂L/∂w given delta = ∂L/∂s for `n` samples.
    pub fn weight_grad<T: Real>(&self, input: &[T], delta: &[T], n: usize, dw: &mut [T], partials: &mut Vec<T>) {
        let g = &self.g;
        let (k, f, rows) = (g.k(), g.filters, self.tile_rows());
        let (out_p, inp) = (g.out_positions(), g.in_size());
        let tiles = out_p.div_ceil(rows);
        let jobs = n * tiles;
        let groups = jobs.min(MAX_GROUPS);
        let kf = k * f;
        if partials.len() < groups * kf {
            partials.resize(groups * kf, T::zero());
        }
        // Weight gradient: Σ over tiles of colᵀ · delta_tile, tiles split into fixed groups.
        partials[..groups * kf].par_chunks_mut(kf).enumerate().for_each(|(gi, part)| {
            part.iter_mut().for_each(|v| *v = T::zero());
            for j in gi * jobs / groups..(gi + 1) * jobs / groups {
                let (ni, ti) = (j / tiles, j % tiles);
                let p0 = ti * rows;
                let r = rows.min(out_p - p0);
                let x = &input[ni * inp..(ni + 1) * inp];
                let d = Mat::new(&delta[(ni * out_p + p0) * f..(ni * out_p + p0 + r) * f], r, f);
                if g.pointwise() {
                    matmul(Mat::new(&x[p0 * k..(p0 + r) * k], r, k).t(), d, part, true, 1);
                } else {
                    with_scratch(r * k, |col: &mut [T]| {
                        g.im2col(x, p0, p0 + r, col);
                        matmul(Mat::new(col, r, k).t(), d, part, true, 1);
                    });
                }
            }
        });
        let parts = &partials[..groups * kf];
        dw[..kf].par_chunks_mut(1024).enumerate().for_each(|(ci, chunk)| {
            for (i, v) in chunk.iter_mut().enumerate() {
                let e = ci * 1024 + i;
                let mut acc = T::zero();
                for gi in 0..groups {
                    acc += parts[gi * kf + e];
                }
                *v = acc;
            }
        });
    }

    /// dinput = ∂L/∂input: dcol = delta · wᵀ, scattered back by col2im; one task per sample
    /// because the patches of one sample overlap.
    pub fn input_grad<T: Real>(&self, w: &[T], delta: &[T], n: usize, dinput: &mut [T]) {
        let g = &self.g;
        let (k, f, rows) = (g.k(), g.filters, self.tile_rows());
        let (out_p, inp) = (g.out_positions(), g.in_size());
        let tiles = out_p.div_ceil(rows);
        {
            let wt = Mat::new(w, k, f).t();
            dinput[..n * inp].par_chunks_mut(inp).enumerate().for_each(|(ni, dx)| {
                if !g.pointwise() {
                    dx.iter_mut().for_each(|v| *v = T::zero());
                }
                for ti in 0..tiles {
                    let p0 = ti * rows;
                    let r = rows.min(out_p - p0);
                    let d = Mat::new(&delta[(ni * out_p + p0) * f..(ni * out_p + p0 + r) * f], r, f);
                    if g.pointwise() {
                        matmul(d, wt, &mut dx[p0 * k..(p0 + r) * k], false, 1);
                    } else {
                        with_scratch(r * k, |dcol: &mut [T]| {
                            matmul(d, wt, dcol, false, 1);
                            g.col2im_add(dcol, p0, p0 + r, dx);
                        });
                    }
                }
            });
        }
    }
}
