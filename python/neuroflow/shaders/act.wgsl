// A layer's bias and activator in one element-wise pass (conv, dense):
//   forward   a = f(s + b[i mod C] + act.bias)
//   backward  s = d ⊙ f′(s + b[i mod C] + act.bias), in place: the pre-activation becomes
//             the layer's delta ∂L/∂s and d (∂L/∂a) is left untouched, so a residual can
//             still read it.
// b is the layer's bias inside the engine's flat parameter buffer (has_bias = 0: none).
// (Conv and dense apply bias and activator in their gemm's epilogue; this pass serves
// where no gemm precedes, and the kernel tests.)

struct Params {
    count: u32, id: u32, alpha: f32, bias: f32,
    channels: u32, bias_off: u32, has_bias: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> src: array<f32>;      // forward: s; backward: d
@group(0) @binding(2) var<storage, read> params: array<f32>;   // the flat parameter buffer
@group(0) @binding(3) var<storage, read_write> out: array<f32>; // forward: a; backward: s

//!include activators

fn pre(i: u32, s: f32) -> f32 {
    var v = s;
    if (p.has_bias == 1u) { v += params[p.bias_off + i % p.channels]; }
    return v + p.bias;
}

@compute @workgroup_size(256)
fn forward(@builtin(global_invocation_id) gid: vec3<u32>,
           @builtin(num_workgroups) nwg: vec3<u32>) {
    for (var i = gid.x; i < p.count; i += nwg.x * 256u) {
        out[i] = act_f(p.id, p.alpha, pre(i, src[i]));
    }
}

@compute @workgroup_size(256)
fn backward(@builtin(global_invocation_id) gid: vec3<u32>,
            @builtin(num_workgroups) nwg: vec3<u32>) {
    for (var i = gid.x; i < p.count; i += nwg.x * 256u) {
        out[i] = src[i] * act_df(p.id, p.alpha, pre(i, out[i]));
    }
}

// backward_out: out = src ⊙ f′ taken from the layer's output a (params bound to a): for the
// activators whose f′ follows from it (act_df_out), so the forward keeps no pre-activation.
@compute @workgroup_size(256)
fn backward_out(@builtin(global_invocation_id) gid: vec3<u32>,
                @builtin(num_workgroups) nwg: vec3<u32>) {
    for (var i = gid.x; i < p.count; i += nwg.x * 256u) {
        out[i] = src[i] * act_df_out(p.id, p.alpha, params[i]);
    }
}
