//! Pooling: max and average over windows (channels last, so every window step is a run
//! of Z contiguous channels), and the global average over all positions.

use super::{reserve, Ctx, Layer, Tensors, XDx};
use crate::real::Real;
use crate::simd::simd_fn;
use crate::spec::{Kind, LayerSpec};
use rayon::prelude::*;

#[derive(Clone, Copy, Debug)]
struct Geom {
    x: usize,
    y: usize,
    z: usize,
    fx: usize,
    fy: usize,
    sx: usize,
    sy: usize,
    px: usize,
    py: usize,
    ox: usize,
    oy: usize,
}

impl Geom {
    /// The window of output (ox, oy): its input rows and columns inside the input.
    #[inline]
    fn window(&self, ox: usize, oy: usize) -> (std::ops::Range<usize>, std::ops::Range<usize>) {
        let x0 = (ox * self.sx) as isize - self.px as isize;
        let y0 = (oy * self.sy) as isize - self.py as isize;
        let clip = |lo: isize, f: usize, size: usize| lo.max(0) as usize..((lo + f as isize).min(size as isize)).max(0) as usize;
        (clip(x0, self.fx, self.x), clip(y0, self.fy, self.y))
    }
    /// Do the windows tile the input, each input element in one window at most (stride =
    /// field, no padding)?
    fn tiles(&self) -> bool {
        self.sx == self.fx && self.sy == self.fy && self.px == 0 && self.py == 0
    }
    fn in_size(&self) -> usize {
        self.x * self.y * self.z
    }
    fn out_size(&self) -> usize {
        self.ox * self.oy * self.z
    }
}

pub struct Pool<T> {
    spec: LayerSpec,
    g: Geom,
    max: bool,
    /// Max pooling in train mode: per output, the sample-relative index of the input
    /// element that won (its gradient goes there).
    argmax: Vec<u32>,
    _t: std::marker::PhantomData<T>,
}

impl<T: Real> Pool<T> {
    pub fn new(spec: &LayerSpec) -> Self {
        let (Kind::Maxpool { field, stride, padding } | Kind::Avgpool { field, stride, padding }) = spec.kind else { unreachable!() };
        let (d, o) = (&spec.dim_in, &spec.dim_out);
        let g = Geom {
            x: d[0],
            y: d[1],
            z: d[2],
            fx: field[0],
            fy: field[1],
            sx: stride[0],
            sy: stride[1],
            px: padding[0],
            py: padding[1],
            ox: o[0],
            oy: o[1],
        };
        Pool { spec: spec.clone(), g, max: matches!(spec.kind, Kind::Maxpool { .. }), argmax: Vec::new(), _t: std::marker::PhantomData }
    }

    /// One sample's max pooling; `arg` (train mode) receives the winners.
    fn max_sample(g: &Geom, x: &[T], y: &mut [T], arg: Option<&mut [u32]>) {
        match arg {
            Some(a) => max_with_arg(g, x, y, a),
            None => max_only(g, x, y),
        }
    }

    /// One sample's average pooling (padding counts as zeros).
    fn avg_sample(g: &Geom, x: &[T], y: &mut [T]) {
        let (z, area) = (g.z, T::of(1.0 / (g.fx * g.fy) as f64));
        for ox in 0..g.ox {
            for oy in 0..g.oy {
                let o = (ox * g.oy + oy) * z;
                let (xs, ys) = g.window(ox, oy);
                let out = &mut y[o..o + z];
                out.iter_mut().for_each(|v| *v = T::zero());
                for ix in xs {
                    for iy in ys.clone() {
                        let i = (ix * g.y + iy) * z;
                        for (v, &xi) in out.iter_mut().zip(&x[i..i + z]) {
                            *v += xi;
                        }
                    }
                }
                out.iter_mut().for_each(|v| *v *= area);
            }
        }
    }
}

impl<T: Real> Layer<T> for Pool<T> {
    fn spec(&self) -> &LayerSpec {
        &self.spec
    }

    fn reserve(&mut self, n: usize, what: &str) -> crate::Result<()> {
        if self.max {
            reserve(&mut self.argmax, n, self.g.out_size(), what, "argmax")?;
        }
        Ok(())
    }

    fn release(&mut self) {
        self.argmax = Vec::new();
    }

    fn forward(&mut self, cx: &Ctx, x: &[T], y: &mut [T], _t: &mut Tensors<'_, T>) {
        let g = self.g;
        let (inp, out, n) = (g.in_size(), g.out_size(), cx.n);
        let xs = x[..n * inp].par_chunks(inp);
        if !self.max {
            return y[..n * out].par_chunks_mut(out).zip(xs).for_each(|(y, x)| Self::avg_sample(&g, x, y));
        }
        if cx.mode.train() {
            let arg = &mut self.argmax[..n * out];
            y[..n * out].par_chunks_mut(out).zip(xs).zip(arg.par_chunks_mut(out)).for_each(|((y, x), a)| Self::max_sample(&g, x, y, Some(a)));
        } else {
            y[..n * out].par_chunks_mut(out).zip(xs).for_each(|(y, x)| Self::max_sample(&g, x, y, None));
        }
    }

    fn backward(&mut self, cx: &Ctx, io: XDx<'_, T>, dy: &mut [T], _y: Option<&[T]>, _folded: bool, _t: &mut Tensors<'_, T>) {
        let XDx::Separate(_, dx) = io else { unreachable!("pooling writes its input gradient apart") };
        let Some(dx) = dx else { return };
        let g = self.g;
        let (inp, out, n) = (g.in_size(), g.out_size(), cx.n);
        let dys = dy[..n * out].par_chunks(out);
        if self.max && g.tiles() {
            let arg = &self.argmax[..n * out];
            dx[..n * inp].par_chunks_mut(inp).zip(dys).zip(arg.par_chunks(out)).for_each(|((dx, dy), a)| max_grad_tiled(&g, dy, a, dx));
            return;
        }
        if self.max {
            let arg = &self.argmax[..n * out];
            dx[..n * inp].par_chunks_mut(inp).zip(dys).zip(arg.par_chunks(out)).for_each(|((dx, dy), a)| {
                dx.iter_mut().for_each(|v| *v = T::zero());
                for (&i, &d) in a.iter().zip(dy) {
                    dx[i as usize] += d;
                }
            });
            return;
        }
        let (z, area) = (g.z, T::of(1.0 / (g.fx * g.fy) as f64));
        dx[..n * inp].par_chunks_mut(inp).zip(dys).for_each(|(dx, dy)| {
            dx.iter_mut().for_each(|v| *v = T::zero());
            for ox in 0..g.ox {
                for oy in 0..g.oy {
                    let o = (ox * g.oy + oy) * z;
                    let (xs, ys) = g.window(ox, oy);
                    for ix in xs {
                        for iy in ys.clone() {
                            let i = (ix * g.y + iy) * z;
                            for (d, &v) in dx[i..i + z].iter_mut().zip(&dy[o..o + z]) {
                                *d += v * area;
                            }
                        }
                    }
                }
            }
        });
    }
}

// Window order: x outer, y inner; strictly greater wins, so ties go to the first. Written
// as selects over a run of channels so that the loops vectorise (AVX2 where the CPU has it).
simd_fn! {
    fn max_with_arg<T: Real>(g: &Geom, x: &[T], y: &mut [T], arg: &mut [u32]) {
        let z = g.z;
        for ox in 0..g.ox {
            for oy in 0..g.oy {
                let o = (ox * g.oy + oy) * z;
                let (xs, ys) = g.window(ox, oy);
                let (out, win) = (&mut y[o..o + z], &mut arg[o..o + z]);
                out.iter_mut().for_each(|v| *v = T::neg_infinity());
                for ix in xs {
                    for iy in ys.clone() {
                        let i = (ix * g.y + iy) * z;
                        for (c, ((b, w), &v)) in out.iter_mut().zip(win.iter_mut()).zip(&x[i..i + z]).enumerate() {
                            let gt = v > *b;
                            *b = if gt { v } else { *b };
                            *w = if gt { (i + c) as u32 } else { *w };
                        }
                    }
                }
            }
        }
    }
}

simd_fn! {
    /// One sample's input gradient where the windows tile the input (`Geom::tiles`): each
    /// input element written once, in order, with its window's gradient where it won and
    /// zero elsewhere (and past the last window). The scatter below zeroes the whole
    /// gradient first and then adds to it: 3–4 % of a speed-net step in the memset alone.
    /// `0 + v` keeps the scatter's results to the bit (a −0 gradient becomes +0 there too).
    fn max_grad_tiled<T: Real>(g: &Geom, dy: &[T], arg: &[u32], dx: &mut [T]) {
        let z = g.z;
        for ix in 0..g.x {
            let ox = ix / g.fx;
            for iy in 0..g.y {
                let (oy, i) = (iy / g.fy, (ix * g.y + iy) * z);
                let d = &mut dx[i..i + z];
                if ox >= g.ox || oy >= g.oy {
                    d.iter_mut().for_each(|v| *v = T::zero());
                    continue;
                }
                let o = (ox * g.oy + oy) * z;
                for (c, (d, (&a, &v))) in d.iter_mut().zip(arg[o..o + z].iter().zip(&dy[o..o + z])).enumerate() {
                    *d = if a == (i + c) as u32 { T::zero() + v } else { T::zero() };
                }
            }
        }
    }
}

simd_fn! {
    fn max_only<T: Real>(g: &Geom, x: &[T], y: &mut [T]) {
        let z = g.z;
        for ox in 0..g.ox {
            for oy in 0..g.oy {
                let o = (ox * g.oy + oy) * z;
                let (xs, ys) = g.window(ox, oy);
                let out = &mut y[o..o + z];
                out.iter_mut().for_each(|v| *v = T::neg_infinity());
                for ix in xs {
                    for iy in ys.clone() {
                        let i = (ix * g.y + iy) * z;
                        for (b, &v) in out.iter_mut().zip(&x[i..i + z]) {
                            *b = if v > *b { v } else { *b };
                        }
                    }
                }
            }
        }
    }
}

pub struct GlobalAvgPool<T> {
    spec: LayerSpec,
    _t: std::marker::PhantomData<T>,
}

impl<T: Real> GlobalAvgPool<T> {
    pub fn new(spec: &LayerSpec) -> Self {
        GlobalAvgPool { spec: spec.clone(), _t: std::marker::PhantomData }
    }
}

impl<T: Real> Layer<T> for GlobalAvgPool<T> {
    fn spec(&self) -> &LayerSpec {
        &self.spec
    }

    fn reserve(&mut self, _n: usize, _what: &str) -> crate::Result<()> {
        Ok(())
    }

    fn forward(&mut self, cx: &Ctx, x: &[T], y: &mut [T], _t: &mut Tensors<'_, T>) {
        let (inp, z) = (self.spec.in_size(), self.spec.out_size());
        let inv = T::of(z as f64 / inp as f64);
        y[..cx.n * z].par_chunks_mut(z).zip(x[..cx.n * inp].par_chunks(inp)).for_each(|(y, x)| {
            y.iter_mut().for_each(|v| *v = T::zero());
            for row in x.chunks_exact(z) {
                for (v, &xi) in y.iter_mut().zip(row) {
                    *v += xi;
                }
            }
            y.iter_mut().for_each(|v| *v *= inv);
        });
    }

    fn backward(&mut self, cx: &Ctx, io: XDx<'_, T>, dy: &mut [T], _y: Option<&[T]>, _folded: bool, _t: &mut Tensors<'_, T>) {
        let XDx::Separate(_, Some(dx)) = io else { return };
        let (inp, z) = (self.spec.in_size(), self.spec.out_size());
        let inv = T::of(z as f64 / inp as f64);
        dx[..cx.n * inp].par_chunks_mut(inp).zip(dy[..cx.n * z].par_chunks(z)).for_each(|(dx, dy)| {
            for row in dx.chunks_exact_mut(z) {
                for (d, &g) in row.iter_mut().zip(dy) {
                    *d = g * inv;
                }
            }
        });
    }
}
