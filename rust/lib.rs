//! neuroflow's CPU core: Tensor3D batches (channels last, see docs/engine.md), convolution
//! by im2col × gemm, dense layers, activators, losses, update rules, and whole training
//! steps, generic over f32 and f64. The PyO3 bindings live in `py` behind the `python`
//! feature, so `cargo test` needs no Python.

pub mod error;

pub mod activator;
pub mod alloc;
pub mod conv;
pub mod data;
pub mod dense;
pub mod direct;
pub mod direct1;
pub mod im2col;
pub mod lanes;
pub mod loss;
pub mod matmul;
pub mod network;
pub mod planar;
pub mod real;
pub mod scratch;
mod simd;
pub mod spec;
pub mod layout;
pub mod layers;
pub mod optim;
pub mod phases;
pub mod threads;
pub mod winograd;
mod winograd_lanes;

#[cfg(test)]
mod gradcheck;
#[cfg(test)]
mod ids;

#[cfg(feature = "python")]
mod py;

pub use error::{Error, Result};
pub use network::{Input, Network};
pub use spec::NetSpec;
