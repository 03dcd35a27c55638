// The activators of docs/engine.md, shared by every kernel that applies one (included with
// `//!include activators`): f(x) and f′(x) for x = s + bias, with the activator's id from
// ids.json (the ACT_* constants generated when the shader loads) and its alpha.

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

// erfc(z) for z ≥ 0 with a fractional error below 1.2e-7 everywhere (Numerical Recipes'
// Chebyshev fit erfcc, W. H. Press et al.), so the tails keep their relative accuracy.
fn erfc_pos(z: f32) -> f32 {
    let t = 1.0 / (1.0 + 0.5 * z);
    let poly = -1.26551223 + t * (1.00002368 + t * (0.37409196 + t * (0.09678418 + t * (-0.18628806
        + t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 + t * (-0.82215223 + t * 0.17087277))))))));
    return t * exp(-z * z + poly);
}

// Φ(x), the standard normal CDF: ½·erfc(−x/√2).
fn normal_cdf(x: f32) -> f32 {
    let h = 0.5 * erfc_pos(abs(x) * 0.70710678118654752);
    return select(h, 1.0 - h, x > 0.0);
}

fn act_f(id: u32, alpha: f32, x: f32) -> f32 {
    switch id {
        case ACT_RELU: { return max(x, 0.0); }
        case ACT_LEAKY_RELU: { return select(alpha * x, x, x > 0.0); }
        case ACT_SIGMOID: { return sigmoid(x); }
        // tanh(±15) is ±1 in f32; clamping keeps drivers' exp-based tanh from overflowing.
        case ACT_TANH: { return tanh(clamp(x, -15.0, 15.0)); }
        case ACT_SOFTPLUS: { return max(x, 0.0) + log1p(exp(-abs(x))); }
        case ACT_SQUARE: { return x * x; }
        case ACT_GELU: { return x * normal_cdf(x); }
        default: { return x; }  // ACT_LINEAR
    }
}

fn act_df(id: u32, alpha: f32, x: f32) -> f32 {
    switch id {
        case ACT_RELU: { return select(0.0, 1.0, x > 0.0); }
        case ACT_LEAKY_RELU: { return select(alpha, 1.0, x > 0.0); }
        case ACT_SIGMOID: { let g = sigmoid(x); return g * (1.0 - g); }
        case ACT_TANH: { let t = tanh(clamp(x, -15.0, 15.0)); return 1.0 - t * t; }
        case ACT_SOFTPLUS: { return sigmoid(x); }
        case ACT_SQUARE: { return 2.0 * x; }
        // Φ(x) + x·φ(x); φ(x) = exp(−x²/2)/√(2π) underflows to 0 in the tails, as it should.
        case ACT_GELU: { return normal_cdf(x) + x * 0.39894228040143268 * exp(-0.5 * x * x); }
        default: { return 1.0; }  // ACT_LINEAR
    }
}

// f′ from the activator's output a = f(x), for the activators where it follows exactly
// (engine's FROM_OUTPUT: relu, leaky_relu with α ≥ 0, sigmoid, tanh, linear): used where
// the next layer folds this layer's f′ into its input gradient.
fn act_df_out(id: u32, alpha: f32, y: f32) -> f32 {
    switch id {
        case ACT_RELU: { return select(0.0, 1.0, y > 0.0); }
        case ACT_LEAKY_RELU: { return select(alpha, 1.0, y > 0.0); }
        case ACT_SIGMOID: { return y * (1.0 - y); }
        case ACT_TANH: { return 1.0 - y * y; }
        default: { return 1.0; }  // ACT_LINEAR
    }
}
