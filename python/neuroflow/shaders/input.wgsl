// A batch's input as the engine computes with it, converted on the GPU from what was
// uploaded (the raw batch, whole, as 32-bit words): uint8 pixels scaled by f32(1/255), and
// with input normalisation (x − mean[c]) · inv_std[c] per channel c (the last dimension),
// inv_std = f32(1/std) computed in f64 on the host: the CPU engine's f32 arithmetic.
// One pass writes a chunk's `count` values from element `src_off` of the batch.

struct Params { count: u32, src_off: u32, channels: u32, bytes: u32, scale: f32, norm: u32 }

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> src: array<u32>;      // uint8 (4 a word) or f32 bits
@group(0) @binding(2) var<storage, read> stats: array<f32>;    // mean[C], then inv_std[C]
@group(0) @binding(3) var<storage, read_write> x: array<f32>;

@compute @workgroup_size(256)
fn convert(@builtin(global_invocation_id) gid: vec3<u32>,
           @builtin(num_workgroups) nwg: vec3<u32>) {
    for (var i = gid.x; i < p.count; i += nwg.x * 256u) {
        let e = p.src_off + i;
        var v: f32;
        if (p.bytes == 1u) {
            v = f32((src[e / 4u] >> (8u * (e % 4u))) & 0xffu) * p.scale;
        } else {
            v = bitcast<f32>(src[e]);
        }
        if (p.norm == 1u) {
            let ch = e % p.channels;
            v = (v - stats[ch]) * stats[p.channels + ch];
        }
        x[i] = v;
    }
}
