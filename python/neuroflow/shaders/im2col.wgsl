// Not used by the engine (its convolutions are implicit GEMMs, gemm.wgsl): kept for tests
// and debugging.
// im2col: col[r, k] for r = (n, ox, oy) the output positions of n samples (n slowest) and
// k = (kx·fy + ky)·Z + c, so col · W[K, F] is the convolution's pre-activation.
//   col[r, k] = in[n, ox·sx + kx − px, oy·sy + ky − py, c], 0 outside the input
// (virtual zero padding: nothing padded is ever stored). One invocation per element,
// walked in a grid-stride loop so any size fits the 65,535-workgroup dispatch limit.

struct Params {
    n: u32, x: u32, y: u32, z: u32,
    fx: u32, fy: u32, sx: u32, sy: u32,
    px: u32, py: u32, ox: u32, oy: u32,
    src_off: u32,  // element offset of the first sample in src
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> src: array<f32>;       // [n, X, Y, Z]
@group(0) @binding(2) var<storage, read_write> col: array<f32>; // [n·OX·OY, fx·fy·Z]

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>,
        @builtin(num_workgroups) nwg: vec3<u32>) {
    let kdim = p.fx * p.fy * p.z;
    let total = p.n * p.ox * p.oy * kdim;
    for (var e = gid.x; e < total; e += nwg.x * 256u) {
        let r = e / kdim;
        let k = e % kdim;
        let c = k % p.z;
        let kxy = k / p.z;
        let kx = kxy / p.fy;
        let ky = kxy % p.fy;
        let oy = r % p.oy;
        let nox = r / p.oy;
        let ox = nox % p.ox;
        let n = nox / p.ox;
        let x = i32(ox * p.sx + kx) - i32(p.px);
        let y = i32(oy * p.sy + ky) - i32(p.py);
        var v = 0.0;
        if (x >= 0 && y >= 0 && u32(x) < p.x && u32(y) < p.y) {
            v = src[p.src_off + ((n * p.x + u32(x)) * p.y + u32(y)) * p.z + c];
        }
        col[e] = v;
    }
}
