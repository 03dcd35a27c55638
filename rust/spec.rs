//! The network spec: plain data, parsed from the JSON the Python layer writes
//! (docs/engine.md). Validation here is the last line of defence; Python validates first
//! and words the errors for users.

use crate::activator::Activator;
use crate::error::{Error, Result};
use crate::loss::Loss;
use crate::update::Update;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum LayerSpec {
    Conv {
        dim_in: [usize; 3],
        padding: [usize; 2],
        field: [usize; 2],
        stride: [usize; 2],
        filters: usize,
        activator: Activator,
    },
    Dense {
        dim_in: usize,
        neurons: usize,
        activator: Activator,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reduction {
    Sum,
    Mean,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NetSpec {
    pub dtype: String,
    pub layers: Vec<LayerSpec>,
    pub loss: Loss,
    pub update: Update,
    pub reduction: Reduction,
}

impl NetSpec {
    pub fn from_json(s: &str) -> Result<Self> {
        serde_json::from_str(s).map_err(|e| Error(format!("spec: not a valid network spec: {e}")))
    }
}
