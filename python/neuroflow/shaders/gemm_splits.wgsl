// The second half of a split-K gemm: C = Σ_z partial[z] + beta·C, where partial[z] is the
// alpha-scaled product over the z-th range of K (packed [splits][m][n], from gemm.wgsl).
// Summed in a fixed order, so results do not depend on scheduling.

struct Params { m: u32, n: u32, ldc: u32, c_off: u32, splits: u32, beta: f32 }

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> part: array<f32>;
@group(0) @binding(2) var<storage, read_write> c: array<f32>;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>,
        @builtin(num_workgroups) nwg: vec3<u32>) {
    let mn = p.m * p.n;
    for (var e = gid.x; e < mn; e += nwg.x * 256u) {
        var sum = 0.0;
        for (var z = 0u; z < p.splits; z++) { sum += part[z * mn + e]; }
        let at = p.c_off + (e / p.n) * p.ldc + e % p.n;
        if (p.beta != 0.0) { sum += p.beta * c[at]; }
        c[at] = sum;
    }
}
