//! The host-grade classifier's head, trained with burn on cached descriptors: a logistic layer or
//! a small MLP on the standardised 128-D descriptor, AdamW, the epoch of lowest validation loss
//! kept. The result is the pipeline's plain [`Head`], which `predict` runs without burn.

use burn::module::Module;
use burn::nn::loss::CrossEntropyLossConfig;
use burn::nn::{Dropout, DropoutConfig, Linear, LinearConfig, Relu};
use burn::optim::{AdamWConfig, GradientsParams};
use burn::tensor::{Device, Int, Tensor, TensorData};
use facegender_pipeline::host::head::{Dense, Head};
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;

use crate::training::Backend;

/// Labelled descriptors (row-major `[n][dim]`).
pub struct Examples {
    pub x: Vec<f32>,
    pub y: Vec<usize>,
    pub dim: usize,
}

impl Examples {
    pub fn len(&self) -> usize {
        self.y.len()
    }

    pub fn is_empty(&self) -> bool {
        self.y.is_empty()
    }

    fn row(&self, i: usize) -> &[f32] {
        &self.x[i * self.dim..(i + 1) * self.dim]
    }
}

/// One head to try.
#[derive(Clone, Copy, Debug)]
pub struct Candidate {
    /// 0: logistic; else the MLP's hidden width.
    pub hidden: usize,
    pub epochs: usize,
    pub lr: f64,
    pub weight_decay: f32,
}

impl Candidate {
    pub fn name(&self) -> String {
        if self.hidden == 0 {
            "logistic".into()
        } else {
            format!("mlp-{}", self.hidden)
        }
    }
}

/// The candidates `train-host` compares on validation.
pub const CANDIDATES: [Candidate; 3] = [
    Candidate {
        hidden: 0,
        epochs: 40,
        lr: 3e-3,
        weight_decay: 1e-4,
    },
    Candidate {
        hidden: 64,
        epochs: 40,
        lr: 1e-3,
        weight_decay: 1e-3,
    },
    Candidate {
        hidden: 256,
        epochs: 40,
        lr: 1e-3,
        weight_decay: 1e-3,
    },
];

#[derive(Module, Debug)]
struct Net {
    first: Linear,
    second: Option<Linear>,
    relu: Relu,
    dropout: Dropout,
}

impl Net {
    fn new(dim: usize, hidden: usize, classes: usize, device: &Device) -> Self {
        let (first, second) = if hidden == 0 {
            (LinearConfig::new(dim, classes).init(device), None)
        } else {
            (
                LinearConfig::new(dim, hidden).init(device),
                Some(LinearConfig::new(hidden, classes).init(device)),
            )
        };
        Self {
            first,
            second,
            relu: Relu::new(),
            dropout: DropoutConfig::new(0.2).init(),
        }
    }

    fn forward(&self, x: Tensor<2>) -> Tensor<2> {
        let x = self.first.forward(x);
        match &self.second {
            Some(l) => l.forward(self.dropout.forward(self.relu.forward(x))),
            None => x,
        }
    }
}

fn dense(l: &Linear) -> facegender_pipeline::Result<Dense> {
    let err = |e| facegender_pipeline::invalid!("reading the head's weights: {e:?}");
    let w: Vec<f32> = l.weight.val().try_into_vec_as::<f32>().map_err(err)?;
    let [inputs, outputs] = l.weight.val().dims();
    let bias = match &l.bias {
        Some(b) => b.val().try_into_vec_as::<f32>().map_err(err)?,
        None => vec![0.0; outputs],
    };
    // burn stores `[inputs][outputs]`; the head keeps rows per output
    let weights = (0..outputs)
        .map(|o| (0..inputs).map(|i| w[i * outputs + o]).collect())
        .collect();
    Ok(Dense { weights, bias })
}

/// Mean and standard deviation per component over the training descriptors.
pub fn standardisation(train: &Examples) -> (Vec<f32>, Vec<f32>) {
    let n = train.len().max(1) as f64;
    let mut mean = vec![0f64; train.dim];
    for i in 0..train.len() {
        for (m, v) in mean.iter_mut().zip(train.row(i)) {
            *m += *v as f64;
        }
    }
    mean.iter_mut().for_each(|m| *m /= n);
    let mut var = vec![0f64; train.dim];
    for i in 0..train.len() {
        for ((s, v), m) in var.iter_mut().zip(train.row(i)).zip(&mean) {
            *s += (*v as f64 - m).powi(2);
        }
    }
    let scale = var
        .iter()
        .map(|s| ((s / n).sqrt() as f32).max(1e-6))
        .collect();
    (mean.iter().map(|&m| m as f32).collect(), scale)
}

/// Mean cross-entropy and accuracy of `logits(i)` over `data`.
pub fn loss_and_accuracy(data: &Examples, logits: impl Fn(usize) -> Vec<f32>) -> (f64, f64) {
    let (mut loss, mut correct) = (0f64, 0usize);
    for i in 0..data.len() {
        let l = logits(i);
        let m = l.iter().cloned().fold(f32::NEG_INFINITY, f32::max) as f64;
        let lse = m + l.iter().map(|&v| (v as f64 - m).exp()).sum::<f64>().ln();
        loss += lse - l[data.y[i]] as f64;
        let best = (0..l.len()).fold(0, |b, k| if l[k] > l[b] { k } else { b });
        correct += usize::from(best == data.y[i]);
    }
    let n = data.len().max(1) as f64;
    (loss / n, correct as f64 / n)
}

/// What one candidate reached.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Fitted {
    pub kind: String,
    pub best_epoch: usize,
    pub val_loss: f64,
    pub val_accuracy: f64,
    #[serde(skip)]
    pub head: Head,
}

/// Trains `c` on `train` (standardised with `mean`/`scale`), keeping the epoch of lowest loss on
/// `val`.
pub fn fit(
    c: Candidate,
    classes: usize,
    train: &Examples,
    val: &Examples,
    standard: &(Vec<f32>, Vec<f32>),
    seed: u64,
) -> facegender_pipeline::Result<Fitted> {
    let device = Backend::Flex.device().autodiff();
    device.seed(seed);
    let mut net = Net::new(train.dim, c.hidden, classes, &device);
    let mut optim = AdamWConfig::new().with_weight_decay(c.weight_decay).init();
    let loss_fn = CrossEntropyLossConfig::new().init(&device);
    let (mean, scale) = standard;
    let standardised: Vec<f32> = train
        .x
        .chunks(train.dim)
        .flat_map(|r| {
            r.iter()
                .zip(mean.iter().zip(scale))
                .map(|(v, (m, s))| (v - m) / s)
        })
        .collect();
    let mut order: Vec<usize> = (0..train.len()).collect();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut best: Option<Fitted> = None;
    for epoch in 1..=c.epochs {
        order.shuffle(&mut rng);
        for batch in order.chunks(256) {
            let x: Vec<f32> = batch
                .iter()
                .flat_map(|&i| {
                    standardised[i * train.dim..(i + 1) * train.dim]
                        .iter()
                        .copied()
                })
                .collect();
            let y: Vec<i64> = batch.iter().map(|&i| train.y[i] as i64).collect();
            let x = Tensor::<2>::from_data(TensorData::new(x, [batch.len(), train.dim]), &device);
            let y = Tensor::<1, Int>::from_data(TensorData::new(y, [batch.len()]), &device);
            let loss = loss_fn.forward(net.forward(x), y);
            let grads = GradientsParams::from_grads(loss.backward(), &net);
            net = optim.step(c.lr, net, grads);
        }
        let valid = net.valid();
        let mut layers = vec![dense(&valid.first)?];
        if let Some(l) = &valid.second {
            layers.push(dense(l)?);
        }
        let head = Head {
            kind: c.name(),
            mean: mean.clone(),
            scale: scale.clone(),
            layers,
        };
        let (val_loss, val_accuracy) = loss_and_accuracy(val, |i| head.logits(val.row(i)));
        if best.as_ref().is_none_or(|b| val_loss < b.val_loss) {
            best = Some(Fitted {
                kind: c.name(),
                best_epoch: epoch,
                val_loss,
                val_accuracy,
                head,
            });
        }
    }
    best.ok_or_else(|| facegender_pipeline::invalid!("no training epochs"))
}
