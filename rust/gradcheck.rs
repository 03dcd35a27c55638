//! Whole-network checks: backprop against central finite differences in f64 for every
//! layer kind, activator, loss and conv algorithm, with padding and stride > 1; f32 against
//! f64; training reproducible; bad sizes are errors. (The engine-agnostic conformance suite
//! in tests/conformance/ checks all engines against a NumPy reference as well.)

use crate::layers::Mode;
use crate::network::{Input, Network};
use crate::spec::NetSpec;
use rand::{Rng, SeedableRng};

fn act(name: &str) -> String {
    format!(r#"{{"name": "{name}", "alpha": 0.13, "bias": 0.05}}"#)
}

fn conv(name: &str, pad: [usize; 2], field: [usize; 2], stride: [usize; 2], filters: usize, a: &str, bias: bool, alg: &str) -> String {
    format!(
        r#"{{"kind": "conv", "name": "{name}", "padding": {pad:?}, "field": {field:?}, "stride": {stride:?}, "filters": {filters},
            "bias": {bias}, "activator": {}, "algorithm": "{alg}"}}"#,
        act(a)
    )
}

fn net_json(input: &[usize], layers: &[String], loss: &str, reduction: &str, dtype: &str) -> String {
    let smoothing = if loss.starts_with("softmax") { 0.1 } else { 0.0 };
    format!(
        r#"{{"dtype": "{dtype}", "input": {input:?}, "layers": [{}], "loss": {{"name": "{loss}", "n": 2, "label_smoothing": {smoothing}}},
            "update": {{"name": "adam", "beta1": 0.9, "beta2": 0.99, "eps": 1e-8, "weight_decay": 0.01}}, "reduction": "{reduction}", "seed": 9}}"#,
        layers.join(", ")
    )
}

/// Every layer kind in one of several small nets.
fn nets() -> Vec<(&'static str, Vec<usize>, Vec<String>)> {
    vec![
        (
            "conv chain",
            vec![7, 6, 2],
            vec![
                conv("a", [1, 1], [3, 3], [2, 1], 6, "tanh", true, "auto"),
                conv("b", [1, 0], [2, 2], [2, 1], 2, "softplus", false, "auto"),
                conv("c", [0, 0], [1, 1], [1, 1], 3, "gelu", true, "auto"),
                r#"{"kind": "dense", "name": "d", "neurons": 4, "bias": true, "activator": {"name": "sigmoid"}}"#.into(),
            ],
        ),
        (
            "batchnorm, pools, residual",
            vec![6, 5, 3],
            vec![
                conv("c0", [1, 1], [3, 3], [1, 1], 5, "linear", false, "im2col"),
                r#"{"kind": "batchnorm", "name": "bn", "momentum": 0.1, "eps": 1e-5, "activator": {"name": "tanh"}}"#.into(),
                r#"{"kind": "residual", "name": "res", "activator": {"name": "softplus"}, "layers": [
                    {"kind": "conv", "name": "c", "padding": [1, 1], "field": [3, 3], "stride": [1, 1], "filters": 5, "activator": {"name": "linear"}, "algorithm": "im2col_t"},
                    {"kind": "batchnorm", "name": "bn", "momentum": 0.2, "eps": 1e-3, "scale": false, "activator": {"name": "gelu"}}]}"#
                    .into(),
                r#"{"kind": "avgpool", "name": "ap", "field": [3, 3], "stride": [2, 1], "padding": [1, 1]}"#.into(),
                r#"{"kind": "maxpool", "name": "mp", "field": [2, 2], "stride": [1, 2]}"#.into(),
                r#"{"kind": "dropout", "name": "dr", "rate": 0.3}"#.into(),
                r#"{"kind": "global_avg_pool", "name": "gap"}"#.into(),
                r#"{"kind": "batchnorm", "name": "bn1d", "momentum": 0.1, "eps": 1e-5, "shift": false, "activator": {"name": "linear"}}"#.into(),
                r#"{"kind": "dense", "name": "d", "neurons": 4, "bias": true, "activator": {"name": "leaky_relu", "alpha": 0.1}}"#.into(),
            ],
        ),
        (
            "winograd, winograd4 and direct",
            vec![6, 6, 8],
            vec![
                conv("w", [1, 1], [3, 3], [1, 1], 8, "tanh", true, "winograd"),
                conv("w4", [1, 1], [3, 3], [1, 1], 9, "gelu", true, "winograd4"),
                conv("d1", [1, 1], [3, 3], [1, 1], 1, "sigmoid", false, "direct"),
                conv("d2", [1, 1], [4, 4], [2, 2], 2, "square", true, "direct"),
                r#"{"kind": "dense", "name": "o", "neurons": 4, "activator": {"name": "linear"}}"#.into(),
            ],
        ),
        (
            "winograd4 over a strided layer's phases, and F(4×4, 2×2)",
            vec![8, 6, 4],
            vec![
                conv("p", [1, 1], [4, 4], [2, 2], 8, "gelu", true, "winograd4"),
                conv("q", [1, 0], [2, 2], [1, 1], 8, "tanh", false, "winograd4"),
                r#"{"kind": "dense", "name": "o", "neurons": 4, "activator": {"name": "linear"}}"#.into(),
            ],
        ),
    ]
}

fn targets(rng: &mut impl Rng, loss: &str, n: usize, k: usize) -> Vec<f64> {
    let mut t = vec![0.0; n * k];
    for row in t.chunks_mut(k) {
        match loss {
            "softmax_log_entropy" => row[rng.random_range(0..k)] = 1.0,
            "softmax_log_mult_entropy" => {
                row[0] = 1.0;
                row[1 + rng.random_range(0..k - 1)] = 1.0;
            }
            _ => row.iter_mut().for_each(|v| *v = rng.random_range(-1.0..1.0)),
        }
    }
    t
}

fn random_net(json: &str, rng: &mut impl Rng) -> Network<f64> {
    let mut net = Network::<f64>::new(NetSpec::from_json(json).unwrap()).unwrap();
    let w = net.params.iter().map(|w| w.iter().map(|_| rng.random_range(-0.6..0.6)).collect()).collect();
    net.set_params(w).unwrap();
    net
}

#[test]
fn backprop_matches_finite_differences() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(11);
    let losses = ["softmax_log_entropy", "softmax_log_mult_entropy", "squared_error", "abs_cubic_error"];
    for (i, (what, input, layers)) in nets().into_iter().enumerate() {
        for (j, loss) in losses.iter().enumerate() {
            let reduction = if (i + j) % 2 == 0 { "sum" } else { "mean" };
            let mut net = random_net(&net_json(&input, &layers, loss, reduction, "f64"), &mut rng);
            net.step = 5;
            let n = 3;
            let d: usize = input.iter().product();
            let x: Vec<f64> = (0..n * d).map(|_| rng.random_range(-1.0..1.0)).collect();
            let t = targets(&mut rng, loss, n, 4);
            let (l1, bp) = net.gradients(Input::Float(&x), &t).unwrap();
            let (l2, fd) = net.fd_gradients(Input::Float(&x), &t, 1e-6).unwrap();
            assert!((l1 - l2).abs() <= 1e-12 * l1.abs().max(1.0));
            for (k, (b, f)) in bp.iter().zip(&fd).enumerate() {
                let num: f64 = b.iter().zip(f).map(|(a, b)| (a - b) * (a - b)).sum();
                let den: f64 = f.iter().map(|b| b * b).sum();
                let name = &net.param_info[k].0;
                assert!(den > 1e-12, "{what} {loss}: gradient of {name} vanishes, the test would prove nothing");
                let rel = (num / den).sqrt();
                assert!(rel <= 2e-6, "{what} {loss} {reduction}: {name} relative error {rel}");
            }
        }
    }
}

#[test]
fn f32_matches_f64_and_bytes_are_scaled() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(5);
    for (_, input, layers) in nets() {
        let json = net_json(&input, &layers, "softmax_log_entropy", "sum", "f64");
        let mut net64 = random_net(&json, &mut rng);
        let mut net32 = Network::<f32>::new(NetSpec::from_json(&json.replace("\"f64\"", "\"f32\"")).unwrap()).unwrap();
        net32.set_params(net64.params.iter().map(|w| w.iter().map(|&v| v as f32).collect()).collect()).unwrap();
        let d: usize = input.iter().product();
        let bytes: Vec<u8> = (0..5 * d).map(|_| rng.random()).collect();
        let x: Vec<f64> = bytes.iter().map(|&b| b as f64 / 255.0).collect();
        let y64 = net64.predict(Input::Float(&x)).unwrap();
        let y32 = net32.predict(Input::Bytes(&bytes)).unwrap();
        for (a, b) in y64.iter().zip(&y32) {
            assert!((a - *b as f64).abs() < 1e-5, "{a} vs {b}");
        }
    }
}

#[test]
fn training_lowers_the_loss_and_is_reproducible_across_threads() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(3);
    let (_, input, layers) = nets().swap_remove(1);
    let json = net_json(&input, &layers, "softmax_log_entropy", "mean", "f64");
    let net0 = random_net(&json, &mut rng);
    let d: usize = input.iter().product();
    let x: Vec<f64> = (0..8 * d).map(|_| rng.random_range(-1.0..1.0)).collect();
    let t = targets(&mut rng, "softmax_log_entropy", 8, 4);
    // (other tests may change the engine's thread count meanwhile: that is the point)
    let run = |mut net: Network<f64>, threads: usize| {
        crate::threads::set_num_threads(threads);
        let first = net.loss(Input::Float(&x), &t, Mode::Eval).unwrap();
        for _ in 0..100 {
            net.train_step(Input::Float(&x), &t, 0.02, None).unwrap();
        }
        (first, net.loss(Input::Float(&x), &t, Mode::Eval).unwrap(), net.params.clone(), net.state.clone())
    };
    let w0 = net0.params.clone();
    let (first, last, w1, s1) = run(net0, 1);
    assert!(last < 0.5 * first, "{first} -> {last}");
    let mut again = Network::<f64>::new(NetSpec::from_json(&json).unwrap()).unwrap();
    again.set_params(w0).unwrap();
    let (_, _, w2, s2) = run(again, 3);
    assert_eq!(w2, w1, "same start, same data, other thread count: bit-identical parameters");
    assert_eq!(s2, s1, "and running statistics");
}

#[test]
fn train_and_eval_differ_only_where_they_should() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(8);
    let plain = vec![
        conv("a", [1, 1], [3, 3], [1, 1], 4, "relu", true, "auto"),
        r#"{"kind": "maxpool", "name": "m", "field": [2, 2], "stride": [2, 2]}"#.into(),
        r#"{"kind": "dense", "name": "d", "neurons": 3, "activator": {"name": "linear"}}"#.into(),
    ];
    let mut net = random_net(&net_json(&[6, 6, 2], &plain, "squared_error", "sum", "f64"), &mut rng);
    let x: Vec<f64> = (0..2 * 72).map(|_| rng.random_range(-1.0..1.0)).collect();
    let e = net.forward(Input::Float(&x), None, Mode::Eval).unwrap();
    let tr = net.forward(Input::Float(&x), None, Mode::Train { update_state: false }).unwrap();
    assert_eq!(e, tr, "no batch-dependent layer: train and eval agree exactly");
    let (_, _, layers) = nets().swap_remove(1);
    let mut net = random_net(&net_json(&[6, 5, 3], &layers, "squared_error", "sum", "f64"), &mut rng);
    let x: Vec<f64> = (0..2 * 90).map(|_| rng.random_range(-1.0..1.0)).collect();
    let e = net.forward(Input::Float(&x), None, Mode::Eval).unwrap();
    let tr = net.forward(Input::Float(&x), None, Mode::Train { update_state: false }).unwrap();
    assert!(e.iter().zip(&tr).any(|(a, b)| (a - b).abs() > 1e-6), "batchnorm and dropout make them differ");
    let state = net.state.clone();
    net.gradients(Input::Float(&x), &[0.0; 8]).unwrap();
    net.loss(Input::Float(&x), &[0.0; 8], Mode::Train { update_state: false }).unwrap();
    assert_eq!(net.state, state, "gradients and the train-mode loss change no state");
}

#[test]
fn bad_sizes_are_errors_not_panics() {
    let (_, input, layers) = nets().swap_remove(0);
    let json = net_json(&input, &layers, "squared_error", "sum", "f64");
    let mut net = Network::<f64>::new(NetSpec::from_json(&json).unwrap()).unwrap();
    assert!(net.forward(Input::Float(&[0.5; 83]), None, Mode::Eval).is_err());
    assert!(net.forward(Input::Float(&[]), None, Mode::Eval).is_err());
    assert!(net.loss(Input::Float(&[0.5; 84]), &[0.0; 3], Mode::Eval).is_err());
    assert!(net.set_params(vec![vec![0.0; 3]]).is_err());
    assert!(net.forward(Input::Float(&[0.5; 84]), Some(9), Mode::Eval).is_err());
    assert!(Network::<f32>::new(NetSpec::from_json(&json).unwrap()).is_err());
    let bad = net_json(&input, &[layers[3].clone(), layers[0].clone()], "squared_error", "sum", "f64");
    assert!(Network::<f64>::new(NetSpec::from_json(&bad).unwrap()).is_err());
}
