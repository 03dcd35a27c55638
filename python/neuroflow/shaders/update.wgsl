// Weight updates with the reduced gradient g and the learning rate lr (its own uniform,
// rewritten every step, so nothing is recreated when lr changes):
//   vanilla   w −= lr·g
//   momentum  m = μm − lr·g;  w += m
//   nesterov  m′ = μm − lr·g; w += −μm + (1 + μ)m′; m = m′

struct Params { count: u32, mu: f32 }
struct Rate { lr: f32 }

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<uniform> rate: Rate;
@group(0) @binding(2) var<storage, read_write> w: array<f32>;
@group(0) @binding(3) var<storage, read> g: array<f32>;
@group(0) @binding(4) var<storage, read_write> m: array<f32>;

@compute @workgroup_size(256)
fn vanilla(@builtin(global_invocation_id) gid: vec3<u32>,
           @builtin(num_workgroups) nwg: vec3<u32>) {
    for (var i = gid.x; i < p.count; i += nwg.x * 256u) {
        w[i] -= rate.lr * g[i];
    }
}

@compute @workgroup_size(256)
fn momentum(@builtin(global_invocation_id) gid: vec3<u32>,
            @builtin(num_workgroups) nwg: vec3<u32>) {
    for (var i = gid.x; i < p.count; i += nwg.x * 256u) {
        let mi = p.mu * m[i] - rate.lr * g[i];
        m[i] = mi;
        w[i] += mi;
    }
}

@compute @workgroup_size(256)
fn nesterov(@builtin(global_invocation_id) gid: vec3<u32>,
            @builtin(num_workgroups) nwg: vec3<u32>) {
    for (var i = gid.x; i < p.count; i += nwg.x * 256u) {
        let m0 = m[i];
        let m1 = p.mu * m0 - rate.lr * g[i];
        w[i] += -p.mu * m0 + (1.0 + p.mu) * m1;
        m[i] = m1;
    }
}
