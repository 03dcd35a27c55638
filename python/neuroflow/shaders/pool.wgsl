// Pooling over channels-last samples x[n, X, Y, Z] (index ((n·X + x)·Y + y)·Z + c) into
// a[n, OX, OY, Z]; windows of fx × fy, stride (sx, sy), padding (px, py).
//
// max: the maximum over the window's elements inside the input (padding never wins); ties
//   go to the first in window order (kx outer, ky inner). The winner's position x·Y + y is
//   kept in `arg` for the backward pass (0xFFFFFFFF when no element is inside).
// avg: the window's sum divided by fx·fy (padding counts as 0).
// gap (global average pool): a[n, c] = the mean over the X·Y positions.
// Backward passes are gathers, one invocation per input element summing the outputs whose
// windows hold it (as col2im): no atomics, a fixed order.

struct Params {
    n: u32, x: u32, y: u32, z: u32,
    fx: u32, fy: u32, sx: u32, sy: u32,
    px: u32, py: u32, ox: u32, oy: u32,
}

const NONE: u32 = 0xFFFFFFFFu;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> src: array<f32>;        // forward: x; backward: d
@group(0) @binding(2) var<storage, read_write> out: array<f32>;  // forward: a; backward: dx
@group(0) @binding(3) var<storage, read_write> arg: array<u32>;  // max_forward: the winners
@group(0) @binding(2) var<storage, read> arg_in: array<u32>;     // max_backward: the winners
@group(0) @binding(3) var<storage, read_write> dx: array<f32>;   // max_backward

// (n, ox, oy, c) of output element e
fn out_pos(e: u32) -> vec4<u32> {
    let c = e % p.z;
    let r = e / p.z;
    let oy = r % p.oy;
    let nox = r / p.oy;
    return vec4<u32>(nox / p.ox, nox % p.ox, oy, c);
}

@compute @workgroup_size(256)
fn max_forward(@builtin(global_invocation_id) gid: vec3<u32>,
               @builtin(num_workgroups) nwg: vec3<u32>) {
    let total = p.n * p.ox * p.oy * p.z;
    for (var e = gid.x; e < total; e += nwg.x * 256u) {
        let o = out_pos(e);
        var best = 0.0;
        var at = NONE;
        for (var kx = 0u; kx < p.fx; kx++) {
            let x = i32(o.y * p.sx + kx) - i32(p.px);
            if (x < 0 || u32(x) >= p.x) { continue; }
            for (var ky = 0u; ky < p.fy; ky++) {
                let y = i32(o.z * p.sy + ky) - i32(p.py);
                if (y < 0 || u32(y) >= p.y) { continue; }
                let pos = u32(x) * p.y + u32(y);
                let v = src[(o.x * p.x * p.y + pos) * p.z + o.w];
                if (at == NONE || v > best) {
                    best = v;
                    at = pos;
                }
            }
        }
        out[e] = best;
        arg[e] = at;
    }
}

// The output index along one axis whose window holds input coordinate t + k (t = input
// coordinate + padding − tap k), or −1 when none does.
fn first_out(t: i32, s: u32, count: u32) -> i32 {
    if (t < 0 || u32(t) % s != 0u) { return -1; }
    let o = u32(t) / s;
    if (o >= count) { return -1; }
    return i32(o);
}

@compute @workgroup_size(256)
fn max_backward(@builtin(global_invocation_id) gid: vec3<u32>,
                @builtin(num_workgroups) nwg: vec3<u32>) {
    let total = p.n * p.x * p.y * p.z;
    for (var e = gid.x; e < total; e += nwg.x * 256u) {
        let c = e % p.z;
        let nxy = e / p.z;
        let pos = nxy % (p.x * p.y);
        let n = nxy / (p.x * p.y);
        let x = pos / p.y;
        let y = pos % p.y;
        var sum = 0.0;
        for (var kx = 0u; kx < p.fx; kx++) {
            let ox = first_out(i32(x + p.px) - i32(kx), p.sx, p.ox);
            if (ox < 0) { continue; }
            for (var ky = 0u; ky < p.fy; ky++) {
                let oy = first_out(i32(y + p.py) - i32(ky), p.sy, p.oy);
                if (oy < 0) { continue; }
                let o = ((n * p.ox + u32(ox)) * p.oy + u32(oy)) * p.z + c;
                if (arg_in[o] == pos) { sum += src[o]; }
            }
        }
        dx[e] = sum;
    }
}

@compute @workgroup_size(256)
fn avg_forward(@builtin(global_invocation_id) gid: vec3<u32>,
               @builtin(num_workgroups) nwg: vec3<u32>) {
    let total = p.n * p.ox * p.oy * p.z;
    let inv = 1.0 / f32(p.fx * p.fy);
    for (var e = gid.x; e < total; e += nwg.x * 256u) {
        let o = out_pos(e);
        var sum = 0.0;
        for (var kx = 0u; kx < p.fx; kx++) {
            let x = i32(o.y * p.sx + kx) - i32(p.px);
            if (x < 0 || u32(x) >= p.x) { continue; }
            for (var ky = 0u; ky < p.fy; ky++) {
                let y = i32(o.z * p.sy + ky) - i32(p.py);
                if (y < 0 || u32(y) >= p.y) { continue; }
                sum += src[((o.x * p.x + u32(x)) * p.y + u32(y)) * p.z + o.w];
            }
        }
        out[e] = sum * inv;
    }
}

@compute @workgroup_size(256)
fn avg_backward(@builtin(global_invocation_id) gid: vec3<u32>,
                @builtin(num_workgroups) nwg: vec3<u32>) {
    let total = p.n * p.x * p.y * p.z;
    let inv = 1.0 / f32(p.fx * p.fy);
    for (var e = gid.x; e < total; e += nwg.x * 256u) {
        let c = e % p.z;
        let nxy = e / p.z;
        let pos = nxy % (p.x * p.y);
        let n = nxy / (p.x * p.y);
        var sum = 0.0;
        for (var kx = 0u; kx < p.fx; kx++) {
            let ox = first_out(i32(pos / p.y + p.px) - i32(kx), p.sx, p.ox);
            if (ox < 0) { continue; }
            for (var ky = 0u; ky < p.fy; ky++) {
                let oy = first_out(i32(pos % p.y + p.py) - i32(ky), p.sy, p.oy);
                if (oy < 0) { continue; }
                sum += src[((n * p.ox + u32(ox)) * p.oy + u32(oy)) * p.z + c];
            }
        }
        out[e] = sum * inv;
    }
}

@compute @workgroup_size(256)
fn gap_forward(@builtin(global_invocation_id) gid: vec3<u32>,
               @builtin(num_workgroups) nwg: vec3<u32>) {
    let positions = p.x * p.y;
    let total = p.n * p.z;
    for (var e = gid.x; e < total; e += nwg.x * 256u) {
        let c = e % p.z;
        let base = (e / p.z) * positions * p.z + c;
        var sum = 0.0;
        for (var q = 0u; q < positions; q++) { sum += src[base + q * p.z]; }
        out[e] = sum / f32(positions);
    }
}

@compute @workgroup_size(256)
fn gap_backward(@builtin(global_invocation_id) gid: vec3<u32>,
                @builtin(num_workgroups) nwg: vec3<u32>) {
    let positions = p.x * p.y;
    let total = p.n * positions * p.z;
    for (var e = gid.x; e < total; e += nwg.x * 256u) {
        let c = e % p.z;
        let n = e / (positions * p.z);
        out[e] = src[n * p.z + c] / f32(positions);
    }
}
