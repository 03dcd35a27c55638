// Column sums of a row-major [rows, cols] matrix (bias gradients: a delta summed over every
// sample and position), in a fixed order. Invocation (z, j) sums rows [z·per, (z + 1)·per)
// of column j: out[out_off + z·cols + j] = alpha·Σ + beta·out[…]. With several row ranges the
// host points `out` at a scratch of partials and gemm_splits adds them up.

struct Params { rows: u32, cols: u32, per: u32, alpha: f32, beta: f32, out_off: u32 }

@group(0) @binding(0) var<uniform> q: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>,
        @builtin(num_workgroups) nwg: vec3<u32>) {
    let splits = (q.rows + q.per - 1u) / q.per;
    let items = splits * q.cols;
    for (var g = gid.x; g < items; g += nwg.x * 256u) {
        let z = g / q.cols;
        let j = g % q.cols;
        let end = min((z + 1u) * q.per, q.rows);
        var s = 0.0;
        for (var r = z * q.per; r < end; r++) { s += x[r * q.cols + j]; }
        let at = q.out_off + g;
        var v = q.alpha * s;
        if (q.beta != 0.0) { v += q.beta * out[at]; }
        out[at] = v;
    }
}
