// Batch normalisation over channels-last data x[M, C] (M = N·P values per channel), then
// the layer's activator: a = f(scale·x̂ + shift + act.bias), x̂ = (x − μ)/√(σ² + eps).
//
// `stats` (train mode): the mean and biased variance of each channel, from row ranges in
//   parallel: invocation (z, c) takes rows [z·per, (z + 1)·per) of channel c (adjacent
//   invocations read adjacent channels) and gives their mean and M2 = Σ(x − mean)² (two
//   passes, not E[x²] − mean²). With one range (`whole`) it finishes the channel itself;
//   otherwise `stats_merge` combines the ranges in order (Chan et al.'s pairwise update) —
//   a fixed order either way, so results are reproducible. Finishing writes μ to stats[c],
//   σ² to stats[C + c] and, with `update`, moves the running statistics:
//   running_mean ← (1 − m)·running_mean + m·μ, running_var ← (1 − m)·running_var +
//   m·σ²·M/(M − 1) (σ² itself when M = 1).
// `forward`: a from μ and σ² read at (mean_off, var_off) of `src`: the batch's stats
//   (train mode) or the running statistics in the state buffer (eval mode).
// `backward_sums` (train mode): with g = ∂L/∂a ⊙ f′(y + act.bias), Σg and Σg·x̂ per channel
//   (into sums[0..C), sums[C..2C)), in row ranges like `stats` (`sums_merge` adds them up
//   in order), and the parameter gradients ∂shift = gscale·Σg, ∂scale = gscale·Σg·x̂
//   (gscale: the reduction's 1/N or 1; beta = 1 adds to what is there).
// `backward_input`: ∂x = scale/√(σ² + eps)·(g − Σg/M − x̂·Σg·x̂/M).

struct Params {
    rows: u32, c: u32, act: u32, alpha: f32,
    abias: f32, eps: f32, momentum: f32, update: u32,
    mean_off: u32, var_off: u32, run_mean_off: u32, run_var_off: u32,
    scale_off: u32, shift_off: u32, has_scale: u32, has_shift: u32,
    grad_scale_off: u32, grad_shift_off: u32, gscale: f32, beta: f32,
    per: u32, splits: u32, whole: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
// stats: `out` is the stats buffer (whole) or the ranges' partials [splits][2C];
// stats_merge reads the partials at binding 1 and writes the stats buffer
@group(0) @binding(1) var<storage, read> part: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;
@group(0) @binding(3) var<storage, read_write> state: array<f32>;
// forward and backward: the engine's flat parameter buffer, and where μ and σ² are read
// (at mean_off and var_off): the batch's stats, or the state buffer's running statistics
@group(0) @binding(2) var<storage, read> params: array<f32>;
@group(0) @binding(3) var<storage, read> src: array<f32>;
// forward
@group(0) @binding(4) var<storage, read_write> a: array<f32>;
// backward: d = ∂L/∂a; backward_sums writes `sums_out` (the sums, or partials) and `grads`;
// sums_merge reads the partials at binding 4
@group(0) @binding(4) var<storage, read> d: array<f32>;
@group(0) @binding(4) var<storage, read> sums_part: array<f32>;
@group(0) @binding(5) var<storage, read_write> sums_out: array<f32>;
@group(0) @binding(6) var<storage, read_write> grads: array<f32>;
@group(0) @binding(5) var<storage, read> sums: array<f32>;
@group(0) @binding(6) var<storage, read_write> dx: array<f32>;

//!include activators

// rows of range z: [first, end)
fn range_of(z: u32) -> vec2<u32> {
    return vec2<u32>(z * p.per, min((z + 1u) * p.per, p.rows));
}

@compute @workgroup_size(256)
fn stats(@builtin(global_invocation_id) gid: vec3<u32>,
         @builtin(num_workgroups) nwg: vec3<u32>) {
    for (var g = gid.x; g < p.splits * p.c; g += nwg.x * 256u) {
        let c = g % p.c;
        let z = g / p.c;
        let rr = range_of(z);
        let n = f32(rr.y - rr.x);
        var s = 0.0;
        for (var r = rr.x; r < rr.y; r++) { s += x[r * p.c + c]; }
        let mean = s / n;
        var m2 = 0.0;
        for (var r = rr.x; r < rr.y; r++) {
            let v = x[r * p.c + c] - mean;
            m2 += v * v;
        }
        if (p.whole == 1u) {
            finish_stats(c, mean, m2);
        } else {
            out[z * 2u * p.c + c] = mean;
            out[z * 2u * p.c + p.c + c] = m2;
        }
    }
}

// μ and σ² = M2/M of channel c into the stats buffer, and the running statistics moved
// when `update`.
fn finish_stats(c: u32, mean: f32, m2: f32) {
    let m = f32(p.rows);
    out[c] = mean;
    out[p.c + c] = m2 / m;
    if (p.update == 1u) {
        var unbiased = m2 / m;
        if (p.rows > 1u) { unbiased = m2 / (m - 1.0); }
        let rm = p.run_mean_off + c;
        let rv = p.run_var_off + c;
        state[rm] = (1.0 - p.momentum) * state[rm] + p.momentum * mean;
        state[rv] = (1.0 - p.momentum) * state[rv] + p.momentum * unbiased;
    }
}

// The ranges' (mean, M2) of each channel combined in order: Chan et al.'s pairwise update.
@compute @workgroup_size(256)
fn stats_merge(@builtin(global_invocation_id) gid: vec3<u32>,
               @builtin(num_workgroups) nwg: vec3<u32>) {
    for (var c = gid.x; c < p.c; c += nwg.x * 256u) {
        var n = 0.0;
        var mean = 0.0;
        var m2 = 0.0;
        for (var z = 0u; z < p.splits; z++) {
            let rr = range_of(z);
            let nb = f32(rr.y - rr.x);
            let delta = part[z * 2u * p.c + c] - mean;
            let total = n + nb;
            mean += delta * (nb / total);
            m2 += part[z * 2u * p.c + p.c + c] + delta * delta * (n * nb / total);
            n = total;
        }
        finish_stats(c, mean, m2);
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
fn backward_sums(@builtin(global_invocation_id) gid: vec3<u32>,
                 @builtin(num_workgroups) nwg: vec3<u32>) {
    for (var gi = gid.x; gi < p.splits * p.c; gi += nwg.x * 256u) {
        let c = gi % p.c;
        let z = gi / p.c;
        let rr = range_of(z);
        var sg = 0.0;
        var sgx = 0.0;
        for (var r = rr.x; r < rr.y; r++) {
            let v = xhat_g(r * p.c + c, c);
            sg += v.y;
            sgx += v.y * v.x;
        }
        if (p.whole == 1u) {
            sums_out[c] = sg;
            sums_out[p.c + c] = sgx;
            param_grads(c, sg, sgx);
        } else {
            sums_out[z * 2u * p.c + c] = sg;
            sums_out[z * 2u * p.c + p.c + c] = sgx;
        }
    }
}

fn param_grads(c: u32, sg: f32, sgx: f32) {
    if (p.has_shift == 1u) {
        let at = p.grad_shift_off + c;
        var v = p.gscale * sg;
        if (p.beta != 0.0) { v += p.beta * grads[at]; }
        grads[at] = v;
    }
    if (p.has_scale == 1u) {
        let at = p.grad_scale_off + c;
        var v = p.gscale * sgx;
        if (p.beta != 0.0) { v += p.beta * grads[at]; }
        grads[at] = v;
    }
}

// The ranges' Σg and Σg·x̂ added up in order, and the parameter gradients.
@compute @workgroup_size(256)
fn sums_merge(@builtin(global_invocation_id) gid: vec3<u32>,
              @builtin(num_workgroups) nwg: vec3<u32>) {
    for (var c = gid.x; c < p.c; c += nwg.x * 256u) {
        var sg = 0.0;
        var sgx = 0.0;
        for (var z = 0u; z < p.splits; z++) {
            sg += sums_part[z * 2u * p.c + c];
            sgx += sums_part[z * 2u * p.c + p.c + c];
        }
        sums_out[c] = sg;
        sums_out[p.c + c] = sgx;
        param_grads(c, sg, sgx);
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
