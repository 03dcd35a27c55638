//! Whole-network checks: backprop against central finite differences in f64 for every
//! layer kind, activator and loss, with padding and stride > 1; f32 against f64.

use crate::activator::{ActKind, Activator};
use crate::loss::{Loss, LossKind};
use crate::network::{Input, Network};
use crate::spec::{LayerSpec, NetSpec, Reduction};
use crate::update::Update;
use rand::{Rng, SeedableRng};

fn act(name: ActKind, bias: f64) -> Activator {
    Activator { name, alpha: 0.13, bias }
}

fn spec(a0: ActKind, a1: ActKind, a2: ActKind, loss: LossKind, reduction: Reduction, dtype: &str) -> NetSpec {
    NetSpec {
        dtype: dtype.into(),
        layers: vec![
            LayerSpec::Conv { dim_in: [7, 6, 2], padding: [1, 1], field: [3, 3], stride: [2, 1], filters: 6, activator: act(a0, 0.1) },
            LayerSpec::Conv { dim_in: [4, 6, 6], padding: [1, 0], field: [2, 2], stride: [2, 1], filters: 2, activator: act(a1, -0.05) },
            LayerSpec::Conv { dim_in: [3, 5, 2], padding: [0, 0], field: [1, 1], stride: [1, 1], filters: 2, activator: act(a2, 0.35) },
            LayerSpec::Dense { dim_in: 30, neurons: 4, activator: act(ActKind::Tanh, 0.02) },
        ],
        loss: Loss { name: loss, n: 2.0 },
        update: Update::Momentum { mu: 0.9 },
        reduction,
    }
}

fn targets(rng: &mut impl Rng, loss: LossKind, n: usize, k: usize) -> Vec<f64> {
    let mut t = vec![0.0; n * k];
    for row in t.chunks_mut(k) {
        match loss {
            LossKind::SoftmaxLogEntropy => row[rng.random_range(0..k)] = 1.0,
            LossKind::SoftmaxLogMultEntropy => {
                row[0] = 1.0;
                row[1 + rng.random_range(0..k - 1)] = 1.0;
            }
            _ => row.iter_mut().for_each(|v| *v = rng.random_range(-1.0..1.0)),
        }
    }
    t
}

fn random_net(spec: NetSpec, rng: &mut impl Rng) -> Network<f64> {
    let mut net = Network::<f64>::new(spec).unwrap();
    let w = net.weights.iter().map(|w| w.iter().map(|_| rng.random_range(-0.6..0.6)).collect()).collect();
    net.set_weights(w).unwrap();
    net
}

#[test]
fn backprop_matches_finite_differences() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(11);
    let acts = [ActKind::Relu, ActKind::LeakyRelu, ActKind::Sigmoid, ActKind::Tanh, ActKind::Linear, ActKind::Softplus, ActKind::Square];
    let losses = [LossKind::SoftmaxLogEntropy, LossKind::SoftmaxLogMultEntropy, LossKind::SquaredError, LossKind::AbsCubicError];
    for (i, &a0) in acts.iter().enumerate() {
        let loss = losses[i % losses.len()];
        let reduction = if i % 2 == 0 { Reduction::Sum } else { Reduction::Mean };
        let s = spec(a0, acts[(i + 3) % acts.len()], acts[(i + 5) % acts.len()], loss, reduction, "f64");
        let mut net = random_net(s, &mut rng);
        let n = 3;
        let x: Vec<f64> = (0..n * 84).map(|_| rng.random_range(-1.0..1.0)).collect();
        let t = targets(&mut rng, loss, n, 4);
        let (l1, bp) = net.gradients(Input::Float(&x), &t).unwrap();
        let (l2, fd) = net.fd_gradients(Input::Float(&x), &t, 1e-6).unwrap();
        assert!((l1 - l2).abs() <= 1e-12 * l1.abs().max(1.0));
        let num: f64 = bp.iter().flatten().zip(fd.iter().flatten()).map(|(a, b)| (a - b) * (a - b)).sum();
        let den: f64 = fd.iter().flatten().map(|b| b * b).sum();
        let rel = (num / den).sqrt();
        assert!(den > 1e-6, "{a0:?} {loss:?}: gradient vanishes, the test would prove nothing");
        assert!(rel <= 1e-6, "{a0:?} {loss:?} {reduction:?}: relative error {rel}");
    }
}

#[test]
fn f32_matches_f64_and_bytes_are_scaled() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(5);
    let s = spec(ActKind::Relu, ActKind::Sigmoid, ActKind::Relu, LossKind::SoftmaxLogEntropy, Reduction::Sum, "f64");
    let mut net64 = random_net(s.clone(), &mut rng);
    let mut net32 = Network::<f32>::new(NetSpec { dtype: "f32".into(), ..s }).unwrap();
    net32.set_weights(net64.weights.iter().map(|w| w.iter().map(|&v| v as f32).collect()).collect()).unwrap();
    let bytes: Vec<u8> = (0..5 * 84).map(|_| rng.random()).collect();
    let x: Vec<f64> = bytes.iter().map(|&b| b as f64 / 255.0).collect();
    let y64 = net64.predict(Input::Float(&x)).unwrap();
    let y32 = net32.predict(Input::Bytes(&bytes)).unwrap();
    for (a, b) in y64.iter().zip(&y32) {
        assert!((a - *b as f64).abs() < 1e-5, "{a} vs {b}");
    }
}

#[test]
fn training_lowers_the_loss_and_is_reproducible() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(3);
    let s = spec(ActKind::Relu, ActKind::Relu, ActKind::Linear, LossKind::SoftmaxLogEntropy, Reduction::Mean, "f64");
    let net0 = random_net(s.clone(), &mut rng);
    let x: Vec<f64> = (0..8 * 84).map(|_| rng.random_range(-1.0..1.0)).collect();
    let t = targets(&mut rng, LossKind::SoftmaxLogEntropy, 8, 4);
    let run = |mut net: Network<f64>| {
        let first = net.loss(Input::Float(&x), &t).unwrap();
        for _ in 0..60 {
            net.train_step(Input::Float(&x), &t, 0.05, None).unwrap();
        }
        (first, net.loss(Input::Float(&x), &t).unwrap(), net.weights.clone())
    };
    let w0 = net0.weights.clone();
    let (first, last, w1) = run(net0);
    assert!(last < 0.5 * first, "{first} -> {last}");
    let mut again = Network::<f64>::new(s).unwrap();
    again.set_weights(w0).unwrap();
    assert_eq!(run(again).2, w1, "same start, same data: bit-identical weights");
}

#[test]
fn bad_sizes_are_errors_not_panics() {
    let s = spec(ActKind::Relu, ActKind::Relu, ActKind::Relu, LossKind::SquaredError, Reduction::Sum, "f64");
    let mut net = Network::<f64>::new(s.clone()).unwrap();
    assert!(net.forward(Input::Float(&[0.5; 83])).is_err());
    assert!(net.forward(Input::Float(&[])).is_err());
    assert!(net.loss(Input::Float(&[0.5; 84]), &[0.0; 3]).is_err());
    assert!(net.set_weights(vec![vec![0.0; 3]]).is_err());
    assert!(net.focus(Input::Float(&[0.5; 84]), 9).is_err());
    assert!(Network::<f32>::new(s.clone()).is_err());
    let mut bad = s;
    bad.layers.swap(0, 3);
    assert!(Network::<f64>::new(bad).is_err());
}
