// The batch's loss, summed in a fixed order (results do not depend on scheduling):
// out[0] = scale · Σ x (the batch's per-sample losses; scale 1 for `sum`, 1/N for
// `mean`). One workgroup: strided partial sums, then a tree in workgroup memory.

struct Sum { count: u32, scale: f32 }

@group(0) @binding(0) var<uniform> p: Sum;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;

var<workgroup> part: array<f32, 256>;

@compute @workgroup_size(256)
fn sum(@builtin(local_invocation_index) t: u32) {
    var s = 0.0;
    for (var i = t; i < p.count; i += 256u) { s += x[i]; }
    part[t] = s;
    workgroupBarrier();
    for (var half = 128u; half > 0u; half /= 2u) {
        if (t < half) { part[t] += part[t + half]; }
        workgroupBarrier();
    }
    if (t == 0u) { out[0] = p.scale * part[0]; }
}
