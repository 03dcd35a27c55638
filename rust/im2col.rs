//! Convolution geometry and the im2col / col2im index maps between one sample
//! `[X][Y][Z]` (channels last) and a column tile `[rows][K]`, K = fx·fy·Z,
//! k = (kx·fy + ky)·Z + c. Zero padding is virtual: reads outside the input give 0.

use crate::error::Result;
use crate::real::Real;
use crate::simd::simd_fn;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConvGeom {
    /// Input width, height, depth (unpadded).
    pub x: usize,
    pub y: usize,
    pub z: usize,
    pub px: usize,
    pub py: usize,
    pub fx: usize,
    pub fy: usize,
    pub sx: usize,
    pub sy: usize,
    pub filters: usize,
    /// Output width and height.
    pub ox: usize,
    pub oy: usize,
}

impl ConvGeom {
    pub fn new(dim_in: [usize; 3], padding: [usize; 2], field: [usize; 2], stride: [usize; 2], filters: usize) -> Result<Self> {
        let [x, y, z] = dim_in;
        let [px, py] = padding;
        let [fx, fy] = field;
        let [sx, sy] = stride;
        if x == 0 || y == 0 || z == 0 || fx == 0 || fy == 0 || sx == 0 || sy == 0 || filters == 0 {
            crate::bail!("convolution: dimensions, field, stride and filters must be positive (dim_in {dim_in:?}, field {field:?}, stride {stride:?}, filters {filters})");
        }
        let (wx, wy) = (x + 2 * px, y + 2 * py);
        if fx > wx || fy > wy {
            crate::bail!("convolution: field {fx}*{fy} is larger than the padded input {wx}*{wy}");
        }
        if (wx - fx) % sx != 0 || (wy - fy) % sy != 0 {
            crate::bail!("convolution: stride {sx}*{sy} does not divide the padded input {wx}*{wy} minus the field {fx}*{fy}");
        }
        Ok(ConvGeom { x, y, z, px, py, fx, fy, sx, sy, filters, ox: (wx - fx) / sx + 1, oy: (wy - fy) / sy + 1 })
    }

    /// Columns of the im2col matrix = rows of the weight matrix.
    pub fn k(&self) -> usize {
        self.fx * self.fy * self.z
    }
    pub fn in_size(&self) -> usize {
        self.x * self.y * self.z
    }
    pub fn out_positions(&self) -> usize {
        self.ox * self.oy
    }
    pub fn out_size(&self) -> usize {
        self.out_positions() * self.filters
    }
    /// A 1×1, stride-1, unpadded convolution: the sample itself is the column matrix.
    pub fn pointwise(&self) -> bool {
        self.fx == 1 && self.fy == 1 && self.sx == 1 && self.sy == 1 && self.px == 0 && self.py == 0
    }

    /// Visit, for each output position p in `p0..p1` and each kx, the contiguous run of the
    /// patch row that lies inside the input: `f(row, col_offset, input_offset, len)`.
    /// Elements of the row not visited lie in the padding.
    #[inline(always)]
    fn runs(&self, p0: usize, p1: usize, mut f: impl FnMut(usize, usize, usize, usize)) {
        let (z, fy) = (self.z, self.fy);
        for p in p0..p1 {
            let (ox, oy) = (p / self.oy, p % self.oy);
            let ix0 = (ox * self.sx) as isize - self.px as isize;
            let iy0 = (oy * self.sy) as isize - self.py as isize;
            // ky range whose iy = iy0 + ky lies in [0, y).
            let ky_lo = (-iy0).max(0) as usize;
            let ky_hi = ((self.y as isize - iy0).min(fy as isize)).max(0) as usize;
            if ky_lo >= ky_hi {
                continue;
            }
            for kx in 0..self.fx {
                let ix = ix0 + kx as isize;
                if ix < 0 || ix >= self.x as isize {
                    continue;
                }
                let iy = (iy0 + ky_lo as isize) as usize;
                f(p - p0, (kx * fy + ky_lo) * z, (ix as usize * self.y + iy) * z, (ky_hi - ky_lo) * z);
            }
        }
    }

    /// Does the patch of output position p lie wholly inside the (unpadded) input?
    #[inline]
    fn interior(&self, p: usize) -> bool {
        let (ox, oy) = (p / self.oy, p % self.oy);
        let (x0, y0) = (ox * self.sx, oy * self.sy);
        x0 >= self.px && y0 >= self.py && x0 + self.fx <= self.x + self.px && y0 + self.fy <= self.y + self.py
    }

    /// col[r][k] for output positions p0..p1 of one sample.
    pub fn im2col<T: Real>(&self, input: &[T], p0: usize, p1: usize, col: &mut [T]) {
        let k = self.k();
        let col = &mut col[..(p1 - p0) * k];
        // Only rows whose patch reaches into the padding need zeros.
        if self.px > 0 || self.py > 0 {
            for p in p0..p1 {
                if !self.interior(p) {
                    col[(p - p0) * k..(p - p0 + 1) * k].iter_mut().for_each(|v| *v = T::zero());
                }
            }
        }
        self.runs(p0, p1, |r, c, i, len| {
            col[r * k + c..r * k + c + len].copy_from_slice(&input[i..i + len]);
        });
    }

    /// input_grad += col2im(dcol) for output positions p0..p1 of one sample.
    pub fn col2im_add<T: Real>(&self, dcol: &[T], p0: usize, p1: usize, input_grad: &mut [T]) {
        col2im_add_runs(self, dcol, p0, p1, input_grad);
    }
}

simd_fn! {
    fn col2im_add_runs<T: Real>(g: &ConvGeom, dcol: &[T], p0: usize, p1: usize, input_grad: &mut [T]) {
        let k = g.k();
        g.runs(p0, p1, |r, c, i, len| {
            for (v, &d) in input_grad[i..i + len].iter_mut().zip(&dcol[r * k + c..r * k + c + len]) {
                *v += d;
            }
        });
    }
}

simd_fn! {
    /// acc += x, element by element.
    pub fn add_into<T: Real>(acc: &mut [T], x: &[T]) {
        for (a, &v) in acc.iter_mut().zip(x) {
            *a += v;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Straight from the definition: col[p][(kx·fy+ky)·Z+c] = in[ox·sx+kx−px, oy·sy+ky−py, c] or 0.
    fn reference(g: &ConvGeom, input: &[f64]) -> Vec<f64> {
        let mut col = vec![0.0; g.out_positions() * g.k()];
        for ox in 0..g.ox {
            for oy in 0..g.oy {
                for kx in 0..g.fx {
                    for ky in 0..g.fy {
                        for c in 0..g.z {
                            let ix = (ox * g.sx + kx) as isize - g.px as isize;
                            let iy = (oy * g.sy + ky) as isize - g.py as isize;
                            let v = if ix >= 0 && iy >= 0 && (ix as usize) < g.x && (iy as usize) < g.y {
                                input[(ix as usize * g.y + iy as usize) * g.z + c]
                            } else {
                                0.0
                            };
                            col[(ox * g.oy + oy) * g.k() + (kx * g.fy + ky) * g.z + c] = v;
                        }
                    }
                }
            }
        }
        col
    }

    #[test]
    fn im2col_matches_definition_and_col2im_is_its_adjoint() {
        for &(dim, pad, field, stride) in &[
            ([7, 5, 3], [1, 2], [3, 3], [2, 1]),
            ([6, 6, 2], [1, 1], [4, 4], [2, 2]),
            ([5, 9, 1], [0, 0], [1, 1], [1, 1]),
            ([4, 3, 4], [2, 0], [5, 2], [1, 1]),
            ([3, 3, 2], [3, 3], [2, 2], [1, 1]),
        ] {
            let g = ConvGeom::new(dim, pad, field, stride, 2).unwrap();
            let input: Vec<f64> = (0..g.in_size()).map(|i| ((i * 37) % 11) as f64 - 4.5).collect();
            let want = reference(&g, &input);
            let n = g.out_positions();
            // in two tiles, output poisoned first
            let mut col = vec![f64::NAN; n * g.k()];
            let mid = n / 2;
            g.im2col(&input, 0, mid, &mut col[..mid * g.k()]);
            g.im2col(&input, mid, n, &mut col[mid * g.k()..]);
            assert_eq!(col, want, "{dim:?} {pad:?} {field:?} {stride:?}");
            // adjoint: <im2col(x), d> == <x, col2im(d)>
            let d: Vec<f64> = (0..col.len()).map(|i| ((i * 13) % 7) as f64 - 3.0).collect();
            let mut back = vec![0.0; g.in_size()];
            g.col2im_add(&d[..mid * g.k()], 0, mid, &mut back);
            g.col2im_add(&d[mid * g.k()..], mid, n, &mut back);
            let lhs: f64 = col.iter().zip(&d).map(|(a, b)| a * b).sum();
            let rhs: f64 = input.iter().zip(&back).map(|(a, b)| a * b).sum();
            assert!((lhs - rhs).abs() < 1e-9);
        }
    }

    #[test]
    fn bad_geometry_is_refused() {
        assert!(ConvGeom::new([5, 5, 1], [0, 0], [2, 2], [2, 2], 1).is_err());
        assert!(ConvGeom::new([3, 3, 1], [0, 0], [4, 4], [1, 1], 1).is_err());
        let g = ConvGeom::new([400, 400, 3], [1, 1], [4, 4], [2, 2], 1).unwrap();
        assert_eq!((g.ox, g.oy), (200, 200));
    }
}
