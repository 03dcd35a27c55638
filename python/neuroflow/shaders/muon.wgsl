// Muon's step on one filter tensor (the update rule "muon", docs/engine.md), around the
// gemm kernel's Newton–Schulz products (ops.muon):
//   momentum  M = μM + g;  x = g + μM               (the tensor at `off` of w, g and M)
//   sumsq     nrm[slot] = Σ v², v the tensor at `off` of `v` (one workgroup, fixed order)
//   scale     x *= 1 / (√nrm[0] + 1e-7)
//   axpby     y = α·x + β·y
//   step      w = w·s·(1 − αλ) − α·κ·x with α = lr·lr_mult (the `rate` uniform), λ the
//             decay times wd_mult, κ = √max(1, F/K), and s = √F / √nrm[1] with
//             `normalize` (1 without, or when the tensor is all zero)

struct Params { count: u32, off: u32, slot: u32, normalize: u32, a: f32, b: f32, c: f32, d: f32 }
struct Rate { lr: f32, step: u32, bc1: f32, bc2: f32 }

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> g: array<f32>;           // momentum
@group(0) @binding(2) var<storage, read_write> m: array<f32>;
@group(0) @binding(3) var<storage, read_write> x: array<f32>;
@group(0) @binding(1) var<storage, read> v: array<f32>;           // sumsq
@group(0) @binding(2) var<storage, read_write> nrm: array<f32>;
@group(0) @binding(1) var<storage, read> unit: array<f32>;        // scale (nrm of the update)
@group(0) @binding(2) var<storage, read_write> xs: array<f32>;
@group(0) @binding(1) var<storage, read> src: array<f32>;         // axpby
@group(0) @binding(2) var<storage, read_write> y: array<f32>;
@group(0) @binding(1) var<uniform> rate: Rate;                    // step
@group(0) @binding(2) var<storage, read_write> w: array<f32>;
@group(0) @binding(3) var<storage, read> o: array<f32>;
@group(0) @binding(4) var<storage, read> norms: array<f32>;

var<workgroup> part: array<f32, 256>;

@compute @workgroup_size(256)
fn momentum(@builtin(global_invocation_id) gid: vec3<u32>,
            @builtin(num_workgroups) nwg: vec3<u32>) {
    for (var i = gid.x; i < p.count; i += nwg.x * 256u) {
        let j = p.off + i;
        let mi = p.a * m[j] + g[j];
        m[j] = mi;
        x[i] = g[j] + p.a * mi;
    }
}

@compute @workgroup_size(256)
fn sumsq(@builtin(local_invocation_index) t: u32) {
    var s = 0.0;
    for (var i = t; i < p.count; i += 256u) {
        let e = v[p.off + i];
        s += e * e;
    }
    part[t] = s;
    workgroupBarrier();
    for (var half = 128u; half > 0u; half /= 2u) {
        if (t < half) { part[t] += part[t + half]; }
        workgroupBarrier();
    }
    if (t == 0u) { nrm[p.slot] = part[0]; }
}

@compute @workgroup_size(256)
fn scale(@builtin(global_invocation_id) gid: vec3<u32>,
         @builtin(num_workgroups) nwg: vec3<u32>) {
    let k = 1.0 / (sqrt(unit[0]) + 1e-7);
    for (var i = gid.x; i < p.count; i += nwg.x * 256u) {
        xs[i] *= k;
    }
}

@compute @workgroup_size(256)
fn axpby(@builtin(global_invocation_id) gid: vec3<u32>,
         @builtin(num_workgroups) nwg: vec3<u32>) {
    for (var i = gid.x; i < p.count; i += nwg.x * 256u) {
        y[i] = p.a * src[i] + p.b * y[i];
    }
}

// a: lr_mult, b: λ·wd_mult, c: κ, d: √F
@compute @workgroup_size(256)
fn step(@builtin(global_invocation_id) gid: vec3<u32>,
        @builtin(num_workgroups) nwg: vec3<u32>) {
    let lr = rate.lr * p.a;
    var s = 1.0;
    if (p.normalize != 0u && norms[1] > 0.0) { s = p.d / sqrt(norms[1]); }
    let keep = s * (1.0 - lr * p.b);
    for (var i = gid.x; i < p.count; i += nwg.x * 256u) {
        let j = p.off + i;
        w[j] = w[j] * keep - lr * p.c * o[i];
    }
}
