//! The network spec (docs/engine.md): plain data, parsed from the JSON the Python layer
//! writes. `layout::resolve` fills in every layer's shapes, parameters and state; the
//! engine is built from a resolved spec. Python validates first and words the errors for
//! users; the checks here are the last line of defence. Unknown fields are refused: a
//! misspelt option is an error, not a default silently used.

use crate::activator::Activator;
use crate::error::{Error, Result};
use crate::loss::Loss;
use crate::optim::Update;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A trained tensor of a layer, as resolved.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ParamSpec {
    pub name: String,
    pub shape: Vec<usize>,
    #[serde(default = "one")]
    pub lr_mult: f64,
    #[serde(default = "one")]
    pub wd_mult: f64,
}

/// A non-trained tensor of a layer (BatchNorm's running statistics), as resolved.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StateSpec {
    pub name: String,
    pub shape: Vec<usize>,
    pub init: f64,
}

fn one() -> f64 {
    1.0
}
fn auto() -> String {
    "auto".into()
}
fn linear() -> Activator {
    Activator::new(crate::activator::ActKind::Linear)
}

/// What a layer computes: its kind and configuration.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
// deny_unknown_fields here, not on LayerSpec (serde does not combine it with flatten):
// the kind sees the fields LayerSpec does not know
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Kind {
    Conv {
        padding: [usize; 2],
        field: [usize; 2],
        stride: [usize; 2],
        filters: usize,
        #[serde(default)]
        bias: bool,
        activator: Activator,
        #[serde(default = "auto")]
        algorithm: String,
    },
    Dense {
        neurons: usize,
        #[serde(default)]
        bias: bool,
        activator: Activator,
    },
    Batchnorm {
        momentum: f64,
        eps: f64,
        #[serde(default = "yes")]
        scale: bool,
        #[serde(default = "yes")]
        shift: bool,
        #[serde(default = "linear")]
        activator: Activator,
    },
    Maxpool {
        field: [usize; 2],
        stride: [usize; 2],
        #[serde(default)]
        padding: [usize; 2],
    },
    Avgpool {
        field: [usize; 2],
        stride: [usize; 2],
        #[serde(default)]
        padding: [usize; 2],
    },
    GlobalAvgPool {},
    Dropout {
        rate: f64,
    },
    Residual {
        layers: Vec<LayerSpec>,
        #[serde(default = "linear")]
        activator: Activator,
    },
}

fn yes() -> bool {
    true
}

impl Kind {
    /// The name ids.json gives this kind.
    pub fn id_name(&self) -> &'static str {
        match self {
            Kind::Conv { .. } => "conv",
            Kind::Dense { .. } => "dense",
            Kind::Batchnorm { .. } => "batchnorm",
            Kind::Maxpool { .. } => "maxpool",
            Kind::Avgpool { .. } => "avgpool",
            Kind::GlobalAvgPool {} => "global_avg_pool",
            Kind::Dropout { .. } => "dropout",
            Kind::Residual { .. } => "residual",
        }
    }
}

/// One layer: its name (unique in the network), configuration, and the resolved shapes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LayerSpec {
    pub name: String,
    #[serde(flatten)]
    pub kind: Kind,
    /// Per-parameter learning-rate and weight-decay multipliers (missing names: 1).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub lr_mult: BTreeMap<String, f64>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub wd_mult: BTreeMap<String, f64>,
    #[serde(default)]
    pub dim_in: Vec<usize>,
    #[serde(default)]
    pub dim_out: Vec<usize>,
    #[serde(default)]
    pub params: Vec<ParamSpec>,
    #[serde(default)]
    pub state: Vec<StateSpec>,
}

impl LayerSpec {
    pub fn out_size(&self) -> usize {
        self.dim_out.iter().product()
    }
    pub fn in_size(&self) -> usize {
        self.dim_in.iter().product()
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reduction {
    Sum,
    Mean,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetSpec {
    #[serde(default = "two")]
    pub version: u32,
    pub dtype: String,
    pub input: Vec<usize>,
    pub layers: Vec<LayerSpec>,
    pub loss: Loss,
    pub update: Update,
    pub reduction: Reduction,
    #[serde(default)]
    pub seed: u64,
    /// Per-channel normalisation of the input, after bytes are scaled by 1/255.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_norm: Option<InputNorm>,
}

/// x ← (x − mean[c]) / std[c] for the input's last dimension.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InputNorm {
    pub mean: Vec<f64>,
    pub std: Vec<f64>,
}

fn two() -> u32 {
    2
}

impl NetSpec {
    pub fn from_json(s: &str) -> Result<Self> {
        let spec: NetSpec = serde_json::from_str(s).map_err(|e| Error::new(format!("spec: not a valid network spec: {e}")))?;
        if spec.version != 2 {
            crate::bail!("spec: version {} is not one this engine reads (2)", spec.version);
        }
        Ok(spec)
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("a spec always serialises")
    }

    /// Every layer in pre-order (a residual before its inner layers): the order of the
    /// layers' uids, parameters and state.
    pub fn walk(&self) -> Vec<&LayerSpec> {
        fn go<'a>(layers: &'a [LayerSpec], out: &mut Vec<&'a LayerSpec>) {
            for l in layers {
                out.push(l);
                if let Kind::Residual { layers, .. } = &l.kind {
                    go(layers, out);
                }
            }
        }
        let mut out = Vec::new();
        go(&self.layers, &mut out);
        out
    }
}
