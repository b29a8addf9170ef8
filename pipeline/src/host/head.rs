//! The head on the descriptor: standardise, then dense layers with ReLU between them; logits out.
//! Trained by `facegender train-host` (burn), stored in `host.json`, run here in plain f32.

use serde::{Deserialize, Serialize};

/// One dense layer: `out[j] = bias[j] + sum_i weights[j][i] * x[i]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Dense {
    /// `[outputs][inputs]`.
    pub weights: Vec<Vec<f32>>,
    pub bias: Vec<f32>,
}

/// A logistic head (one layer) or a small MLP (two).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Head {
    /// `logistic` or `mlp-<hidden>`.
    pub kind: String,
    /// Per component: `(d - mean) / scale` before the first layer (the training set's).
    pub mean: Vec<f32>,
    pub scale: Vec<f32>,
    pub layers: Vec<Dense>,
}

impl Head {
    /// Checks that the layers chain from the descriptor's length to `classes` logits.
    pub fn check(&self, inputs: usize, classes: usize) -> crate::Result<()> {
        crate::ensure!(
            self.mean.len() == inputs && self.scale.len() == inputs,
            "head: standardisation has {} values for {inputs} descriptor components",
            self.mean.len()
        );
        crate::ensure!(
            self.scale.iter().all(|s| s.is_finite() && *s > 0.0),
            "head: a standardisation scale is not positive"
        );
        let mut n = inputs;
        for (i, l) in self.layers.iter().enumerate() {
            crate::ensure!(
                !l.weights.is_empty() && l.weights.len() == l.bias.len(),
                "head: layer {i} has {} rows and {} biases",
                l.weights.len(),
                l.bias.len()
            );
            crate::ensure!(
                l.weights.iter().all(|r| r.len() == n),
                "head: layer {i} does not take {n} inputs"
            );
            n = l.weights.len();
        }
        crate::ensure!(
            !self.layers.is_empty() && n == classes,
            "head: ends in {n} outputs, not {classes}"
        );
        Ok(())
    }

    /// The logits of one descriptor.
    pub fn logits(&self, descriptor: &[f32]) -> Vec<f32> {
        let mut x: Vec<f32> = descriptor
            .iter()
            .zip(self.mean.iter().zip(&self.scale))
            .map(|(d, (m, s))| (d - m) / s)
            .collect();
        for (i, l) in self.layers.iter().enumerate() {
            x = l
                .weights
                .iter()
                .zip(&l.bias)
                .map(|(row, b)| b + row.iter().zip(&x).map(|(w, v)| w * v).sum::<f32>())
                .collect();
            if i + 1 < self.layers.len() {
                x.iter_mut().for_each(|v| *v = v.max(0.0));
            }
        }
        x
    }
}

/// The combination: a weighted sum of the head's and the student's logits.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Weights {
    pub head: f32,
    pub student: f32,
}

impl Weights {
    pub fn combine(&self, head: &[f32], student: &[f32]) -> Vec<f32> {
        head.iter()
            .zip(student)
            .map(|(h, s)| self.head * h + self.student * s)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head() -> Head {
        Head {
            kind: "mlp-2".into(),
            mean: vec![1.0, 0.0],
            scale: vec![2.0, 1.0],
            layers: vec![
                Dense {
                    weights: vec![vec![1.0, 0.0], vec![0.0, -1.0]],
                    bias: vec![0.0, 0.5],
                },
                Dense {
                    weights: vec![vec![1.0, 1.0], vec![-1.0, 2.0]],
                    bias: vec![0.0, 0.0],
                },
            ],
        }
    }

    #[test]
    fn standardises_then_applies_relu_between_layers_only() {
        // x = ((3 - 1) / 2, 2 / 1) = (1, 2); hidden = relu(1, 0.5 - 2) = (1, 0)
        assert_eq!(head().logits(&[3.0, 2.0]), vec![1.0, -1.0]);
    }

    #[test]
    fn check_refuses_layers_that_do_not_chain() {
        assert!(head().check(2, 2).is_ok());
        assert!(head().check(3, 2).is_err());
        assert!(head().check(2, 3).is_err());
        let mut h = head();
        h.layers[1].weights[0].pop();
        assert!(h.check(2, 2).is_err());
        let mut h = head();
        h.scale[0] = 0.0;
        assert!(h.check(2, 2).is_err());
    }

    #[test]
    fn weights_mix_logits() {
        let w = Weights {
            head: 0.75,
            student: 0.25,
        };
        assert_eq!(w.combine(&[4.0, 0.0], &[0.0, 8.0]), vec![3.0, 2.0]);
    }
}
