// Every parameter tensor's update in one dispatch: workgroup row y is tensor y of the
// segment table (offset, size, lr_mult, wd_mult), its elements walked by the x grid. The
// rule's id is ids.json's (UPDATE_* constants); for tensor weights w, reduced gradient g,
// α = lr·lr_mult, λ = weight_decay·wd_mult, and t the step count with this update:
//   vanilla   g′ = g + λw;  w −= α·g′
//   momentum  g′ = g + λw;  M = μM − α·g′;  w += M                       (NeuroFlow's form)
//   nesterov  g′ = g + λw;  M′ = μM − α·g′; w += −μM + (1 + μ)M′; M = M′
//   adam      g′ = g + λw;  m = β1·m + (1 − β1)·g′; v = β2·v + (1 − β2)·g′²;
//             w −= α·(m / (1 − β1ᵗ)) / (√(v / (1 − β2ᵗ)) + ε)
//   adamw     as adam with g′ = g, after w −= α·λ·w (decoupled)
//   muon      nesterov with Muon's fallback μ (its filters are muon.wgsl's; here their
//             lr_mult is 0)
// The learning rate and the bias corrections 1 − βᵗ (computed on the host in f64) are a
// uniform written before each step, so nothing is recreated when they change.

struct Params { rule: u32, mu: f32, beta1: f32, beta2: f32, eps: f32, weight_decay: f32 }
struct Rate { lr: f32, step: u32, bc1: f32, bc2: f32 }

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<uniform> rate: Rate;
@group(0) @binding(2) var<storage, read_write> w: array<f32>;
@group(0) @binding(3) var<storage, read> g: array<f32>;
@group(0) @binding(4) var<storage, read_write> s0: array<f32>;  // momentum, or Adam's m
@group(0) @binding(5) var<storage, read_write> s1: array<f32>;  // Adam's v
@group(0) @binding(6) var<storage, read> seg: array<vec4<u32>>;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>,
        @builtin(workgroup_id) wid: vec3<u32>,
        @builtin(num_workgroups) nwg: vec3<u32>) {
    let s = seg[wid.y];
    if (bitcast<f32>(s.z) == 0.0) { return; }  // frozen (lr_mult 0): w and its slots stay
    let lr = rate.lr * bitcast<f32>(s.z);
    let wd = p.weight_decay * bitcast<f32>(s.w);
    for (var e = gid.x; e < s.y; e += nwg.x * 256u) {
        let i = s.x + e;
        var wi = w[i];
        let gi = g[i];
        switch p.rule {
            case UPDATE_VANILLA: {
                wi -= lr * (gi + wd * wi);
            }
            case UPDATE_MOMENTUM: {
                let m1 = p.mu * s0[i] - lr * (gi + wd * wi);
                s0[i] = m1;
                wi += m1;
            }
            case UPDATE_NESTEROV, UPDATE_MUON: {
                let m0 = s0[i];
                let m1 = p.mu * m0 - lr * (gi + wd * wi);
                wi += -p.mu * m0 + (1.0 + p.mu) * m1;
                s0[i] = m1;
            }
            default: {  // UPDATE_ADAM, UPDATE_ADAMW
                var gp = gi;
                if (p.rule == UPDATE_ADAMW) { wi -= lr * wd * wi; } else { gp += wd * wi; }
                let m = p.beta1 * s0[i] + (1.0 - p.beta1) * gp;
                let v = p.beta2 * s1[i] + (1.0 - p.beta2) * gp * gp;
                s0[i] = m;
                s1[i] = v;
                wi -= lr * (m / rate.bc1) / (sqrt(v / rate.bc2) + p.eps);
            }
        }
        w[i] = wi;
    }
}
