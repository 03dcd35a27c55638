// Losses, one invocation per sample row of y (the last layer's activated output, K wide):
// the per-sample loss and g = ∂L/∂y. ids: 0 softmax_log_entropy, 1 softmax_log_mult_entropy
// (g = mult·p − t), 2 squared_error, 3 abs_cubic_error. log_softmax is y − max − log Σ exp(y − max),
// so it is finite for any finite y, and terms with t = 0 are skipped (no 0·log 0).

struct Params { rows: u32, k: u32, id: u32, mult: f32 }

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
        if (p.id <= 1u) {
            let lse = log_sum_exp(base);
            let scale = select(1.0, p.mult, p.id == 1u);
            for (var j = 0u; j < p.k; j++) {
                let ls = y[base + j] - lse;
                let tj = t[base + j];
                if (tj != 0.0) { l -= tj * ls; }
                g[base + j] = scale * exp(ls) - tj;
            }
        } else {
            for (var j = 0u; j < p.k; j++) {
                let d = y[base + j] - t[base + j];
                if (p.id == 2u) {
                    l += 0.5 * d * d;
                    g[base + j] = d;
                } else {
                    l += 0.5 * abs(d) * d * d;
                    g[base + j] = 1.5 * d * abs(d);
                }
            }
        }
        loss[r] = l;
    }
}
