//! The classifier: a small CNN sized for a Cortex-M7 (see `models/README.md` for the budget).
//!
//! Stages of `conv 3x3 (+ BN + ReLU)`, each but the last followed by a 2x2 max pool; then global
//! average pooling, dropout and a linear layer to the class logits. With `depthwise = true` each
//! conv after the first is depthwise 3x3 + pointwise 1x1 (MobileNet style). Padding is explicit
//! and symmetric (1 on every side), which the int8 core reproduces exactly.

use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::pool::{AdaptiveAvgPool2d, AdaptiveAvgPool2dConfig, MaxPool2d, MaxPool2dConfig};
use burn::nn::{BatchNorm, BatchNormConfig, Dropout, DropoutConfig, Linear, LinearConfig, PaddingConfig2d, Relu};
use burn::prelude::*;
use serde::{Deserialize, Serialize};

/// Architecture settings (the `[model]` table of the training config).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ModelConfig {
    /// Side of the square RGB input, in pixels.
    pub input: usize,
    /// Output channels of each stage.
    pub widths: Vec<usize>,
    /// Depthwise-separable convolutions after the first.
    pub depthwise: bool,
    pub dropout: f64,
    pub classes: usize,
}

impl Default for ModelConfig {
    fn default() -> Self {
        Self { input: 64, widths: vec![16, 32, 64, 128], depthwise: false, dropout: 0.2, classes: 2 }
    }
}

/// Conv + batch norm + ReLU.
#[derive(Module, Debug)]
pub struct ConvBn {
    pub conv: Conv2d,
    pub bn: BatchNorm,
    pub relu: Relu,
}

impl ConvBn {
    pub fn new(cin: usize, cout: usize, k: usize, groups: usize, device: &Device) -> Self {
        let p = k / 2;
        Self {
            conv: Conv2dConfig::new([cin, cout], [k, k])
                .with_padding(PaddingConfig2d::Explicit(p, p, p, p))
                .with_groups(groups)
                .with_bias(false)
                .init(device),
            bn: BatchNormConfig::new(cout).init(device),
            relu: Relu::new(),
        }
    }

    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        self.relu.forward(self.bn.forward(self.conv.forward(x)))
    }
}

/// One stage: a plain conv, or depthwise then pointwise.
#[derive(Module, Debug)]
pub struct Stage {
    pub depthwise: Option<ConvBn>,
    pub conv: ConvBn,
}

impl Stage {
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let x = match &self.depthwise {
            Some(dw) => dw.forward(x),
            None => x,
        };
        self.conv.forward(x)
    }
}

/// The network.
#[derive(Module, Debug)]
pub struct Net {
    pub stages: Vec<Stage>,
    pub pool: MaxPool2d,
    pub gap: AdaptiveAvgPool2d,
    pub dropout: Dropout,
    pub fc: Linear,
}

impl ModelConfig {
    /// Checks the settings make a network the exporter and the firmware can handle.
    pub fn validate(&self) -> anyhow::Result<()> {
        anyhow::ensure!(!self.widths.is_empty() && self.widths.len() <= 6, "model.widths needs 1 to 6 stages");
        anyhow::ensure!(self.widths.iter().all(|&w| (1..=512).contains(&w)), "model.widths must be 1..=512");
        anyhow::ensure!((16..=224).contains(&self.input), "model.input must be 16..=224 pixels");
        let down = 1usize << (self.widths.len() - 1);
        anyhow::ensure!(self.input % down == 0, "model.input must be divisible by {down} (one 2x2 pool per stage but the last)");
        anyhow::ensure!(self.classes >= 2, "model.classes must be at least 2");
        anyhow::ensure!((0.0..1.0).contains(&self.dropout), "model.dropout must be in [0, 1)");
        Ok(())
    }

    pub fn init(&self, device: &Device) -> Net {
        let mut stages = Vec::new();
        let mut cin = 3;
        for (i, &w) in self.widths.iter().enumerate() {
            let stage = if self.depthwise && i > 0 {
                Stage { depthwise: Some(ConvBn::new(cin, cin, 3, cin, device)), conv: ConvBn::new(cin, w, 1, 1, device) }
            } else {
                Stage { depthwise: None, conv: ConvBn::new(cin, w, 3, 1, device) }
            };
            stages.push(stage);
            cin = w;
        }
        Net {
            stages,
            pool: MaxPool2dConfig::new([2, 2]).init(),
            gap: AdaptiveAvgPool2dConfig::new([1, 1]).init(),
            dropout: DropoutConfig::new(self.dropout).init(),
            fc: LinearConfig::new(cin, self.classes).init(device),
        }
    }

    /// Multiply-accumulates per image (convs and the linear layer).
    pub fn macs(&self) -> u64 {
        let (mut side, mut cin, mut total) = (self.input as u64, 3u64, 0u64);
        for (i, &w) in self.widths.iter().enumerate() {
            let w = w as u64;
            total += if self.depthwise && i > 0 { side * side * (9 * cin + cin * w) } else { side * side * 9 * cin * w };
            if i + 1 < self.widths.len() {
                side /= 2;
            }
            cin = w;
        }
        total + cin * self.classes as u64
    }
}

impl Net {
    /// `x`: `[N, 3, H, W]`, pixels scaled as `(p - 128) / 128`; returns logits `[N, classes]`.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        let mut x = x;
        let last = self.stages.len() - 1;
        for (i, s) in self.stages.iter().enumerate() {
            x = s.forward(x);
            if i < last {
                x = self.pool.forward(x);
            }
        }
        let x: Tensor<2> = self.gap.forward(x).flatten(1, 3);
        self.fc.forward(self.dropout.forward(x))
    }
}
