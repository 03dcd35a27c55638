// gemm: C[M, N] = epilogue(alpha · op(A)[M, K] · op(B)[K, N] (+ beta · C)), every matrix
// row-major with a leading dimension and an element offset, or an operand read straight
// from a tensor by a convolution's geometry (implicit GEMM: no column matrix is built).
//
// Defines (kernels.py prepends them as consts; each set is its own pipeline):
//   BM, BN       the block of C a workgroup computes; TM, TN the outputs per invocation
//   BK           the K step; WG = (BM / TM) · (BN / TN) invocations
//   TRANS_A, TRANS_B   op() transposes
//   A_CONV       A is the im2col matrix of a (batch, cx, cy, cc) tensor, rows (b, u, v),
//                columns k = (jx·JY + jy)·cc + c; with TRANS_A its transpose (the weight
//                gradient colᵀ·ds: M runs over k, K over the rows)
//   PHASED       the input gradient of a strided convolution, one phase (x mod sx,
//                y mod sy) per workgroup z: A is the delta read by the flipped window,
//                B the weights read flipped and transposed (B_WFLIP), C the input gradient
//                written at the phase's positions. No column matrix, no col2im.
//   B_WFLIP      B[(jx, jy, f), c] = W[kx0 + jx·sx, ky0 + jy·sy, c, f] (W is [fx, fy, Z, F])
//   VEC_C        C is bound as vec4 (N, ldc and c_off multiples of 4): vec4 stores
//   EPI          0: alpha, beta; 1: s = alpha·acc, C = f(s + bias[j] + act.bias) (a conv's or
//                dense layer's forward; WRITE_S also stores s); 2: C = alpha·acc · f′ read
//                from the output `aux` of the layer before (f′ folded into the input gradient)
//
// `main`: a workgroup computes BM×BN blocks (looping over blocks, so the grid may be
// capped at 65,535 per dimension), each invocation TM×TN outputs in registers; K is walked
// BK at a time through two workgroup buffers: the next step's tiles are loaded from
// memory into registers while this step's are multiplied, then stored to the other buffer
// (one barrier per step). Global loads run along the direction contiguous in memory, as
// vec4 when the host says it is 16-byte aligned (vec_a / vec_b); blocks wholly inside the
// matrices (plain operands) load without bounds checks. Loads past an edge read 0, stores
// past an edge are skipped, so any M, N, K works.
//
// Split K (workgroup z, not PHASED): split z takes K range [z·k_split, …) and writes its
// partial block at C + z·split_stride (EPI 0, beta 0); gemm_splits.wgsl adds them up.
//
// `direct`: 4×4 outputs per invocation from registers alone (CPU adapters); `small`: one
// invocation per output element (and K range), for shapes a block fits badly (a side of
// 1–3, or K of 1–2). Both take every mode but VEC_C.

struct Params {
    m: u32, n: u32, k: u32,
    lda: u32, ldb: u32, ldc: u32,
    a_off: u32, b_off: u32, c_off: u32,
    alpha: f32, beta: f32,
    k_split: u32, split_stride: u32,
    vec_a: u32, vec_b: u32,
    // convolution geometry (A_CONV, PHASED): samples, the gathered tensor's X, Y, channels,
    // the grid of rows (forward: OX, OY; PHASED: the input gradient's X, Y), the window
    batch: u32, cx: u32, cy: u32, cc: u32, gx: u32, gy: u32,
    fx: u32, fy: u32, sx: u32, sy: u32, px: u32, py: u32,
    // epilogue
    act: u32, act_alpha: f32, act_bias: f32, bias_off: u32, has_bias: u32, aux_off: u32, s_off: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
//!if VEC_C
@group(0) @binding(3) var<storage, read_write> c: array<vec4<f32>>;
//!else
@group(0) @binding(3) var<storage, read_write> c: array<f32>;
//!endif
// The same buffers as A and B, seen as vec4s for the aligned loads.
@group(0) @binding(4) var<storage, read> a4: array<vec4<f32>>;
@group(0) @binding(5) var<storage, read> b4: array<vec4<f32>>;
@group(0) @binding(6) var<storage, read> aux: array<f32>;             // EPI 2: the layer input
@group(0) @binding(7) var<storage, read_write> s_out: array<f32>;     // EPI 1 with WRITE_S

//!include activators

const NONE: u32 = 0xffffffffu;
const BM4: u32 = BM / 4u;
const BN4: u32 = BN / 4u;
const RUNS_A: u32 = BM * BK / 4u;
const RUNS_B: u32 = BN * BK / 4u;
const RA: u32 = (RUNS_A + WG - 1u) / WG;
const RB: u32 = (RUNS_B + WG - 1u) / WG;
const TXN: u32 = BN / TN;  // invocations across a block's columns

// Two buffers of each tile: as_[buf][kk][i4] holds A[4·i4 .. 4·i4 + 3, kk] of the block.
var<workgroup> as_: array<vec4<f32>, 2u * BK * BM4>;
var<workgroup> bs_: array<vec4<f32>, 2u * BK * BN4>;

// ---- the geometry of a convolution operand (one phase of it when PHASED) ----

struct Geo {
    m: u32, k: u32,        // rows and K of this gemm (this phase's)
    gu: u32, gv: u32,      // the grid of gathered rows (b, u, v)
    su: u32, sv: u32,      // a row's step in the gathered tensor per u, v
    ox: i32, oy: i32,      // offset of the window's origin
    dir: i32,              // +1: x = u·su + jx + ox; −1 (PHASED): x = u·su − jx + ox
    jx: u32, jy: u32,      // window extents
    kx0: u32, ky0: u32,    // PHASED: the first kernel tap of the phase
    phx: u32, phy: u32,    // PHASED: the phase
}

fn geo(z: u32) -> Geo {
    var g: Geo;
    g.m = p.m; g.k = p.k;
    g.gu = p.gx; g.gv = p.gy; g.su = p.sx; g.sv = p.sy;
    g.ox = -i32(p.px); g.oy = -i32(p.py); g.dir = 1;
    g.jx = p.fx; g.jy = p.fy; g.kx0 = 0u; g.ky0 = 0u; g.phx = 0u; g.phy = 0u;
    if (PHASED) {
        // Input positions x = u·sx + phx take the taps kx ≡ (x + px) mod sx: kx = kx0 + jx·sx,
        // reading the delta at ox = u + (phx + px) / sx − jx.
        g.phx = z % p.sx; g.phy = z / p.sx;
        g.kx0 = (g.phx + p.px) % p.sx; g.ky0 = (g.phy + p.py) % p.sy;
        g.gu = select(0u, (p.gx - g.phx + p.sx - 1u) / p.sx, p.gx > g.phx);
        g.gv = select(0u, (p.gy - g.phy + p.sy - 1u) / p.sy, p.gy > g.phy);
        g.su = 1u; g.sv = 1u;
        g.ox = i32((g.phx + p.px) / p.sx); g.oy = i32((g.phy + p.py) / p.sy); g.dir = -1;
        g.jx = select(0u, (p.fx - g.kx0 + p.sx - 1u) / p.sx, p.fx > g.kx0);
        g.jy = select(0u, (p.fy - g.ky0 + p.sy - 1u) / p.sy, p.fy > g.ky0);
        g.m = p.batch * g.gu * g.gv;
        g.k = g.jx * g.jy * p.cc;
    }
    return g;
}

// A gathered row r = (b, u, v) where the window's origin lands, and a column kk = (jx, jy, c)
// as the offset it adds: split so that a kernel can decompose each once and combine many.
struct RowG { base: u32, x0: i32, y0: i32 }   // base: the sample's first position (b·cx)
struct KG { ch: u32, dx: i32, dy: i32 }

fn row_geo(g: Geo, r: u32) -> RowG {
    let v = r % g.gv;
    let t = r / g.gv;
    let u = t % g.gu;
    return RowG((t / g.gu) * p.cx, i32(u * g.su) + g.ox, i32(v * g.sv) + g.oy);
}

fn k_geo(g: Geo, kk: u32) -> KG {
    let j = kk / p.cc;
    let jx = j / g.jy;
    return KG(kk % p.cc, g.dir * i32(jx), g.dir * i32(j - jx * g.jy));
}

// Where the gathered tensor holds that element, or NONE for a position in the padding.
fn conv_at2(rg: RowG, kg: KG) -> u32 {
    let x = rg.x0 + kg.dx;
    let y = rg.y0 + kg.dy;
    if (x < 0 || y < 0 || u32(x) >= p.cx || u32(y) >= p.cy) { return NONE; }
    return p.a_off + ((rg.base + u32(x)) * p.cy + u32(y)) * p.cc + kg.ch;
}

fn conv_addr(g: Geo, r: u32, kk: u32) -> u32 {
    return conv_at2(row_geo(g, r), k_geo(g, kk));
}

fn a_load(at: u32) -> f32 {
    if (at == NONE) { return 0.0; }
    return a[at];
}

fn a_load4(at: u32) -> vec4<f32> {
    if (at == NONE) { return vec4<f32>(0.0); }
    return a4[at / 4u];
}

fn conv_at(g: Geo, r: u32, kk: u32) -> f32 {
    let at = conv_addr(g, r, kk);
    if (at == NONE) { return 0.0; }
    return a[at];
}

// B_WFLIP: element (kk = (jx, jy, f), column c) of the flipped, transposed weights.
fn wflip_addr(g: Geo, kk: u32, j: u32) -> u32 {
    let f = kk % p.cc;
    let jj = kk / p.cc;
    let jx = jj / g.jy;
    let jy = jj - jx * g.jy;
    let kx = g.kx0 + jx * p.sx;
    let ky = g.ky0 + jy * p.sy;
    return p.b_off + ((kx * p.fy + ky) * p.n + j) * p.cc + f;
}

// ---- op(A)[i, kk] and op(B)[kk, j], 0 outside ----

fn a_at(g: Geo, i: u32, kk: u32, k_end: u32) -> f32 {
    if (i >= g.m || kk >= k_end) { return 0.0; }
    if (A_CONV) {
        if (TRANS_A) { return conv_at(g, kk, i); }
        return conv_at(g, i, kk);
    }
    if (TRANS_A) { return a[p.a_off + kk * p.lda + i]; }
    return a[p.a_off + i * p.lda + kk];
}

fn b_at(g: Geo, kk: u32, j: u32, k_end: u32) -> f32 {
    if (kk >= k_end || j >= p.n) { return 0.0; }
    if (B_WFLIP) { return b[wflip_addr(g, kk, j)]; }
    if (TRANS_B) { return b[p.b_off + j * p.ldb + kk]; }
    return b[p.b_off + kk * p.ldb + j];
}

// Four values along the direction contiguous in memory: A[i .. i+3, kk] when TRANS_A,
// else A[i, kk .. kk+3]. For a convolution operand that is 4 channels of one position
// (vec_a: the channels a multiple of 4 and the offset 16-byte aligned).
fn a_run(g: Geo, i: u32, kk: u32, k_end: u32) -> vec4<f32> {
    if (TRANS_A) {
        if (p.vec_a == 1u && i + 3u < g.m && kk < k_end) {
            if (A_CONV) {
                let at = conv_addr(g, kk, i);
                if (at == NONE) { return vec4<f32>(0.0); }
                return a4[at / 4u];
            }
            return a4[(p.a_off + kk * p.lda + i) / 4u];
        }
        return vec4<f32>(a_at(g, i, kk, k_end), a_at(g, i + 1u, kk, k_end), a_at(g, i + 2u, kk, k_end), a_at(g, i + 3u, kk, k_end));
    }
    if (p.vec_a == 1u && i < g.m && kk + 3u < k_end) {
        if (A_CONV) {
            let at = conv_addr(g, i, kk);
            if (at == NONE) { return vec4<f32>(0.0); }
            return a4[at / 4u];
        }
        return a4[(p.a_off + i * p.lda + kk) / 4u];
    }
    return vec4<f32>(a_at(g, i, kk, k_end), a_at(g, i, kk + 1u, k_end), a_at(g, i, kk + 2u, k_end), a_at(g, i, kk + 3u, k_end));
}

// B[kk, j .. j+3] (plain, not TRANS_B) or B[kk .. kk+3, j] (TRANS_B, B_WFLIP).
fn b_run(g: Geo, kk: u32, j: u32, k_end: u32) -> vec4<f32> {
    if (!TRANS_B && !B_WFLIP) {
        if (p.vec_b == 1u && j + 3u < p.n && kk < k_end) { return b4[(p.b_off + kk * p.ldb + j) / 4u]; }
        return vec4<f32>(b_at(g, kk, j, k_end), b_at(g, kk, j + 1u, k_end), b_at(g, kk, j + 2u, k_end), b_at(g, kk, j + 3u, k_end));
    }
    if (p.vec_b == 1u && j < p.n && kk + 3u < k_end) {
        if (B_WFLIP) { return b4[wflip_addr(g, kk, j) / 4u]; }
        return b4[(p.b_off + j * p.ldb + kk) / 4u];
    }
    return vec4<f32>(b_at(g, kk, j, k_end), b_at(g, kk + 1u, j, k_end), b_at(g, kk + 2u, j, k_end), b_at(g, kk + 3u, j, k_end));
}

// The same runs for a block wholly inside plain operands: no bounds checks.
fn a_run_inside(i: u32, kk: u32) -> vec4<f32> {
    if (TRANS_A) {
        if (p.vec_a == 1u) { return a4[(p.a_off + kk * p.lda + i) / 4u]; }
        let at = p.a_off + kk * p.lda + i;
        return vec4<f32>(a[at], a[at + 1u], a[at + 2u], a[at + 3u]);
    }
    if (p.vec_a == 1u) { return a4[(p.a_off + i * p.lda + kk) / 4u]; }
    let at = p.a_off + i * p.lda + kk;
    return vec4<f32>(a[at], a[at + 1u], a[at + 2u], a[at + 3u]);
}

fn b_run_inside(kk: u32, j: u32) -> vec4<f32> {
    if (!TRANS_B) {
        if (p.vec_b == 1u) { return b4[(p.b_off + kk * p.ldb + j) / 4u]; }
        let at = p.b_off + kk * p.ldb + j;
        return vec4<f32>(b[at], b[at + 1u], b[at + 2u], b[at + 3u]);
    }
    if (p.vec_b == 1u) { return b4[(p.b_off + j * p.ldb + kk) / 4u]; }
    let at = p.b_off + j * p.ldb + kk;
    return vec4<f32>(b[at], b[at + 1u], b[at + 2u], b[at + 3u]);
}

// ---- the epilogue ----

//!if VEC_C
fn c_get(at: u32) -> f32 { return c[at / 4u][at % 4u]; }
//!else
fn c_get(at: u32) -> f32 { return c[at]; }
//!endif

// The value stored at C[at] (column j) for the product v.
fn epi(at: u32, j: u32, v: f32) -> f32 {
    let x = p.alpha * v;
    if (EPI == 1u) {
        if (WRITE_S) { s_out[at - p.c_off + p.s_off] = x; }
        var y = x + p.act_bias;
        if (p.has_bias == 1u) { y += b[p.bias_off + j]; }
        return act_f(p.act, p.act_alpha, y);
    }
    if (EPI == 2u) {
        return x * act_df_out(p.act, p.act_alpha, aux[at - p.c_off + p.aux_off]);
    }
    if (p.beta != 0.0) { return x + p.beta * c_get(at); }  // beta = 0 never reads C (NaN poison)
    return x;
}

// Where row i of this gemm (this phase's) lives in C.
fn c_row(g: Geo, i: u32) -> u32 {
    if (PHASED) {
        let v = i % g.gv;
        let t = i / g.gv;
        let u = t % g.gu;
        let bb = t / g.gu;
        return ((bb * p.gx + u * p.sx + g.phx) * p.gy + v * p.sy + g.phy) * p.ldc;
    }
    return i * p.ldc;
}

// ---- the tiled kernel ----

var<private> ra: array<vec4<f32>, RA>;
var<private> rb: array<vec4<f32>, RB>;
// A convolution operand: the part of each of this invocation's A runs that stays fixed over
// K, decomposed once per block (its gathered row, or with TRANS_A its im2col column).
var<private> fixed_row: array<RowG, RA>;
var<private> fixed_col: array<KG, RA>;

fn fix_runs(g: Geo, t: u32, row0: u32) {
    for (var s = 0u; s < RA; s++) {
        let q = t + s * WG;
        if (q < RUNS_A) {
            if (TRANS_A) {
                fixed_col[s] = k_geo(g, min(row0 + 4u * (q % BM4), g.m - 1u));
            } else {
                fixed_row[s] = row_geo(g, min(row0 + q / (BK / 4u), g.m - 1u));
            }
        }
    }
}

// Run s of A's tile at K step k0, for a convolution operand (see a_run).
fn conv_run(g: Geo, s: u32, i: u32, kk: u32, k_end: u32) -> vec4<f32> {
    var v = vec4<f32>(0.0);
    if (TRANS_A) {  // A[i .. i+3, kk]: 4 im2col columns of gathered row kk
        if (kk >= k_end) { return v; }
        let rg = row_geo(g, kk);
        if (p.vec_a == 1u && i + 3u < g.m) { return a_load4(conv_at2(rg, fixed_col[s])); }
        for (var e = 0u; e < 4u; e++) {
            if (i + e < g.m) { v[e] = a_load(conv_at2(rg, k_geo(g, i + e))); }
        }
        return v;
    }
    if (i >= g.m) { return v; }  // A[i, kk .. kk+3]
    if (p.vec_a == 1u && kk + 3u < k_end) { return a_load4(conv_at2(fixed_row[s], k_geo(g, kk))); }
    for (var e = 0u; e < 4u; e++) {
        if (kk + e < k_end) { v[e] = a_load(conv_at2(fixed_row[s], k_geo(g, kk + e))); }
    }
    return v;
}

// Load the tiles of K step k0 into registers.
fn fetch(g: Geo, t: u32, row0: u32, col0: u32, k0: u32, k_end: u32, inside: bool) {
    for (var s = 0u; s < RA; s++) {
        let q = t + s * WG;
        if (q < RUNS_A) {
            if (TRANS_A) {
                let kk = q / BM4; let i = row0 + 4u * (q % BM4);
                if (A_CONV) { ra[s] = conv_run(g, s, i, k0 + kk, k_end); }
                else if (inside) { ra[s] = a_run_inside(i, k0 + kk); } else { ra[s] = a_run(g, i, k0 + kk, k_end); }
            } else {
                let r = q / (BK / 4u); let kq = 4u * (q % (BK / 4u));
                if (A_CONV) { ra[s] = conv_run(g, s, row0 + r, k0 + kq, k_end); }
                else if (inside) { ra[s] = a_run_inside(row0 + r, k0 + kq); } else { ra[s] = a_run(g, row0 + r, k0 + kq, k_end); }
            }
        }
    }
    for (var s = 0u; s < RB; s++) {
        let q = t + s * WG;
        if (q < RUNS_B) {
            if (!TRANS_B && !B_WFLIP) {
                let kk = q / BN4; let j = col0 + 4u * (q % BN4);
                if (inside) { rb[s] = b_run_inside(k0 + kk, j); } else { rb[s] = b_run(g, k0 + kk, j, k_end); }
            } else {
                let cj = q / (BK / 4u); let kq = 4u * (q % (BK / 4u));
                if (inside) { rb[s] = b_run_inside(k0 + kq, col0 + cj); } else { rb[s] = b_run(g, k0 + kq, col0 + cj, k_end); }
            }
        }
    }
}

// Store the registers' tiles into workgroup buffer `buf`.
fn stash(t: u32, buf: u32) {
    let ab = buf * BK * BM4;
    for (var s = 0u; s < RA; s++) {
        let q = t + s * WG;
        if (q < RUNS_A) {
            if (TRANS_A) {
                as_[ab + (q / BM4) * BM4 + q % BM4] = ra[s];
            } else {
                let r = q / (BK / 4u); let kq = 4u * (q % (BK / 4u));
                for (var e = 0u; e < 4u; e++) { as_[ab + (kq + e) * BM4 + r / 4u][r % 4u] = ra[s][e]; }
            }
        }
    }
    let bb = buf * BK * BN4;
    for (var s = 0u; s < RB; s++) {
        let q = t + s * WG;
        if (q < RUNS_B) {
            if (!TRANS_B && !B_WFLIP) {
                bs_[bb + (q / BN4) * BN4 + q % BN4] = rb[s];
            } else {
                let cj = q / (BK / 4u); let kq = 4u * (q % (BK / 4u));
                for (var e = 0u; e < 4u; e++) { bs_[bb + (kq + e) * BN4 + cj / 4u][cj % 4u] = rb[s][e]; }
            }
        }
    }
}

@compute @workgroup_size(WG)
fn main(@builtin(local_invocation_index) t: u32,
        @builtin(workgroup_id) wid: vec3<u32>,
        @builtin(num_workgroups) nwg: vec3<u32>) {
    let g = geo(wid.z);
    var k_begin = 0u;
    var k_end = g.k;
    var c_base = p.c_off;
    if (!PHASED) {
        k_begin = wid.z * p.k_split;  // a multiple of BK, so vec4 runs along K stay aligned
        k_end = min(k_begin + p.k_split, p.k);
        c_base = p.c_off + wid.z * p.split_stride;
    }
    let steps = select(0u, (k_end - k_begin + BK - 1u) / BK, k_end > k_begin);
    let blocks_m = (g.m + BM - 1u) / BM;
    let blocks_n = (p.n + BN - 1u) / BN;
    let tx = t % TXN;
    let ty = t / TXN;

    for (var bm = wid.y; bm < blocks_m; bm += nwg.y) {
        for (var bn = wid.x; bn < blocks_n; bn += nwg.x) {
            let row0 = bm * BM;
            let col0 = bn * BN;
            // A block wholly inside plain operands loads without bounds checks (whole K steps).
            let inside = !A_CONV && !B_WFLIP && row0 + BM <= g.m && col0 + BN <= p.n;
            // Explicitly zeroed: naga hoists function variables, so a bare `var` is zeroed
            // once per invocation, not once per block.
            var acc = array<vec4<f32>, TM * TN / 4u>();
            if (A_CONV) { fix_runs(g, t, row0); }
            if (steps > 0u) {
                fetch(g, t, row0, col0, k_begin, k_end, inside && k_begin + BK <= k_end);
                stash(t, 0u);
                workgroupBarrier();
                for (var s = 0u; s < steps; s++) {
                    let cur = s % 2u;
                    let k_next = k_begin + (s + 1u) * BK;
                    if (s + 1u < steps) { fetch(g, t, row0, col0, k_next, k_end, inside && k_next + BK <= k_end); }
                    let ab = cur * BK * BM4 + ty * (TM / 4u);
                    let bb = cur * BK * BN4 + tx * (TN / 4u);
                    for (var kk = 0u; kk < BK; kk++) {
                        var af: array<vec4<f32>, TM / 4u>;
                        var bf: array<vec4<f32>, TN / 4u>;
                        for (var i = 0u; i < TM / 4u; i++) { af[i] = as_[ab + kk * BM4 + i]; }
                        for (var j = 0u; j < TN / 4u; j++) { bf[j] = bs_[bb + kk * BN4 + j]; }
                        for (var i = 0u; i < TM; i++) {
                            let av = af[i / 4u][i % 4u];
                            for (var j = 0u; j < TN / 4u; j++) { acc[i * (TN / 4u) + j] += av * bf[j]; }
                        }
                    }
                    if (s + 1u < steps) { stash(t, 1u - cur); }
                    workgroupBarrier();
                }
            }
            for (var i = 0u; i < TM; i++) {
                let row = row0 + ty * TM + i;
                if (row >= g.m) { break; }
                var base = c_base + row * p.ldc;
                if (PHASED) { base = p.c_off + c_row(g, row); }
                for (var j = 0u; j < TN / 4u; j++) {
                    let col = col0 + tx * TN + 4u * j;
                    if (col >= p.n) { break; }
                    let v = acc[i * (TN / 4u) + j];
                    let at = base + col;
//!if VEC_C
                    c[at / 4u] = vec4<f32>(epi(at, col, v.x), epi(at + 1u, col + 1u, v.y), epi(at + 2u, col + 2u, v.z),
                                           epi(at + 3u, col + 3u, v.w));
//!else
                    for (var q = 0u; q < 4u; q++) {
                        if (col + q >= p.n) { break; }
                        c[at + q] = epi(at + q, col + q, v[q]);
                    }
//!endif
                }
            }
        }
    }
}

// ---- registers only: 4×4 outputs per invocation, no workgroup memory ----
//
// Each invocation reads its 4 rows of op(A) and 4 columns of op(B) as vec4 runs straight
// from memory, 4 K at a time; a workgroup of 8×8 covers a 32×32 block. No barriers: the
// fastest form on a CPU adapter (lavapipe), where barriers cost more than the reuse a
// workgroup tile gives. Same modes, grid, split K and epilogue as main.

//!if VEC_C
//!else
@compute @workgroup_size(64)
fn direct(@builtin(local_invocation_index) t: u32,
          @builtin(workgroup_id) wid: vec3<u32>,
          @builtin(num_workgroups) nwg: vec3<u32>) {
    let g = geo(wid.z);
    var k_begin = 0u;
    var k_end = g.k;
    var c_base = p.c_off;
    if (!PHASED) {
        k_begin = wid.z * p.k_split;
        k_end = min(k_begin + p.k_split, p.k);
        c_base = p.c_off + wid.z * p.split_stride;
    }
    let blocks_m = (g.m + 31u) / 32u;
    let blocks_n = (p.n + 31u) / 32u;
    for (var bm = wid.y; bm < blocks_m; bm += nwg.y) {
        for (var bn = wid.x; bn < blocks_n; bn += nwg.x) {
            let i0 = bm * 32u + 4u * (t / 8u);
            let j0 = bn * 32u + 4u * (t % 8u);
            if (i0 >= g.m || j0 >= p.n) { continue; }
            var acc = array<vec4<f32>, 4>();
            // A convolution operand: the fixed side of each gather decomposed once per block.
            var rg: array<RowG, 4>;   // !TRANS_A: the block's 4 gathered rows
            var kg: array<KG, 4>;     // TRANS_A: the block's 4 output rows (the columns kk of im2col)
            if (A_CONV) {
                for (var r = 0u; r < 4u; r++) {
                    if (TRANS_A) { kg[r] = k_geo(g, min(i0 + r, g.m - 1u)); } else { rg[r] = row_geo(g, min(i0 + r, g.m - 1u)); }
                }
            }
            for (var kk = k_begin; kk < k_end; kk += 4u) {
                // bq[q] = op(B)[kk + q, j0 .. j0 + 3]
                var bq: array<vec4<f32>, 4>;
                if (!TRANS_B && !B_WFLIP) {
                    for (var q = 0u; q < 4u; q++) { bq[q] = b_run(g, kk + q, j0, k_end); }
                } else {
                    var bc: array<vec4<f32>, 4>;
                    for (var c = 0u; c < 4u; c++) { bc[c] = b_run(g, kk, j0 + c, k_end); }
                    for (var q = 0u; q < 4u; q++) { bq[q] = vec4<f32>(bc[0][q], bc[1][q], bc[2][q], bc[3][q]); }
                }
                if (A_CONV && !TRANS_A) {  // rows decomposed above; each K index once
                    var ak: array<vec4<f32>, 4>;  // ak[r] = A[i0 + r, kk .. kk + 3]
                    if (p.vec_a == 1u && kk + 3u < k_end) {
                        let k4 = k_geo(g, kk);
                        for (var r = 0u; r < 4u; r++) { ak[r] = a_load4(conv_at2(rg[r], k4)); }
                    } else {
                        for (var q = 0u; q < 4u; q++) {
                            if (kk + q >= k_end) { break; }
                            let kq = k_geo(g, kk + q);
                            for (var r = 0u; r < 4u; r++) { ak[r][q] = a_load(conv_at2(rg[r], kq)); }
                        }
                    }
                    for (var r = 0u; r < 4u; r++) {
                        if (i0 + r < g.m) { acc[r] += ak[r].x * bq[0] + ak[r].y * bq[1] + ak[r].z * bq[2] + ak[r].w * bq[3]; }
                    }
                } else if (A_CONV) {  // TRANS_A: output rows decomposed above; each gathered row once
                    for (var q = 0u; q < 4u; q++) {
                        if (kk + q >= k_end) { break; }
                        let rq = row_geo(g, kk + q);
                        var ac: vec4<f32>;  // A[i0 .. i0 + 3, kk + q]
                        if (p.vec_a == 1u && i0 + 3u < g.m) {
                            ac = a_load4(conv_at2(rq, kg[0]));
                        } else {
                            for (var r = 0u; r < 4u; r++) { ac[r] = select(0.0, a_load(conv_at2(rq, kg[r])), i0 + r < g.m); }
                        }
                        for (var r = 0u; r < 4u; r++) { acc[r] += ac[r] * bq[q]; }
                    }
                } else if (TRANS_A) {  // runs along rows: ac[q] = op(A)[i0 .. i0 + 3, kk + q]
                    for (var q = 0u; q < 4u; q++) {
                        let ac = a_run(g, i0, kk + q, k_end);
                        for (var r = 0u; r < 4u; r++) { acc[r] += ac[r] * bq[q]; }
                    }
                } else {        // runs along K: ar = op(A)[i0 + r, kk .. kk + 3]
                    for (var r = 0u; r < 4u; r++) {
                        let ar = a_run(g, i0 + r, kk, k_end);
                        acc[r] += ar.x * bq[0] + ar.y * bq[1] + ar.z * bq[2] + ar.w * bq[3];
                    }
                }
            }
            for (var r = 0u; r < 4u; r++) {
                let row = i0 + r;
                if (row >= g.m) { break; }
                var base = c_base + row * p.ldc;
                if (PHASED) { base = p.c_off + c_row(g, row); }
                for (var q = 0u; q < 4u; q++) {
                    if (j0 + q >= p.n) { break; }
                    c[base + j0 + q] = epi(base + j0 + q, j0 + q, acc[r][q]);
                }
            }
        }
    }
}
//!endif

// ---- one invocation per output element (thin shapes) ----
//
// Same parameters and split-K convention as main: here splits = ceil(k / k_split) and item
// g is (e = g mod m·n, split z = g / m·n). PHASED: one item per element of the input
// gradient, its phase read from its position.

//!if VEC_C
//!else
@compute @workgroup_size(64)
fn small(@builtin(global_invocation_id) gid: vec3<u32>,
         @builtin(num_workgroups) nwg: vec3<u32>) {
    if (PHASED) {
        let items = p.batch * p.gx * p.gy * p.n;
        for (var e = gid.x; e < items; e += nwg.x * 64u) {
            let ch = e % p.n;
            let pos = e / p.n;
            let y = pos % p.gy;
            let t = pos / p.gy;
            let x = t % p.gx;
            let bb = t / p.gx;
            let g = geo((y % p.sy) * p.sx + x % p.sx);
            let r = (bb * g.gu + x / p.sx) * g.gv + y / p.sy;
            var acc = 0.0;
            for (var kk = 0u; kk < g.k; kk++) {
                acc += conv_at(g, r, kk) * b[wflip_addr(g, kk, ch)];
            }
            let at = p.c_off + pos * p.ldc + ch;
            c[at] = epi(at, ch, acc);
        }
        return;
    }
    let g = geo(0u);
    let mn = p.m * p.n;
    let splits = (p.k + p.k_split - 1u) / p.k_split;
    let items = mn * splits;
    for (var it = gid.x; it < items; it += nwg.x * 64u) {
        let z = it / mn;
        let e = it % mn;
        let i = e / p.n;
        let j = e % p.n;
        let k_begin = z * p.k_split;
        let k_end = min(k_begin + p.k_split, p.k);
        var acc = 0.0;
        for (var kk = k_begin; kk < k_end; kk++) {
            acc += a_at(g, i, kk, k_end) * b_at(g, kk, j, k_end);
        }
        let at = p.c_off + z * p.split_stride + i * p.ldc + j;
        c[at] = epi(at, j, acc);
    }
}
//!endif
