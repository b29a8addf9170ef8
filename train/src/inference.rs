//! A trained model rebuilt from its run folder alone: `config.toml`, `classes.json`, `best.bpk`.

use std::path::Path;

use burn::module::Module;
use burn::tensor::{Device, Tensor, TensorData};
use facegender_pipeline::dataset::crops::Split;
use facegender_pipeline::error::Context;
use facegender_pipeline::eval::{Engine, Outputs};

use crate::data;
use crate::model::Net;
use crate::training::TrainConfig;

/// The float model of a run, on the CPU.
pub struct Trained {
    pub config: TrainConfig,
    pub classes: Vec<String>,
    pub net: Net,
    pub device: Device,
}

impl Trained {
    pub fn load(run: &Path) -> facegender_pipeline::Result<Self> {
        let config = TrainConfig::load(&run.join("config.toml"))?;
        let classes: Vec<String> = serde_json::from_slice(
            &std::fs::read(run.join("classes.json"))
                .with_context(|| format!("{} is not a training run", run.display()))?,
        )?;
        let device = config.train.backend.device();
        let best = run.join("best.bpk");
        facegender_pipeline::ensure!(
            best.exists(),
            "{} has no best.bpk: has training finished an epoch?",
            run.display()
        );
        let net = config
            .model
            .init(&device)
            .try_load_file(&best)
            .map_err(|e| facegender_pipeline::invalid!("loading {}: {e:?}", best.display()))?;
        Ok(Self {
            config,
            classes,
            net,
            device,
        })
    }

    /// Logits for every image of `split` (row-major `[n, classes]`), in batches of 256;
    /// `done(n)` after each batch of `n`.
    pub fn all_logits(
        &self,
        split: &Split,
        mut done: impl FnMut(usize),
    ) -> facegender_pipeline::Result<Vec<f32>> {
        let idx: Vec<usize> = (0..split.len()).collect();
        let mut out = Vec::with_capacity(split.len() * self.classes.len());
        for chunk in idx.chunks(256) {
            out.extend(self.logits(split, chunk)?);
            done(chunk.len());
        }
        Ok(out)
    }

    /// Logits for the images at `idx` of `split` (row-major `[n, classes]`).
    pub fn logits(&self, split: &Split, idx: &[usize]) -> facegender_pipeline::Result<Vec<f32>> {
        let side = self.config.model.input;
        let x = Tensor::<4>::from_data(
            TensorData::new(data::batch(split, idx, None), [idx.len(), 3, side, side]),
            &self.device,
        );
        self.net
            .forward(x)
            .try_into_vec_as::<f32>()
            .map_err(|e| facegender_pipeline::invalid!("{e:?}"))
    }
}

/// Runs the float model of `run` on every image.
pub fn run_float(run: &Path, split: &Split) -> facegender_pipeline::Result<Outputs> {
    let t = Trained::load(run)?;
    let flat = t.all_logits(split, |_| {})?;
    let logits = flat.chunks(t.classes.len()).map(<[f32]>::to_vec).collect();
    Ok(Outputs {
        engine: Engine::Float,
        logits,
        int8: None,
    })
}
