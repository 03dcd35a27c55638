// Losses, one invocation per sample row of y (the last layer's activated output, K wide):
// the per-sample loss and g = ∂L/∂y. Ids are ids.json's (LOSS_* constants).
// Softmax losses take label smoothing ε: t′ = (1 − ε)·t + ε·m/K (m = n for
// softmax_log_mult_entropy, else 1); L = −Σ t′·log_softmax(y), g = m·p − t′.
// log_softmax is y − max − log Σ exp(y − max), so it is finite for any finite y, and terms
// with t′ = 0 are skipped (no 0·log 0).

// With fold = 1, g is multiplied by the last layer's f′ taken from y (act_df_out), so that
// layer's backward needs no pass of its own.

struct Params { rows: u32, k: u32, id: u32, mult: f32, smoothing: f32, fold: u32, fold_id: u32, fold_alpha: f32,
                 scale: f32 }

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> y: array<f32>;
@group(0) @binding(2) var<storage, read> t: array<f32>;
@group(0) @binding(3) var<storage, read_write> loss: array<f32>;  // [rows]
@group(0) @binding(4) var<storage, read_write> g: array<f32>;     // [rows, k]

//!include activators

fn fold(j: u32) -> f32 {
    if (p.fold == 1u) { return act_df_out(p.fold_id, p.fold_alpha, y[j]); }
    return 1.0;
}

// log Σ exp(y) of row `base`, with its max taken out first.
fn log_sum_exp(base: u32) -> f32 {
    var m = y[base];
    for (var j = 1u; j < p.k; j++) { m = max(m, y[base + j]); }
    var s = 0.0;
    for (var j = 0u; j < p.k; j++) { s += exp(y[base + j] - m); }
    return m + log(s);
}

// Row r's loss; writes its gradient.
fn row(r: u32) -> f32 {
    let base = r * p.k;
    var l = 0.0;
    if (p.id == LOSS_SOFTMAX_LOG_ENTROPY || p.id == LOSS_SOFTMAX_LOG_MULT_ENTROPY) {
        let lse = log_sum_exp(base);
        let m = select(1.0, p.mult, p.id == LOSS_SOFTMAX_LOG_MULT_ENTROPY);
        let spread = p.smoothing * m / f32(p.k);
        for (var j = 0u; j < p.k; j++) {
            let ls = y[base + j] - lse;
            var tj = t[base + j];
            if (p.smoothing != 0.0) { tj = (1.0 - p.smoothing) * tj + spread; }
            if (tj != 0.0) { l -= tj * ls; }
            g[base + j] = (m * exp(ls) - tj) * fold(base + j);
        }
    } else {
        for (var j = 0u; j < p.k; j++) {
            let d = y[base + j] - t[base + j];
            if (p.id == LOSS_SQUARED_ERROR) {
                l += 0.5 * d * d;
                g[base + j] = d * fold(base + j);
            } else {  // LOSS_ABS_CUBIC_ERROR
                l += 0.5 * abs(d) * d * d;
                g[base + j] = 1.5 * d * abs(d) * fold(base + j);
            }
        }
    }
    return l;
}

@compute @workgroup_size(64)
fn loss_grad(@builtin(global_invocation_id) gid: vec3<u32>,
             @builtin(num_workgroups) nwg: vec3<u32>) {
    for (var r = gid.x; r < p.rows; r += nwg.x * 64u) {
        loss[r] = row(r);
    }
}

// The same and the batch's reduced loss, out[0] = scale · Σ loss, in one workgroup (a
// batch in one chunk): the rows summed in reduce.wgsl's order (strided partial sums, then
// a tree), so the result is the same as loss_grad then reduce.sum, one dispatch fewer.
@group(0) @binding(5) var<storage, read_write> out: array<f32>;

var<workgroup> part: array<f32, 256>;

@compute @workgroup_size(256)
fn loss_grad_sum(@builtin(local_invocation_index) i: u32) {
    var s = 0.0;
    for (var r = i; r < p.rows; r += 256u) {
        let l = row(r);
        loss[r] = l;
        s += l;
    }
    part[i] = s;
    workgroupBarrier();
    for (var half = 128u; half > 0u; half /= 2u) {
        if (i < half) { part[i] += part[i + half]; }
        workgroupBarrier();
    }
    if (i == 0u) { out[0] = p.scale * part[0]; }
}
