// gemm: C[M, N] = alpha · op(A)[M, K] · op(B)[K, N] + beta · C, every matrix row-major
// with a leading dimension and an element offset. op() transposes when the pipeline
// constant TRANS_A / TRANS_B is true, so conv forward (NN), weight gradients (TN, beta = 1
// to accumulate over batch chunks) and input gradients (NT) share one kernel.
//
// `main`: a workgroup of 16×16 invocations computes a 64×64 block of C, each invocation a
// 4×4 register block; K is walked 16 at a time through workgroup memory, read back as vec4.
// Global loads run along the direction contiguous in memory (coalesced) and are vec4 loads
// when the host says that direction is 16-byte aligned (vec_a / vec_b) and the 4 values lie
// inside the matrix; otherwise scalar, so any M, N, K works: loads past an edge read 0 and
// stores past an edge are skipped. Blocks are walked in a loop, so the dispatch may be
// capped at 65,535 workgroups per dimension.
//
// Split K: when M×N has too few blocks to fill the GPU (weight gradients: K·F outputs summed
// over every output position of the batch), workgroup z takes K range [z·k_split, …) and
// writes its partial block at C + z·split_stride; gemm_splits.wgsl then sums the partials.

override TRANS_A: bool = false;
override TRANS_B: bool = false;

struct Params {
    m: u32, n: u32, k: u32,
    lda: u32, ldb: u32, ldc: u32,
    a_off: u32, b_off: u32, c_off: u32,
    alpha: f32, beta: f32,
    k_split: u32, split_stride: u32,
    vec_a: u32, vec_b: u32,  // 1: lda, a_off (ldb, b_off) are multiples of 4
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read_write> c: array<f32>;
// The same buffers as A and B, seen as vec4s for the aligned loads.
@group(0) @binding(4) var<storage, read> a4: array<vec4<f32>>;
@group(0) @binding(5) var<storage, read> b4: array<vec4<f32>>;

const BS: u32 = 64u;   // block side (rows of A and columns of B per workgroup)
const BK: u32 = 16u;   // K step
const PAD: u32 = 17u;  // row pitch in vec4s: 16 + 1 spreads the transposing stores over banks

// as_[kk * PAD + i4] holds A[4·i4 .. 4·i4 + 3, kk] of the block; bs_ likewise for B's columns.
var<workgroup> as_: array<vec4<f32>, 272>;
var<workgroup> bs_: array<vec4<f32>, 272>;

fn a_at(i: u32, kk: u32, k_end: u32) -> f32 {
    if (i >= p.m || kk >= k_end) { return 0.0; }
    if (TRANS_A) { return a[p.a_off + kk * p.lda + i]; }
    return a[p.a_off + i * p.lda + kk];
}

fn b_at(kk: u32, j: u32, k_end: u32) -> f32 {
    if (kk >= k_end || j >= p.n) { return 0.0; }
    if (TRANS_B) { return b[p.b_off + j * p.ldb + kk]; }
    return b[p.b_off + kk * p.ldb + j];
}

// A[i .. i+3, kk] (TRANS_A: contiguous) or A[i, kk .. kk+3] (else: contiguous).
fn a_run(i: u32, kk: u32, k_end: u32) -> vec4<f32> {
    if (TRANS_A) {
        if (p.vec_a == 1u && i + 3u < p.m && kk < k_end) { return a4[(p.a_off + kk * p.lda + i) / 4u]; }
        return vec4<f32>(a_at(i, kk, k_end), a_at(i + 1u, kk, k_end), a_at(i + 2u, kk, k_end), a_at(i + 3u, kk, k_end));
    }
    if (p.vec_a == 1u && i < p.m && kk + 3u < k_end) { return a4[(p.a_off + i * p.lda + kk) / 4u]; }
    return vec4<f32>(a_at(i, kk, k_end), a_at(i, kk + 1u, k_end), a_at(i, kk + 2u, k_end), a_at(i, kk + 3u, k_end));
}

// B[kk, j .. j+3] (not TRANS_B: contiguous) or B[kk .. kk+3, j] (TRANS_B: contiguous).
fn b_run(kk: u32, j: u32, k_end: u32) -> vec4<f32> {
    if (!TRANS_B) {
        if (p.vec_b == 1u && j + 3u < p.n && kk < k_end) { return b4[(p.b_off + kk * p.ldb + j) / 4u]; }
        return vec4<f32>(b_at(kk, j, k_end), b_at(kk, j + 1u, k_end), b_at(kk, j + 2u, k_end), b_at(kk, j + 3u, k_end));
    }
    if (p.vec_b == 1u && j < p.n && kk + 3u < k_end) { return b4[(p.b_off + j * p.ldb + kk) / 4u]; }
    return vec4<f32>(b_at(kk, j, k_end), b_at(kk + 1u, j, k_end), b_at(kk + 2u, j, k_end), b_at(kk + 3u, j, k_end));
}

@compute @workgroup_size(16, 16)
fn main(@builtin(local_invocation_index) t: u32,
        @builtin(local_invocation_id) lid: vec3<u32>,
        @builtin(workgroup_id) wid: vec3<u32>,
        @builtin(num_workgroups) nwg: vec3<u32>) {
    let blocks_m = (p.m + BS - 1u) / BS;
    let blocks_n = (p.n + BS - 1u) / BS;
    let k_begin = wid.z * p.k_split;  // a multiple of 16, so vec4 runs along K stay aligned
    let k_end = min(k_begin + p.k_split, p.k);
    let c_base = p.c_off + wid.z * p.split_stride;

    for (var bm = wid.y; bm < blocks_m; bm += nwg.y) {
        for (var bn = wid.x; bn < blocks_n; bn += nwg.x) {
            let row0 = bm * BS;
            let col0 = bn * BS;
            var acc = array<vec4<f32>, 4>();  // explicit: re-zeroed for every block
            for (var k0 = k_begin; k0 < k_end; k0 += BK) {
                // Each invocation loads one run of 4 contiguous values of each tile.
                if (TRANS_A) {  // 4 rows at one k: stored as they are
                    let i4 = t % 16u; let kk = t / 16u;
                    as_[kk * PAD + i4] = a_run(row0 + 4u * i4, k0 + kk, k_end);
                } else {        // 4 k of one row: scattered over 4 vec4s
                    let r = t / 4u; let kq = 4u * (t % 4u);
                    let v = a_run(row0 + r, k0 + kq, k_end);
                    for (var q = 0u; q < 4u; q++) { as_[(kq + q) * PAD + r / 4u][r % 4u] = v[q]; }
                }
                if (!TRANS_B) { // 4 columns at one k
                    let j4 = t % 16u; let kk = t / 16u;
                    bs_[kk * PAD + j4] = b_run(k0 + kk, col0 + 4u * j4, k_end);
                } else {        // 4 k of one column
                    let cj = t / 4u; let kq = 4u * (t % 4u);
                    let v = b_run(k0 + kq, col0 + cj, k_end);
                    for (var q = 0u; q < 4u; q++) { bs_[(kq + q) * PAD + cj / 4u][cj % 4u] = v[q]; }
                }
                workgroupBarrier();
                for (var kk = 0u; kk < BK; kk++) {
                    let av = as_[kk * PAD + lid.y];
                    let bv = bs_[kk * PAD + lid.x];
                    acc[0] += av.x * bv;
                    acc[1] += av.y * bv;
                    acc[2] += av.z * bv;
                    acc[3] += av.w * bv;
                }
                workgroupBarrier();
            }
            for (var r = 0u; r < 4u; r++) {
                let i = row0 + 4u * lid.y + r;
                if (i >= p.m) { break; }
                for (var q = 0u; q < 4u; q++) {
                    let j = col0 + 4u * lid.x + q;
                    if (j >= p.n) { break; }
                    let at = c_base + i * p.ldc + j;
                    // beta = 0 must not read C: it may hold garbage (or NaN poison).
                    var v = p.alpha * acc[r][q];
                    if (p.beta != 0.0) { v += p.beta * c[at]; }
                    c[at] = v;
                }
            }
        }
    }
}

// Thin shapes (one side under a few columns, or K of 1–2), where a 64×64×16 tile would be
// mostly padding: one invocation per (output element, K range), work items flattened so no
// lane idles however few outputs there are. Same parameters and split-K convention as main;
// here splits = ceil(k / k_split) and item g is (e = g mod m·n, split z = g / m·n).
@compute @workgroup_size(64)
fn small(@builtin(global_invocation_id) gid: vec3<u32>,
         @builtin(num_workgroups) nwg: vec3<u32>) {
    let mn = p.m * p.n;
    let splits = (p.k + p.k_split - 1u) / p.k_split;
    let items = mn * splits;
    for (var g = gid.x; g < items; g += nwg.x * 64u) {
        let z = g / mn;
        let e = g % mn;
        let i = e / p.n;
        let j = e % p.n;
        let k_begin = z * p.k_split;
        let k_end = min(k_begin + p.k_split, p.k);
        var acc = 0.0;
        for (var kk = k_begin; kk < k_end; kk++) {
            acc += a_at(i, kk, k_end) * b_at(kk, j, k_end);
        }
        let at = p.c_off + z * p.split_stride + i * p.ldc + j;
        var v = p.alpha * acc;
        if (p.beta != 0.0) { v += p.beta * c[at]; }
        c[at] = v;
    }
}
