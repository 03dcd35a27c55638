// Batch normalisation over channels-last data x[M, C] (M = N·P values per channel), then
// the layer's activator: a = f(scale·x̂ + shift + act.bias), x̂ = (x − μ)/√(σ² + eps).
//
// `stats` (train mode): μ and the biased σ² of each channel, written to stats[0..C) and
//   stats[C..2C); with `update`, the running statistics in the state buffer move too:
//   running_mean ← (1 − m)·running_mean + m·μ, running_var ← (1 − m)·running_var +
//   m·σ²·M/(M − 1) (σ² itself when M = 1). One workgroup per channel: strided partial sums
//   then a tree in workgroup memory, a fixed order, so results are reproducible; σ² is
//   summed around μ (two passes), not as E[x²] − μ².
// `forward`: a from μ and σ² read at (mean_off, var_off) of `src`: the batch's stats
//   (train mode) or the running statistics in the state buffer (eval mode).
// `backward_sums` (train mode): with g = ∂L/∂a ⊙ f′(y + act.bias), Σg and Σg·x̂ per channel
//   (into sums[0..C), sums[C..2C)), and the parameter gradients
//   ∂shift = gscale·Σg, ∂scale = gscale·Σg·x̂ (gscale: the reduction's 1/N or 1; beta = 1
//   adds to what is there).
// `backward_input`: ∂x = scale/√(σ² + eps)·(g − Σg/M − x̂·Σg·x̂/M).

struct Params {
    rows: u32, c: u32, act: u32, alpha: f32,
    abias: f32, eps: f32, momentum: f32, update: u32,
    mean_off: u32, var_off: u32, run_mean_off: u32, run_var_off: u32,
    scale_off: u32, shift_off: u32, has_scale: u32, has_shift: u32,
    grad_scale_off: u32, grad_shift_off: u32, gscale: f32, beta: f32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
// stats
@group(0) @binding(2) var<storage, read_write> stats_out: array<f32>;
@group(0) @binding(3) var<storage, read_write> state: array<f32>;
// forward and backward: the engine's flat parameter buffer, and where μ and σ² are read
// (at mean_off and var_off): the batch's stats, or the state buffer's running statistics
@group(0) @binding(2) var<storage, read> params: array<f32>;
@group(0) @binding(3) var<storage, read> src: array<f32>;
// forward
@group(0) @binding(4) var<storage, read_write> a: array<f32>;
// backward: d = ∂L/∂a
@group(0) @binding(4) var<storage, read> d: array<f32>;
@group(0) @binding(5) var<storage, read_write> sums_out: array<f32>;
@group(0) @binding(6) var<storage, read_write> grads: array<f32>;
@group(0) @binding(5) var<storage, read> sums: array<f32>;
@group(0) @binding(6) var<storage, read_write> dx: array<f32>;

//!include activators

var<workgroup> red: array<f32, 256>;
var<workgroup> red2: array<f32, 256>;

// The tree over red (and red2): leaves the totals in red[0] (red2[0]).
fn tree(t: u32) {
    workgroupBarrier();
    for (var half = 128u; half > 0u; half /= 2u) {
        if (t < half) {
            red[t] += red[t + half];
            red2[t] += red2[t + half];
        }
        workgroupBarrier();
    }
}

@compute @workgroup_size(256)
fn stats(@builtin(local_invocation_index) t: u32,
         @builtin(workgroup_id) wid: vec3<u32>,
         @builtin(num_workgroups) nwg: vec3<u32>) {
    let m = f32(p.rows);
    for (var c = wid.x; c < p.c; c += nwg.x) {
        var s = 0.0;
        for (var r = t; r < p.rows; r += 256u) { s += x[r * p.c + c]; }
        red[t] = s;
        red2[t] = 0.0;
        tree(t);
        let mean = red[0] / m;
        workgroupBarrier();
        var q = 0.0;
        for (var r = t; r < p.rows; r += 256u) {
            let v = x[r * p.c + c] - mean;
            q += v * v;
        }
        red[t] = q;
        tree(t);
        if (t == 0u) {
            let var_ = red[0] / m;
            stats_out[c] = mean;
            stats_out[p.c + c] = var_;
            if (p.update == 1u) {
                var unbiased = var_;
                if (p.rows > 1u) { unbiased = var_ * (m / (m - 1.0)); }
                let rm = p.run_mean_off + c;
                let rv = p.run_var_off + c;
                state[rm] = (1.0 - p.momentum) * state[rm] + p.momentum * mean;
                state[rv] = (1.0 - p.momentum) * state[rv] + p.momentum * unbiased;
            }
        }
        workgroupBarrier();
    }
}

fn gamma(c: u32) -> f32 {
    if (p.has_scale == 1u) { return params[p.scale_off + c]; }
    return 1.0;
}

fn shift(c: u32) -> f32 {
    if (p.has_shift == 1u) { return params[p.shift_off + c]; }
    return 0.0;
}

// x̂ of element i (channel c) with μ and σ² from src
fn xhat(i: u32, c: u32) -> f32 {
    return (x[i] - src[p.mean_off + c]) / sqrt(src[p.var_off + c] + p.eps);
}

@compute @workgroup_size(256)
fn forward(@builtin(global_invocation_id) gid: vec3<u32>,
           @builtin(num_workgroups) nwg: vec3<u32>) {
    let count = p.rows * p.c;
    for (var i = gid.x; i < count; i += nwg.x * 256u) {
        let c = i % p.c;
        let y = gamma(c) * xhat(i, c) + shift(c);
        a[i] = act_f(p.act, p.alpha, y + p.abias);
    }
}

// x̂ and g = d ⊙ f′(y + act.bias) of element i (channel c).
fn xhat_g(i: u32, c: u32) -> vec2<f32> {
    let xh = xhat(i, c);
    let y = gamma(c) * xh + shift(c);
    return vec2<f32>(xh, d[i] * act_df(p.act, p.alpha, y + p.abias));
}

@compute @workgroup_size(256)
fn backward_sums(@builtin(local_invocation_index) t: u32,
                 @builtin(workgroup_id) wid: vec3<u32>,
                 @builtin(num_workgroups) nwg: vec3<u32>) {
    for (var c = wid.x; c < p.c; c += nwg.x) {
        var sg = 0.0;
        var sgx = 0.0;
        for (var r = t; r < p.rows; r += 256u) {
            let v = xhat_g(r * p.c + c, c);
            sg += v.y;
            sgx += v.y * v.x;
        }
        red[t] = sg;
        red2[t] = sgx;
        tree(t);
        if (t == 0u) {
            sums_out[c] = red[0];
            sums_out[p.c + c] = red2[0];
            if (p.has_shift == 1u) {
                let at = p.grad_shift_off + c;
                var v = p.gscale * red[0];
                if (p.beta != 0.0) { v += p.beta * grads[at]; }
                grads[at] = v;
            }
            if (p.has_scale == 1u) {
                let at = p.grad_scale_off + c;
                var v = p.gscale * red2[0];
                if (p.beta != 0.0) { v += p.beta * grads[at]; }
                grads[at] = v;
            }
        }
        workgroupBarrier();
    }
}

@compute @workgroup_size(256)
fn backward_input(@builtin(global_invocation_id) gid: vec3<u32>,
                  @builtin(num_workgroups) nwg: vec3<u32>) {
    let count = p.rows * p.c;
    let m = f32(p.rows);
    for (var i = gid.x; i < count; i += nwg.x * 256u) {
        let c = i % p.c;
        let v = xhat_g(i, c);
        let rstd = 1.0 / sqrt(src[p.var_off + c] + p.eps);
        dx[i] = gamma(c) * rstd * (v.y - sums[c] / m - v.x * sums[p.c + c] / m);
    }
}
