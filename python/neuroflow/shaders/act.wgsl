// Activators with NeuroFlow's fixed bias: forward a = f(s + bias); backward, in place,
// d ⊙= f′(s + bias) (d arrives as ∂L/∂a and leaves as the layer's delta).
// ids: 0 relu, 1 leaky_relu(alpha), 2 sigmoid, 3 tanh, 4 linear, 5 softplus, 6 square.

struct Params { count: u32, id: u32, alpha: f32, bias: f32 }

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> s: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;

// σ(x) without overflow on either side: exp only ever sees −|x|.
fn sigmoid(x: f32) -> f32 {
    let e = exp(-abs(x));
    if (x >= 0.0) { return 1.0 / (1.0 + e); }
    return e / (1.0 + e);
}

// log(1 + u) for small u without losing u to rounding (WGSL has no log1p).
fn log1p(u: f32) -> f32 {
    let w = 1.0 + u;
    if (w == 1.0) { return u; }
    return log(w) * (u / (w - 1.0));
}

fn f(x: f32) -> f32 {
    switch p.id {
        case 0u: { return max(x, 0.0); }
        case 1u: { return select(p.alpha * x, x, x > 0.0); }
        case 2u: { return sigmoid(x); }
        // tanh(±15) is ±1 in f32; clamping keeps drivers' exp-based tanh from overflowing.
        case 3u: { return tanh(clamp(x, -15.0, 15.0)); }
        case 5u: { return max(x, 0.0) + log1p(exp(-abs(x))); }
        case 6u: { return x * x; }
        default: { return x; }
    }
}

fn df(x: f32) -> f32 {
    switch p.id {
        case 0u: { return select(0.0, 1.0, x > 0.0); }
        case 1u: { return select(p.alpha, 1.0, x > 0.0); }
        case 2u: { let g = sigmoid(x); return g * (1.0 - g); }
        case 3u: { let t = tanh(clamp(x, -15.0, 15.0)); return 1.0 - t * t; }
        case 5u: { return sigmoid(x); }
        case 6u: { return 2.0 * x; }
        default: { return 1.0; }
    }
}

@compute @workgroup_size(256)
fn forward(@builtin(global_invocation_id) gid: vec3<u32>,
           @builtin(num_workgroups) nwg: vec3<u32>) {
    for (var i = gid.x; i < p.count; i += nwg.x * 256u) {
        out[i] = f(s[i] + p.bias);
    }
}

@compute @workgroup_size(256)
fn backward(@builtin(global_invocation_id) gid: vec3<u32>,
            @builtin(num_workgroups) nwg: vec3<u32>) {
    for (var i = gid.x; i < p.count; i += nwg.x * 256u) {
        out[i] = out[i] * df(s[i] + p.bias);
    }
}
