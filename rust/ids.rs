//! The names shared with Python and WGSL come from one table, python/neuroflow/ids.json;
//! this test fails if the Rust enums disagree with it (names, order, count).

use crate::activator::ActKind;
use crate::loss::LossKind;
use crate::optim::Update;
use crate::spec::{Kind, NetSpec, Reduction};

fn table() -> serde_json::Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/python/neuroflow/ids.json");
    serde_json::from_str(&std::fs::read_to_string(path).expect("ids.json")).expect("ids.json is JSON")
}

fn names(list: &str) -> Vec<String> {
    table()[list].as_array().unwrap_or_else(|| panic!("ids.json has no list {list:?}")).iter().map(|v| v.as_str().unwrap().to_string()).collect()
}

fn serde_name<T: serde::Serialize>(v: &T) -> String {
    match serde_json::to_value(v).unwrap() {
        serde_json::Value::String(s) => s,
        serde_json::Value::Object(o) => o["name"].as_str().unwrap().to_string(),
        other => panic!("{other}"),
    }
}

#[test]
fn enums_match_the_table() {
    use ActKind::*;
    let acts = [Relu, LeakyRelu, Sigmoid, Tanh, Linear, Softplus, Square, Gelu];
    assert_eq!(acts.iter().map(serde_name).collect::<Vec<_>>(), names("activators"));
    use LossKind::*;
    let losses = [SoftmaxLogEntropy, SoftmaxLogMultEntropy, SquaredError, AbsCubicError];
    assert_eq!(losses.iter().map(serde_name).collect::<Vec<_>>(), names("losses"));
    let (b1, b2, eps, wd, mu) = (0.9, 0.99, 1e-8, 0.0, 0.9);
    let updates = [
        Update::Vanilla { weight_decay: wd },
        Update::Momentum { mu, weight_decay: wd },
        Update::Nesterov { mu, weight_decay: wd },
        Update::Adam { beta1: b1, beta2: b2, eps, weight_decay: wd },
        Update::Adamw { beta1: b1, beta2: b2, eps, weight_decay: wd },
        Update::Muon { mu, fallback_mu: mu, steps: 5, normalize: false, weight_decay: wd },
    ];
    assert_eq!(updates.iter().map(serde_name).collect::<Vec<_>>(), names("updates"));
    assert_eq!([Reduction::Sum, Reduction::Mean].iter().map(serde_name).collect::<Vec<_>>(), names("reductions"));
    assert_eq!(crate::conv::ALGORITHMS.to_vec(), names("conv_algorithms"));
}

#[test]
fn layer_kinds_match_the_table() {
    // one layer of every kind, parsed from the table's names, serialised back
    let layer = |kind: &str| -> String {
        let body = match kind {
            "conv" => r#""padding": [0, 0], "field": [1, 1], "stride": [1, 1], "filters": 1, "activator": {"name": "relu"}"#,
            "dense" => r#""neurons": 1, "activator": {"name": "relu"}"#,
            "batchnorm" => r#""momentum": 0.1, "eps": 1e-5"#,
            "maxpool" | "avgpool" => r#""field": [1, 1], "stride": [1, 1]"#,
            "dropout" => r#""rate": 0.1"#,
            "residual" => r#""layers": [{"kind": "dropout", "name": "x", "rate": 0.1}]"#,
            _ => "",
        };
        let sep = if body.is_empty() { "" } else { ", " };
        format!(r#"{{"kind": "{kind}", "name": "l"{sep}{body}}}"#)
    };
    let kinds = names("layers");
    let layers: Vec<String> = kinds.iter().map(|k| layer(k)).collect();
    let json = format!(
        r#"{{"dtype": "f64", "input": [2, 2, 1], "layers": [{}], "loss": {{"name": "squared_error"}}, "update": {{"name": "vanilla"}}, "reduction": "sum"}}"#,
        layers.join(", ")
    );
    let spec = NetSpec::from_json(&json).expect("every kind in the table parses");
    let parsed: Vec<&str> = spec.layers.iter().map(|l| l.kind.id_name()).collect();
    assert_eq!(parsed, kinds);
    for l in &spec.layers {
        let v = serde_json::to_value(l).unwrap();
        assert_eq!(v["kind"].as_str().unwrap(), l.kind.id_name());
    }
    // and no kind beyond the table: id_name is exhaustive over Kind, so a new variant
    // without a table entry fails to parse above or here
    let _exhaustive = |k: &Kind| k.id_name();
}
