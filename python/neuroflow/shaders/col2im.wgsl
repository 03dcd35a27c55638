// Not used by the engine (its convolutions are implicit GEMMs, gemm.wgsl): kept for tests
// and debugging.
// col2im: the input gradient of a convolution from the gradient of its im2col matrix,
//   dx[n, x, y, c] = Σ dcol[(n, ox, oy), (kx·fy + ky)·Z + c] over ox·sx + kx − px = x,
//                                                          oy·sy + ky − py = y.
// The scatter-add of im2col's transpose is written as a gather (one invocation per input
// element sums the col entries that read it), so no atomics and a fixed summation order.

struct Params {
    n: u32, x: u32, y: u32, z: u32,
    fx: u32, fy: u32, sx: u32, sy: u32,
    px: u32, py: u32, ox: u32, oy: u32,
    dx_off: u32,  // element offset of the first sample in dx
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> dcol: array<f32>;      // [n·OX·OY, fx·fy·Z]
@group(0) @binding(2) var<storage, read_write> dx: array<f32>;  // [n, X, Y, Z]

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>,
        @builtin(num_workgroups) nwg: vec3<u32>) {
    let kdim = p.fx * p.fy * p.z;
    let total = p.n * p.x * p.y * p.z;
    for (var e = gid.x; e < total; e += nwg.x * 256u) {
        let c = e % p.z;
        let nxy = e / p.z;
        let y = nxy % p.y;
        let nx = nxy / p.y;
        let x = nx % p.x;
        let n = nx / p.x;
        var sum = 0.0;
        for (var kx = 0u; kx < p.fx; kx++) {
            let tx = i32(x + p.px) - i32(kx);  // = ox·sx when this kx reads x
            if (tx < 0 || u32(tx) % p.sx != 0u) { continue; }
            let ox = u32(tx) / p.sx;
            if (ox >= p.ox) { continue; }
            for (var ky = 0u; ky < p.fy; ky++) {
                let ty = i32(y + p.py) - i32(ky);
                if (ty < 0 || u32(ty) % p.sy != 0u) { continue; }
                let oy = u32(ty) / p.sy;
                if (oy >= p.oy) { continue; }
                let r = (n * p.ox + ox) * p.oy + oy;
                sum += dcol[r * kdim + (kx * p.fy + ky) * p.z + c];
            }
        }
        dx[p.dx_off + e] = sum;
    }
}
