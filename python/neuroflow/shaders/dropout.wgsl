// Dropout (train mode): y = x·keep/(1 − rate), keep = bits(i) ≥ ⌊rate·2³²⌋ for the element's
// index i = n·D + j in the whole batch (`base` is the index of this chunk's first element),
// with docs/engine.md's hash, bit for bit the CPU and NumPy engines' masks:
//   fmix(h) = murmur3's fmix32
//   key     = fmix(fmix(fmix(fmix(seed_lo) ^ seed_hi) ^ step) ^ uid)
//   bits(i) = fmix(key ^ fmix(i))
// `step` (the engine's update count) comes from the per-call uniform, so masks change
// every step without re-recording anything. Backward: dx = d·keep/(1 − rate), the same mask.

struct Params {
    count: u32, base: u32, seed_lo: u32, seed_hi: u32,
    uid: u32, threshold: u32, scale: f32,
}
struct Rate { lr: f32, step: u32, bc1: f32, bc2: f32 }

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<uniform> rate: Rate;
@group(0) @binding(2) var<storage, read> src: array<f32>;        // forward: x; backward: d
@group(0) @binding(3) var<storage, read_write> out: array<f32>;  // forward: y; backward: dx

fn fmix(h0: u32) -> u32 {
    var h = h0;
    h ^= h >> 16u;
    h *= 0x85ebca6bu;
    h ^= h >> 13u;
    h *= 0xc2b2ae35u;
    h ^= h >> 16u;
    return h;
}

fn apply(gid: vec3<u32>, nwg: vec3<u32>) {
    let key = fmix(fmix(fmix(fmix(p.seed_lo) ^ p.seed_hi) ^ rate.step) ^ p.uid);
    for (var e = gid.x; e < p.count; e += nwg.x * 256u) {
        let keep = fmix(key ^ fmix(p.base + e)) >= p.threshold;
        out[e] = select(0.0, src[e] * p.scale, keep);
    }
}

@compute @workgroup_size(256)
fn forward(@builtin(global_invocation_id) gid: vec3<u32>,
           @builtin(num_workgroups) nwg: vec3<u32>) {
    apply(gid, nwg);
}

@compute @workgroup_size(256)
fn backward(@builtin(global_invocation_id) gid: vec3<u32>,
            @builtin(num_workgroups) nwg: vec3<u32>) {
    apply(gid, nwg);
}
