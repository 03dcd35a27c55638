// Losses, one invocation per sample row of y (the last layer's activated output, K wide):
// the per-sample loss and g = ∂L/∂y. Ids are ids.json's (LOSS_* constants).
// Softmax losses take label smoothing ε: t′ = (1 − ε)·t + ε·m/K (m = n for
// softmax_log_mult_entropy, else 1); L = −Σ t′·log_softmax(y), g = m·p − t′.
// log_softmax is y − max − log Σ exp(y − max), so it is finite for any finite y, and terms
// with t′ = 0 are skipped (no 0·log 0).

struct Params { rows: u32, k: u32, id: u32, mult: f32, smoothing: f32 }

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> y: array<f32>;
@group(0) @binding(2) var<storage, read> t: array<f32>;
@group(0) @binding(3) var<storage, read_write> loss: array<f32>;  // [rows]
@group(0) @binding(4) var<storage, read_write> g: array<f32>;     // [rows, k]

// log Σ exp(y) of row `base`, with its max taken out first.
fn log_sum_exp(base: u32) -> f32 {
    var m = y[base];
    for (var j = 1u; j < p.k; j++) { m = max(m, y[base + j]); }
    var s = 0.0;
    for (var j = 0u; j < p.k; j++) { s += exp(y[base + j] - m); }
    return m + log(s);
}

@compute @workgroup_size(64)
fn loss_grad(@builtin(global_invocation_id) gid: vec3<u32>,
             @builtin(num_workgroups) nwg: vec3<u32>) {
    for (var r = gid.x; r < p.rows; r += nwg.x * 64u) {
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
                g[base + j] = m * exp(ls) - tj;
            }
        } else {
            for (var j = 0u; j < p.k; j++) {
                let d = y[base + j] - t[base + j];
                if (p.id == LOSS_SQUARED_ERROR) {
                    l += 0.5 * d * d;
                    g[base + j] = d;
                } else {  // LOSS_ABS_CUBIC_ERROR
                    l += 0.5 * abs(d) * d * d;
                    g[base + j] = 1.5 * d * abs(d);
                }
            }
        }
        loss[r] = l;
    }
}
