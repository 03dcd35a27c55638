// A residual block's join: y = f(x + inner(x) + act.bias).
//   forward   a = f(x + u + act.bias), u the inner layers' output
//   backward  g = d ⊙ f′(x + u + act.bias): the delta of both the inner layers' output and
//             the skip
//   add       dx += g: the skip's gradient added to the inner layers' input gradient

struct Params { count: u32, id: u32, alpha: f32, bias: f32 }

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> u: array<f32>;
@group(0) @binding(3) var<storage, read_write> a: array<f32>;    // forward
@group(0) @binding(3) var<storage, read> d: array<f32>;          // backward
@group(0) @binding(4) var<storage, read_write> g: array<f32>;    // backward
@group(0) @binding(2) var<storage, read_write> dx: array<f32>;   // add (x is g)

//!include activators

@compute @workgroup_size(256)
fn forward(@builtin(global_invocation_id) gid: vec3<u32>,
           @builtin(num_workgroups) nwg: vec3<u32>) {
    for (var i = gid.x; i < p.count; i += nwg.x * 256u) {
        a[i] = act_f(p.id, p.alpha, x[i] + u[i] + p.bias);
    }
}

@compute @workgroup_size(256)
fn backward(@builtin(global_invocation_id) gid: vec3<u32>,
            @builtin(num_workgroups) nwg: vec3<u32>) {
    for (var i = gid.x; i < p.count; i += nwg.x * 256u) {
        g[i] = d[i] * act_df(p.id, p.alpha, x[i] + u[i] + p.bias);
    }
}

@compute @workgroup_size(256)
fn add(@builtin(global_invocation_id) gid: vec3<u32>,
       @builtin(num_workgroups) nwg: vec3<u32>) {
    for (var i = gid.x; i < p.count; i += nwg.x * 256u) {
        dx[i] += x[i];
    }
}
