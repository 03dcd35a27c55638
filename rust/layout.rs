//! Shapes, parameters and state of every layer: the one place they are computed.
//! `resolve` fills them into a spec (docs/engine.md); Python's layer classes, the GPU
//! engine and this engine all take them from here.

use crate::error::{Error, Result};
use crate::spec::{Kind, LayerSpec, NetSpec, ParamSpec, StateSpec};
use std::collections::HashSet;

/// Output size of a window of `field` sliding by `stride` over `size + 2·pad`; `exact`
/// (convolutions, as NeuroFlow) refuses a stride that does not divide, otherwise the
/// last partial window is dropped (pooling, as PyTorch).
fn window_out(axis: &str, size: usize, pad: usize, field: usize, stride: usize, exact: bool) -> std::result::Result<usize, String> {
    let big = || format!("the padding {pad} on {axis} is too large");
    let padded = size.checked_add(pad.checked_mul(2).ok_or_else(big)?).ok_or_else(big)?;
    if field > padded {
        return Err(format!("the field {field} on {axis} is larger than the padded input {size} + 2·{pad} = {padded}"));
    }
    let span = padded - field;
    if exact && span % stride != 0 {
        return Err(format!("on {axis}, {size} + 2·{pad} − {field} = {span} is not divisible by the stride {stride}"));
    }
    Ok(span / stride + 1)
}

/// A nearby padding or stride that makes (size + 2·pad − field) divisible by the stride.
/// Bounded work whatever the sizes (the divisor search looks near the stride only).
pub fn suggest(size: usize, pad: usize, field: usize, stride: usize) -> String {
    let fits = |p: usize| {
        let padded = size as u128 + 2 * p as u128;
        padded >= field as u128 && (padded - field as u128) % stride as u128 == 0
    };
    // Each search looks at most 10⁴ candidates: the message must come back in bounded time
    // whatever the sizes (a stride of 2⁴⁰ would otherwise take hours).
    let mut ideas = Vec::new();
    if let Some(p) = (pad..=pad.saturating_add(stride)).take(10_000).find(|&p| fits(p)) {
        ideas.push(format!("padding {p}"));
    }
    if let Some(p) = (0..pad).rev().take(stride.min(10_000)).find(|&p| fits(p)) {
        ideas.push(format!("padding {p}"));
    }
    let padded = size as u128 + 2 * pad as u128;
    if padded >= field as u128 {
        let span = padded - field as u128;
        let s = stride as u128;
        let best = if span == 0 {
            Some(1)
        } else {
            // the divisor of span closest to the stride, looking at most 10⁴ either side
            (0..=10_000u128).find_map(|d| {
                [s.checked_sub(d), s.checked_add(d)].into_iter().flatten().find(|&c| c >= 1 && c <= span && span % c == 0)
            })
        };
        if let Some(b) = best {
            ideas.push(format!("stride {b}"));
        }
    }
    if ideas.is_empty() {
        "a smaller field".into()
    } else {
        ideas.join(" or ")
    }
}

fn spatial(dim: &[usize], what: &str) -> Result<[usize; 3]> {
    match *dim {
        [x, y, z] => Ok([x, y, z]),
        _ => Err(Error::new(format!("{what} needs a 3-D input (X, Y, Z) but gets {}", shape_text(dim)))),
    }
}

pub fn shape_text(dim: &[usize]) -> String {
    match dim {
        [d] => format!("({d},)"),
        _ => format!("({})", dim.iter().map(|v| v.to_string()).collect::<Vec<_>>().join(", ")),
    }
}

/// The output of a convolution or pooling window over a 3-D input.
fn windows(dim: [usize; 3], pad: [usize; 2], field: [usize; 2], stride: [usize; 2], exact: bool, what: &str) -> Result<[usize; 2]> {
    if field.contains(&0) || stride.contains(&0) {
        crate::bail!("{what}: field and stride must be ≥ 1, got field {field:?}, stride {stride:?}");
    }
    let mut out = [0; 2];
    for (a, axis) in ["X", "Y"].iter().enumerate() {
        out[a] = window_out(axis, dim[a], pad[a], field[a], stride[a], exact).map_err(|e| {
            let hint = if exact { format!("; try {}", suggest(dim[a], pad[a], field[a], stride[a])) } else { String::new() };
            Error::new(format!("{what} with dim_in {}: {e}{hint}", shape_text(&dim)))
        })?;
    }
    Ok(out)
}

fn checked_size(dim: &[usize], what: &str) -> Result<usize> {
    dim.iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .filter(|&n| n <= isize::MAX as usize / 8)
        .ok_or_else(|| Error::new(format!("{what}: the shape {} is too large to hold", shape_text(dim))))
}

fn param(name: &str, shape: Vec<usize>, l: &LayerSpec) -> ParamSpec {
    ParamSpec {
        name: name.into(),
        shape,
        lr_mult: l.lr_mult.get(name).copied().unwrap_or(1.0),
        wd_mult: l.wd_mult.get(name).copied().unwrap_or(1.0),
    }
}

/// Fill in `l`'s dim_in, dim_out, params and state for input `dim_in`. `what` names the
/// layer in messages, e.g. `layout[3] (c3)`.
pub fn resolve_layer(l: &mut LayerSpec, dim_in: &[usize], what: &str) -> Result<()> {
    if dim_in.is_empty() || dim_in.contains(&0) {
        crate::bail!("{what}: the input shape {} must be positive", shape_text(dim_in));
    }
    checked_size(dim_in, what)?;
    let size: usize = dim_in.iter().product();
    let channels = *dim_in.last().unwrap();
    let mut params = Vec::new();
    let mut state = Vec::new();
    let dim_out: Vec<usize> = match &mut l.kind {
        Kind::Conv { padding, field, stride, filters, bias, algorithm, .. } => {
            let d = spatial(dim_in, what)?;
            if *filters == 0 {
                crate::bail!("{what}: filters must be ≥ 1");
            }
            if !crate::conv::ALGORITHMS.contains(&algorithm.as_str()) {
                crate::bail!("{what}: algorithm must be one of {:?}, got {algorithm:?}", crate::conv::ALGORITHMS);
            }
            let [ox, oy] = windows(d, *padding, *field, *stride, true, what)?;
            let w = vec![field[0], field[1], d[2], *filters];
            checked_size(&w, what)?;
            let (f, with_bias) = (*filters, *bias);
            params.push(w);
            if with_bias {
                params.push(vec![f]);
            }
            vec![ox, oy, f]
        }
        Kind::Dense { neurons, bias, .. } => {
            if *neurons == 0 {
                crate::bail!("{what}: neurons must be ≥ 1");
            }
            let w = vec![size, *neurons];
            checked_size(&w, what)?;
            let (o, with_bias) = (*neurons, *bias);
            params.push(w);
            if with_bias {
                params.push(vec![o]);
            }
            vec![o]
        }
        Kind::Batchnorm { momentum, eps, scale, shift, .. } => {
            if !(0.0..=1.0).contains(momentum) {
                crate::bail!("{what}: momentum must be in [0, 1], got {momentum}");
            }
            if !(eps.is_finite() && *eps > 0.0) {
                crate::bail!("{what}: eps must be a positive number, got {eps}");
            }
            if *scale {
                params.push(vec![channels]);
            }
            if *shift {
                params.push(vec![channels]);
            }
            state.push(("running_mean", vec![channels], 0.0));
            state.push(("running_var", vec![channels], 1.0));
            dim_in.to_vec()
        }
        Kind::Maxpool { field, stride, padding } | Kind::Avgpool { field, stride, padding } => {
            let d = spatial(dim_in, what)?;
            for a in 0..2 {
                if padding[a] > field[a] / 2 {
                    crate::bail!("{what}: padding {:?} must be at most half the field {:?}", padding, field);
                }
            }
            let [ox, oy] = windows(d, *padding, *field, *stride, false, what)?;
            vec![ox, oy, d[2]]
        }
        Kind::GlobalAvgPool {} => {
            let d = spatial(dim_in, what)?;
            vec![d[2]]
        }
        Kind::Dropout { rate } => {
            if !(0.0..1.0).contains(rate) {
                crate::bail!("{what}: rate must be in [0, 1), got {rate}");
            }
            dim_in.to_vec()
        }
        Kind::Residual { layers, .. } => {
            if layers.is_empty() {
                crate::bail!("{what}: a residual needs at least one inner layer");
            }
            let out = resolve_layers(layers, dim_in, &format!("{what}.layers"))?;
            if out != dim_in {
                crate::bail!(
                    "{what}: the inner layers change the shape {} into {}; a residual adds its input to their output, so they must keep it",
                    shape_text(dim_in),
                    shape_text(&out)
                );
            }
            dim_in.to_vec()
        }
    };
    let names: &[&str] = match &l.kind {
        Kind::Conv { .. } | Kind::Dense { .. } => &["weight", "bias"],
        Kind::Batchnorm { scale: false, .. } => &["shift"],
        Kind::Batchnorm { .. } => &["scale", "shift"],
        _ => &[],
    };
    l.params = params.into_iter().zip(names).map(|(shape, name)| param(name, shape, l)).collect();
    for key in l.lr_mult.keys().chain(l.wd_mult.keys()) {
        if !l.params.iter().any(|p| &p.name == key) {
            crate::bail!("{what}: lr_mult/wd_mult name {key:?}, which is not a parameter of this layer");
        }
    }
    for m in l.lr_mult.values().chain(l.wd_mult.values()) {
        if !(m.is_finite() && *m >= 0.0) {
            crate::bail!("{what}: lr_mult and wd_mult must be numbers ≥ 0, got {m}");
        }
    }
    l.state = state.into_iter().map(|(name, shape, init)| StateSpec { name: name.into(), shape, init }).collect();
    checked_size(&dim_out, what)?;
    l.dim_in = dim_in.to_vec();
    l.dim_out = dim_out;
    Ok(())
}

/// Resolve a chain of layers from `dim_in`; returns the last output shape.
fn resolve_layers(layers: &mut [LayerSpec], dim_in: &[usize], path: &str) -> Result<Vec<usize>> {
    let mut names = HashSet::new();
    let mut dim = dim_in.to_vec();
    for (i, l) in layers.iter_mut().enumerate() {
        let what = format!("{path}[{i}] ({})", l.name);
        if l.name.is_empty() || l.name.contains('.') {
            crate::bail!("{what}: a layer name must be non-empty and without '.', got {:?}", l.name);
        }
        if !names.insert(l.name.clone()) {
            crate::bail!("{what}: the name {:?} is used twice", l.name);
        }
        resolve_layer(l, &dim, &what)?;
        dim = l.dim_out.clone();
    }
    Ok(dim)
}

/// Resolve a whole spec: every layer's shapes, parameters and state, and the top-level
/// settings checked.
pub fn resolve(mut spec: NetSpec) -> Result<NetSpec> {
    if spec.dtype != "f32" && spec.dtype != "f64" {
        crate::bail!("dtype: expected \"f32\" or \"f64\", got {:?}", spec.dtype);
    }
    if spec.layers.is_empty() {
        crate::bail!("spec: a network needs at least one layer");
    }
    if !(spec.input.len() == 1 || spec.input.len() == 3) {
        crate::bail!("spec: input must be [X, Y, Z] or [D], got {:?}", spec.input);
    }
    let input = spec.input.clone();
    if let Some(norm) = &spec.input_norm {
        let c = *input.last().unwrap_or(&0);
        if norm.mean.len() != c || norm.std.len() != c {
            crate::bail!("input_norm: expected {c} means and {c} standard deviations (one per input channel), got {} and {}", norm.mean.len(), norm.std.len());
        }
        if norm.mean.iter().any(|v| !v.is_finite()) || norm.std.iter().any(|v| !(v.is_finite() && *v > 0.0)) {
            crate::bail!("input_norm: means must be finite and standard deviations positive");
        }
    }
    resolve_layers(&mut spec.layers, &input, "layout")?;
    spec.loss.check()?;
    spec.update.check()?;
    Ok(spec)
}

/// A spec's JSON, resolved, as JSON.
pub fn resolve_json(s: &str) -> Result<String> {
    Ok(resolve(NetSpec::from_json(s)?)?.to_json())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggestion_is_quick_for_huge_sizes() {
        let t = std::time::Instant::now();
        let s = suggest(1_000_000_000_003, 0, 3, 3);
        assert!(t.elapsed().as_secs_f64() < 0.5, "{s}");
        assert!(s.contains("padding 1"), "{s}");
        assert_eq!(suggest(10, 0, 3, 3), "padding 1 or stride 1");
        let t = std::time::Instant::now();
        let s = suggest(1 << 41, 1 << 40, 3, (1 << 40) + 1);
        assert!(t.elapsed().as_secs_f64() < 0.5, "{s}");
    }

    #[test]
    fn shapes_of_every_kind() {
        let json = r#"{"dtype": "f64", "input": [9, 8, 3], "loss": {"name": "squared_error"}, "update": {"name": "vanilla"},
            "reduction": "sum", "layers": [
            {"kind": "conv", "name": "c0", "padding": [1, 1], "field": [3, 3], "stride": [1, 1], "filters": 4, "bias": true,
             "activator": {"name": "relu"}},
            {"kind": "batchnorm", "name": "bn", "momentum": 0.1, "eps": 1e-5, "scale": false},
            {"kind": "maxpool", "name": "mp", "field": [2, 2], "stride": [2, 2]},
            {"kind": "residual", "name": "res", "layers": [
               {"kind": "conv", "name": "c", "padding": [1, 1], "field": [3, 3], "stride": [1, 1], "filters": 4, "activator": {"name": "gelu"}}]},
            {"kind": "avgpool", "name": "ap", "field": [3, 3], "stride": [1, 1], "padding": [1, 1]},
            {"kind": "global_avg_pool", "name": "gap"},
            {"kind": "dropout", "name": "dr", "rate": 0.25},
            {"kind": "dense", "name": "d", "neurons": 5, "activator": {"name": "linear"}}]}"#;
        let s = resolve(NetSpec::from_json(json).unwrap()).unwrap();
        let dims: Vec<_> = s.layers.iter().map(|l| l.dim_out.clone()).collect();
        assert_eq!(dims, vec![vec![9, 8, 4], vec![9, 8, 4], vec![4, 4, 4], vec![4, 4, 4], vec![4, 4, 4], vec![4], vec![4], vec![5]]);
        let p: Vec<_> = s.walk().iter().flat_map(|l| l.params.iter().map(|p| (p.name.clone(), p.shape.clone()))).collect();
        assert_eq!(
            p,
            vec![
                ("weight".into(), vec![3, 3, 3, 4]),
                ("bias".into(), vec![4]),
                ("shift".into(), vec![4]),
                ("weight".into(), vec![3, 3, 4, 4]),
                ("weight".into(), vec![4, 5]),
            ]
        );
        assert_eq!(s.layers[1].state.len(), 2);
    }

    #[test]
    fn bad_layouts_name_the_layer() {
        let base = |layers: &str| {
            format!(r#"{{"dtype": "f64", "input": [6, 6, 2], "loss": {{"name": "squared_error"}}, "update": {{"name": "vanilla"}}, "reduction": "sum", "layers": [{layers}]}}"#)
        };
        let err = |layers: &str| resolve(NetSpec::from_json(&base(layers)).unwrap()).unwrap_err().0;
        let e = err(r#"{"kind": "maxpool", "name": "mp", "field": [7, 7], "stride": [7, 7]}"#);
        assert!(e.contains("layout[0] (mp)") && e.contains("larger than the padded input"), "{e}");
        let e = err(r#"{"kind": "residual", "name": "r", "layers": [{"kind": "maxpool", "name": "m", "field": [2, 2], "stride": [2, 2]}]}"#);
        assert!(e.contains("layout[0] (r)") && e.contains("must keep it"), "{e}");
        let e = err(r#"{"kind": "dropout", "name": "d", "rate": 1.0}"#);
        assert!(e.contains("rate must be in [0, 1)"), "{e}");
        let e = err(r#"{"kind": "global_avg_pool", "name": "g"}, {"kind": "maxpool", "name": "m", "field": [2, 2], "stride": [2, 2]}"#);
        assert!(e.contains("layout[1] (m)") && e.contains("needs a 3-D input"), "{e}");
        let e = err(r#"{"kind": "dropout", "name": "d", "rate": 0.1}, {"kind": "dropout", "name": "d", "rate": 0.1}"#);
        assert!(e.contains("used twice"), "{e}");
    }
}

#[cfg(test)]
mod strict_tests {
    use crate::spec::NetSpec;

    /// Unknown fields anywhere in a spec are refused (a misspelt option is no default).
    #[test]
    fn unknown_fields_are_refused() {
        let spec = |top: &str, layer: &str, act: &str| {
            format!(
                r#"{{"dtype": "f64", "input": [4, 4, 2], "loss": {{"name": "squared_error"}}, "update": {{"name": "momentum", "mu": 0.9}},
                "reduction": "sum"{top}, "layers": [{{"kind": "conv", "name": "c", "padding": [0, 0], "field": [3, 3], "stride": [1, 1],
                "filters": 2, "activator": {{"name": "relu"{act}}}{layer}}}, {{"kind": "dense", "name": "d", "neurons": 3, "activator": {{"name": "linear"}}}}]}}"#
            )
        };
        assert!(NetSpec::from_json(&spec("", "", "")).is_ok());
        for (top, layer, act) in [(r#", "sed": 1"#, "", ""), ("", r#", "filterz": 3"#, ""), ("", "", r#", "alpah": 0.1"#)] {
            let e = NetSpec::from_json(&spec(top, layer, act)).unwrap_err().0;
            assert!(e.contains("unknown field"), "{e}");
        }
        let e = NetSpec::from_json(&spec("", "", "").replace(r#""mu": 0.9"#, r#""mu": 0.9, "nu": 1"#)).unwrap_err().0;
        assert!(e.contains("unknown field"), "{e}");
    }
}
