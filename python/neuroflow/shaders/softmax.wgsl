// Row-wise softmax, what predict returns for the softmax losses: p = exp(y − log Σ exp y),
// with the row's max taken out first so no exp overflows. One invocation per row.

struct Params { rows: u32, k: u32 }

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> y: array<f32>;
@group(0) @binding(2) var<storage, read_write> prob: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>,
        @builtin(num_workgroups) nwg: vec3<u32>) {
    for (var r = gid.x; r < p.rows; r += nwg.x * 64u) {
        let base = r * p.k;
        var m = y[base];
        for (var j = 1u; j < p.k; j++) { m = max(m, y[base + j]); }
        var s = 0.0;
        for (var j = 0u; j < p.k; j++) { s += exp(y[base + j] - m); }
        let lse = m + log(s);
        for (var j = 0u; j < p.k; j++) { prob[base + j] = exp(y[base + j] - lse); }
    }
}
