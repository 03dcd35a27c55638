//! Strided convolutions as stride-1 ones over the input's phases (space-to-depth). A
//! layer of stride s whose field is q·s reads input x[s·o + k − p]; with k = s·t + a that
//! is S[o + t][a] where S[j][a] = x[s·j + a − p]: an s×s block of input positions
//! becomes one position of s²·Z channels, and the layer becomes a q×q stride-1 unpadded
//! convolution of S with the weights regrouped the same way. A 4×4 stride-2 layer is
//! then a 2×2 one, which Winograd F(4×4, 2×2) computes with 2.56× fewer multiplications
//! (winograd.rs). The gradients follow through the same maps: the weight gradient is
//! regrouped back, and ∂L/∂x[s·j + a − p] = ∂L/∂S[j][a] (each input position is in one
//! block; the padding's share is dropped).

use crate::activator::Activator;
use crate::conv::epilogue;
use crate::im2col::ConvGeom;
use crate::real::Real;
use rayon::prelude::*;

/// The stride-1 geometry over the phases of `g`, where it exists: stride > 1 on both
/// axes, each dividing the field.
pub fn geometry(g: &ConvGeom) -> Option<ConvGeom> {
    if g.sx < 2 || g.sy < 2 || g.fx % g.sx != 0 || g.fy % g.sy != 0 {
        return None;
    }
    // ConvGeom::new checked that s divides (x + 2p − f), so it divides x + 2p
    let dim = [(g.x + 2 * g.px) / g.sx, (g.y + 2 * g.py) / g.sy, g.sx * g.sy * g.z];
    ConvGeom::new(dim, [0, 0], [g.fx / g.sx, g.fy / g.sy], [1, 1], g.filters).ok()
}

/// Visit every phase position of one sample: `f(s_offset, Some(x_offset))` (offsets of
/// Z-runs in S and in x), or `f(s_offset, None)` where the position lies in the padding.
#[inline(always)]
fn each_run(g: &ConvGeom, v: &ConvGeom, mut f: impl FnMut(usize, Option<usize>)) {
    for jx in 0..v.x {
        for jy in 0..v.y {
            for a in 0..g.sx {
                for b in 0..g.sy {
                    let at = (jx * v.y + jy) * v.z + (a * g.sy + b) * g.z;
                    let (ix, iy) = ((g.sx * jx + a) as isize - g.px as isize, (g.sy * jy + b) as isize - g.py as isize);
                    if ix >= 0 && iy >= 0 && (ix as usize) < g.x && (iy as usize) < g.y {
                        f(at, Some((ix as usize * g.y + iy as usize) * g.z));
                    } else {
                        f(at, None);
                    }
                }
            }
        }
    }
}

/// S = the phases of n samples of x (zeros for the padding).
pub fn space_to_depth<T: Real>(g: &ConvGeom, v: &ConvGeom, x: &[T], n: usize, s: &mut [T]) {
    let (inp, z) = (g.in_size(), g.z);
    s[..n * v.in_size()].par_chunks_mut(v.in_size()).zip(x[..n * inp].par_chunks(inp)).for_each(|(sn, xn)| {
        each_run(g, v, |at, from| match from {
            Some(i) => sn[at..at + z].copy_from_slice(&xn[i..i + z]),
            None => sn[at..at + z].iter_mut().for_each(|e| *e = T::zero()),
        });
    });
}

/// dx = ∂L/∂x from ds = ∂L/∂S for n samples; with `mask`, dx holds the previous layer's
/// activations on entry and receives ∂L/∂x ⊙ f′ (conv::epilogue).
pub fn depth_to_space<T: Real>(g: &ConvGeom, v: &ConvGeom, ds: &[T], n: usize, dx: &mut [T], mask: Option<&Activator>) {
    let (inp, z) = (g.in_size(), g.z);
    dx[..n * inp].par_chunks_mut(inp).zip(ds[..n * v.in_size()].par_chunks(v.in_size())).for_each(|(dxn, dsn)| {
        each_run(g, v, |at, to| {
            if let Some(i) = to {
                epilogue(&dsn[at..at + z], &mut dxn[i..i + z], mask);
            }
        });
    });
}

/// Index of w[kx][ky][c][f] in the phases' weights: kx = s·tx + a, ky = s·ty + b →
/// [tx][ty][(a·sy + b)·Z + c][f]. `f(layer index, phase index)` for every weight.
#[inline(always)]
fn each_weight(g: &ConvGeom, v: &ConvGeom, mut f: impl FnMut(usize, usize)) {
    let nf = g.filters;
    for kx in 0..g.fx {
        for ky in 0..g.fy {
            let (tx, a, ty, b) = (kx / g.sx, kx % g.sx, ky / g.sy, ky % g.sy);
            for c in 0..g.z {
                let from = ((kx * g.fy + ky) * g.z + c) * nf;
                let to = ((tx * v.fy + ty) * v.z + (a * g.sy + b) * g.z + c) * nf;
                f(from, to);
            }
        }
    }
}

/// The layer's weights regrouped for the phases.
pub fn weights_to_phases<T: Real>(g: &ConvGeom, v: &ConvGeom, w: &[T], wp: &mut [T]) {
    let nf = g.filters;
    each_weight(g, v, |from, to| wp[to..to + nf].copy_from_slice(&w[from..from + nf]));
}

/// The phases' weight gradient regrouped back into the layer's.
pub fn phases_to_weights<T: Real>(g: &ConvGeom, v: &ConvGeom, dwp: &[T], dw: &mut [T]) {
    let nf = g.filters;
    each_weight(g, v, |from, to| dw[from..from + nf].copy_from_slice(&dwp[to..to + nf]));
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The maps against their definitions, and the phase convolution equal to the layer's
    /// (by im2col in f64 on both geometries) — forward, and the transposes.
    #[test]
    fn phases_are_the_strided_convolution() {
        use crate::matmul::{matmul, Mat};
        for &(dim, pad, field, stride) in &[([8, 8, 3], [1, 1], [4, 4], [2, 2]), ([9, 8, 2], [0, 1], [6, 4], [3, 2]), ([6, 10, 2], [2, 0], [2, 2], [2, 2])] {
            let filters = 3;
            let g = ConvGeom::new(dim, pad, field, stride, filters).unwrap();
            let v = geometry(&g).unwrap();
            assert_eq!((v.ox, v.oy, v.filters), (g.ox, g.oy, filters));
            let x: Vec<f64> = (0..g.in_size()).map(|i| ((i * 37 + 5) % 23) as f64 / 7.0 - 1.5).collect();
            let w: Vec<f64> = (0..g.k() * filters).map(|i| ((i * 11 + 3) % 17) as f64 / 5.0 - 1.7).collect();
            let mut s = vec![f64::NAN; v.in_size()];
            space_to_depth(&g, &v, &x, 1, &mut s);
            let mut wp = vec![f64::NAN; v.k() * filters];
            weights_to_phases(&g, &v, &w, &mut wp);
            let conv = |geom: &ConvGeom, input: &[f64], weights: &[f64]| {
                let mut col = vec![0.0; geom.out_positions() * geom.k()];
                geom.im2col(input, 0, geom.out_positions(), &mut col);
                let mut out = vec![0.0; geom.out_size()];
                matmul(Mat::new(&col, geom.out_positions(), geom.k()), Mat::new(weights, geom.k(), filters), &mut out, false, 1);
                out
            };
            let (want, got) = (conv(&g, &x, &w), conv(&v, &s, &wp));
            for (a, b) in want.iter().zip(&got) {
                assert!((a - b).abs() < 1e-12, "{dim:?} {field:?} {stride:?}: {a} against {b}");
            }
            // the maps back are the adjoints: <S(x), ds> = <x, D(ds)>, <P(w), dp> = <w, P⁻¹(dp)>
            let ds: Vec<f64> = (0..v.in_size()).map(|i| ((i * 13) % 7) as f64 - 3.0).collect();
            let mut dx = vec![f64::NAN; g.in_size()];
            depth_to_space(&g, &v, &ds, 1, &mut dx, None);
            let lhs: f64 = s.iter().zip(&ds).map(|(a, b)| a * b).sum();
            let rhs: f64 = x.iter().zip(&dx).map(|(a, b)| a * b).sum();
            assert!((lhs - rhs).abs() < 1e-9, "{lhs} against {rhs}");
            let mut back = vec![f64::NAN; w.len()];
            phases_to_weights(&g, &v, &wp, &mut back);
            assert_eq!(back, w);
        }
    }
}
