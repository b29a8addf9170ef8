//! The classifier: a small CNN sized for a Cortex-M7 (see `models/README.md` for the budget).
//!
//! Stages of `conv 3x3 (+ BN + ReLU)`, by default each but the last followed by a 2x2 max pool
//! (`pool_after` picks other stages, so a stage of the same size can repeat); then global
//! average pooling, dropout and a linear layer to the class logits. With `depthwise = true` each
//! conv from stage `depthwise_from` on is depthwise 3x3 + pointwise 1x1 (MobileNet style), which
//! keeps the wide late stages inside the weight budget. Padding is explicit and symmetric (1 on
//! every side), which the int8 core reproduces exactly.

use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::pool::{
    AdaptiveAvgPool2d, AdaptiveAvgPool2dConfig, AvgPool2d, AvgPool2dConfig, MaxPool2d,
    MaxPool2dConfig,
};
use burn::nn::{
    BatchNorm, BatchNormConfig, Dropout, DropoutConfig, Linear, LinearConfig, PaddingConfig2d, Relu,
};
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
    /// Depthwise-separable convolutions from stage `depthwise_from` on.
    pub depthwise: bool,
    /// First depthwise-separable stage (with `depthwise`); never the first stage.
    pub depthwise_from: usize,
    /// Stages followed by a 2x2 pool (0-based); empty means every stage but the last (and not
    /// the first when `stem_stride` is 2).
    pub pool_after: Vec<usize>,
    pub dropout: f64,
    pub classes: usize,
    /// Down-sample with 2x2 average pooling instead of max pooling.
    pub avg_pool: bool,
    /// Stride of the first convolution; with 2 it replaces the first pooling (halving the
    /// largest activation, which bounds the device's RAM).
    pub stem_stride: usize,
}

impl Default for ModelConfig {
    fn default() -> Self {
        Self {
            input: 64,
            widths: vec![16, 32, 64, 128],
            depthwise: false,
            depthwise_from: 1,
            pool_after: Vec::new(),
            dropout: 0.2,
            classes: 2,
            avg_pool: false,
            stem_stride: 1,
        }
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
        Self::strided(cin, cout, k, 1, groups, device)
    }

    pub fn strided(
        cin: usize,
        cout: usize,
        k: usize,
        stride: usize,
        groups: usize,
        device: &Device,
    ) -> Self {
        let p = k / 2;
        Self {
            conv: Conv2dConfig::new([cin, cout], [k, k])
                .with_stride([stride, stride])
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
    /// Per stage: followed by a 2x2 pool.
    pub pool_after: Vec<bool>,
    pub pool: MaxPool2d,
    pub avg: Option<AvgPool2d>,
    pub gap: AdaptiveAvgPool2d,
    pub dropout: Dropout,
    pub fc: Linear,
}

impl ModelConfig {
    /// Checks the settings make a network the exporter and the firmware can handle.
    pub fn validate(&self) -> facegender_pipeline::Result<()> {
        facegender_pipeline::ensure!(
            !self.widths.is_empty() && self.widths.len() <= 12,
            "model.widths needs 1 to 12 stages"
        );
        facegender_pipeline::ensure!(
            self.pool_after.iter().all(|&i| i < self.widths.len()),
            "model.pool_after names a stage beyond model.widths"
        );
        facegender_pipeline::ensure!(
            self.depthwise_from >= 1,
            "model.depthwise_from must be at least 1 (the first stage is a plain conv)"
        );
        facegender_pipeline::ensure!(
            self.widths.iter().all(|&w| (1..=512).contains(&w)),
            "model.widths must be 1..=512"
        );
        facegender_pipeline::ensure!(
            (16..=224).contains(&self.input),
            "model.input must be 16..=224 pixels"
        );
        facegender_pipeline::ensure!(
            matches!(self.stem_stride, 1 | 2),
            "model.stem_stride must be 1 or 2"
        );
        let pools = (0..self.widths.len())
            .filter(|&i| self.pools_after(i))
            .count();
        let down = self.stem_stride << pools;
        facegender_pipeline::ensure!(
            self.input.is_multiple_of(down),
            "model.input must be divisible by {down} (the stem stride times one 2 per 2x2 pool)"
        );
        facegender_pipeline::ensure!(self.classes >= 2, "model.classes must be at least 2");
        facegender_pipeline::ensure!(
            (0.0..1.0).contains(&self.dropout),
            "model.dropout must be in [0, 1)"
        );
        Ok(())
    }

    pub fn init(&self, device: &Device) -> Net {
        let mut stages = Vec::new();
        let mut cin = 3;
        for (i, &w) in self.widths.iter().enumerate() {
            let stage = if self.is_depthwise(i) {
                Stage {
                    depthwise: Some(ConvBn::new(cin, cin, 3, cin, device)),
                    conv: ConvBn::new(cin, w, 1, 1, device),
                }
            } else {
                let stride = if i == 0 { self.stem_stride } else { 1 };
                Stage {
                    depthwise: None,
                    conv: ConvBn::strided(cin, w, 3, stride, 1, device),
                }
            };
            stages.push(stage);
            cin = w;
        }
        Net {
            pool_after: (0..self.widths.len())
                .map(|i| self.pools_after(i))
                .collect(),
            stages,
            pool: MaxPool2dConfig::new([2, 2]).init(),
            avg: self.avg_pool.then(|| AvgPool2dConfig::new([2, 2]).init()),
            gap: AdaptiveAvgPool2dConfig::new([1, 1]).init(),
            dropout: DropoutConfig::new(self.dropout).init(),
            fc: LinearConfig::new(cin, self.classes).init(device),
        }
    }

    /// Whether stage `i` is followed by a 2x2 pool.
    pub fn pools_after(&self, i: usize) -> bool {
        if self.pool_after.is_empty() {
            i + 1 < self.widths.len() && !(i == 0 && self.stem_stride == 2)
        } else {
            self.pool_after.contains(&i)
        }
    }

    /// Whether stage `i` is depthwise 3x3 + pointwise 1x1.
    pub fn is_depthwise(&self, i: usize) -> bool {
        self.depthwise && i >= self.depthwise_from && i > 0
    }

    /// Multiply-accumulates per image (convs and the linear layer).
    pub fn macs(&self) -> u64 {
        let (mut side, mut cin, mut total) = (self.input as u64, 3u64, 0u64);
        for (i, &w) in self.widths.iter().enumerate() {
            let w = w as u64;
            if i == 0 {
                side /= self.stem_stride as u64;
            }
            total += if self.is_depthwise(i) {
                side * side * (9 * cin + cin * w)
            } else {
                side * side * 9 * cin * w
            };
            if self.pools_after(i) {
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
        for (s, &pool) in self.stages.iter().zip(&self.pool_after) {
            x = s.forward(x);
            if pool {
                x = match &self.avg {
                    Some(a) => a.forward(x),
                    None => self.pool.forward(x),
                };
            }
        }
        let x: Tensor<2> = self.gap.forward(x).flatten(1, 3);
        self.fc.forward(self.dropout.forward(x))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shipped() -> ModelConfig {
        ModelConfig {
            widths: vec![32, 32, 64, 64, 128, 128, 256],
            pool_after: vec![1, 3, 5],
            stem_stride: 2,
            depthwise: true,
            depthwise_from: 5,
            ..ModelConfig::default()
        }
    }

    #[test]
    fn pool_after_lets_stages_of_one_size_repeat() {
        let c = shipped();
        c.validate().unwrap();
        let pools: Vec<usize> = (0..7).filter(|&i| c.pools_after(i)).collect();
        assert_eq!(pools, [1, 3, 5]);
        let dw: Vec<usize> = (0..7).filter(|&i| c.is_depthwise(i)).collect();
        assert_eq!(dw, [5, 6]);
        // 32 px after the stem: 32x32 (3->32, 32->32), 16x16 (32->64, 64->64), 8x8 (64->128,
        // dw 128 + 128->128), 4x4 (dw 128 + 128->256), then the linear layer
        let macs = 32 * 32 * 9 * (3 * 32 + 32 * 32)
            + 16 * 16 * 9 * (32 * 64 + 64 * 64)
            + 8 * 8 * (9 * 64 * 128 + 9 * 128 + 128 * 128)
            + 4 * 4 * (9 * 128 + 128 * 256)
            + 256 * 2;
        assert_eq!(c.macs(), macs);
    }

    #[test]
    fn the_default_rule_pools_after_every_stage_but_the_last() {
        let c = ModelConfig::default();
        assert_eq!((0..4).filter(|&i| c.pools_after(i)).count(), 3);
        assert!(!(0..4).any(|i| c.is_depthwise(i)));
    }

    #[test]
    fn settings_the_exporter_cannot_follow_are_refused() {
        let mut c = shipped();
        c.pool_after = vec![1, 3, 9];
        assert!(c.validate().is_err());
        let mut c = shipped();
        c.pool_after = vec![0, 1, 2, 3, 4, 5]; // 64 / 2 / 2^6 is not a whole side
        assert!(c.validate().is_err());
        let mut c = shipped();
        c.depthwise_from = 0;
        assert!(c.validate().is_err());
    }
}
