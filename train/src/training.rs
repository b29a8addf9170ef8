//! The training loop: config with a seed, AdamW with warm-up and cosine decay, class-balanced
//! epochs with online augmentation, validation, early stopping, checkpoints and resume. Every
//! artifact goes to one run folder:
//!
//! - `config.toml` (what was used), `classes.json`
//! - `history.csv` and `history.png` (loss and accuracy, train and validation, per epoch)
//! - `best.bpk` (lowest validation loss), `last/` (model, optimizer and scheduler of the last
//!   epoch, numbered, and the `state.json` that names them: resume)

use std::path::{Path, PathBuf};
use std::time::Instant;

use burn::lr_scheduler::LrSchedulerConfig;
use burn::lr_scheduler::LrSchedulerRecord;
use burn::lr_scheduler::cosine::CosineAnnealingLrSchedulerConfig;
use burn::lr_scheduler::linear::LinearLrSchedulerConfig;
use burn::lr_scheduler::module_lr_scheduler::ModuleLrScheduler;
use burn::lr_scheduler::sequential::SequentialLrSchedulerConfig;
use burn::module::{Module, ModuleVisitor, Param, ParamGroup};
use burn::nn::loss::{CrossEntropyLoss, CrossEntropyLossConfig};
use burn::optim::{AdamWConfig, GradientsParams, ModuleOptimizer};
use burn::tensor::{Device, Int, Tensor, TensorData};
use facegender_pipeline::Error;
use facegender_pipeline::error::Context;
use serde::{Deserialize, Serialize};

use facegender_pipeline::augment::Augment;
use facegender_pipeline::dataset::crops::Split;
use facegender_pipeline::dataset::groups::groups_from_labels;
use facegender_pipeline::{fsutil, progress};

use crate::data;
use crate::history::{self, EpochProfile, EpochStats};
use crate::model::{ModelConfig, Net};

/// burn's CPU backends that build here.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    /// burn-flex: pure-Rust CPU backend (SIMD, rayon).
    Flex,
    /// burn-ndarray (deprecated in burn 0.22).
    Ndarray,
}

impl Backend {
    /// The plain (inference) device.
    #[allow(deprecated)] // Device::ndarray is deprecated in burn 0.22; kept for the comparison
    pub fn device(self) -> Device {
        match self {
            Self::Flex => Device::flex(),
            Self::Ndarray => Device::ndarray(),
        }
    }
}

/// Optimisation settings (the `[train]` table).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrainSettings {
    pub epochs: usize,
    pub batch: usize,
    pub lr: f64,
    pub weight_decay: f32,
    pub warmup_epochs: usize,
    /// Stop after this many epochs without a lower validation loss.
    pub patience: usize,
    pub label_smoothing: f32,
    pub seed: u64,
    pub backend: Backend,
    /// Worker threads (0: all cores).
    pub threads: usize,
    /// Use at most this many training images (0: all), e.g. for a smoke run.
    pub limit: usize,
    /// Start from these weights (a run's `best.bpk`, same `[model]`) instead of a random
    /// initialisation; empty: random. The schedule and optimizer start afresh (a warm restart).
    pub init_from: String,
    /// FairFace-style labels.csv files (`path,gender,age_group,race`) that `oversample`'s groups
    /// are looked up in, matched on class and file stem as `eval --labels` does.
    pub labels: Vec<String>,
    /// `attribute=value` groups whose training crops enter each epoch this many times (before the
    /// classes are balanced), e.g. `"age_group=0-2" = 3`; a crop in two groups takes the larger.
    pub oversample: std::collections::BTreeMap<String, usize>,
    pub distill: Distill,
}

/// Distillation (the `[train.distill]` table): the loss is `(1 - weight)` times the labels'
/// cross-entropy plus `weight` times the cross-entropy against the teacher's softened outputs
/// (both at `temperature`, scaled by its square as in Hinton et al. 2015).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Distill {
    /// The teacher-logits file (see [`super::teacher`]); empty: no distillation.
    pub logits: String,
    pub weight: f32,
    pub temperature: f32,
}

impl Default for Distill {
    fn default() -> Self {
        Self {
            logits: String::new(),
            weight: 0.5,
            temperature: 2.0,
        }
    }
}

impl Default for TrainSettings {
    fn default() -> Self {
        Self {
            epochs: 30,
            batch: 64,
            lr: 2e-3,
            weight_decay: 5e-4,
            warmup_epochs: 1,
            patience: 6,
            label_smoothing: 0.05,
            seed: 42,
            backend: Backend::Flex,
            threads: 0,
            limit: 0,
            init_from: String::new(),
            labels: Vec::new(),
            oversample: Default::default(),
            distill: Distill::default(),
        }
    }
}

/// The whole training config (`--config FILE.toml`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrainConfig {
    pub model: ModelConfig,
    pub train: TrainSettings,
    pub augment: Augment,
}

impl TrainConfig {
    pub fn load(path: &Path) -> facegender_pipeline::Result<Self> {
        let s =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        toml::from_str(&s)
            .map_err(Error::other)
            .with_context(|| format!("{} is not a valid training config", path.display()))
    }

    pub fn validate(&self) -> facegender_pipeline::Result<()> {
        self.model.validate()?;
        let t = &self.train;
        facegender_pipeline::ensure!(t.epochs >= 1, "train.epochs must be at least 1");
        facegender_pipeline::ensure!(
            (2..=4096).contains(&t.batch),
            "train.batch must be 2..=4096"
        );
        facegender_pipeline::ensure!(t.lr > 0.0 && t.lr <= 1.0, "train.lr must be in (0, 1]");
        facegender_pipeline::ensure!(
            t.warmup_epochs <= t.epochs,
            "train.warmup_epochs must not exceed train.epochs"
        );
        facegender_pipeline::ensure!(
            (0.0..0.5).contains(&t.label_smoothing),
            "train.label_smoothing must be in [0, 0.5)"
        );
        facegender_pipeline::ensure!(
            t.oversample.is_empty() || !t.labels.is_empty(),
            "train.oversample needs train.labels (or --labels): the files that say which crops are in its groups"
        );
        facegender_pipeline::ensure!(
            (0.0..=1.0).contains(&t.distill.weight)
                && t.distill.temperature > 0.0
                && t.distill.temperature.is_finite(),
            "train.distill: weight must be in [0, 1] and temperature above 0"
        );
        for (g, &n) in &t.oversample {
            facegender_pipeline::ensure!(
                g.contains('=') && (1..=100).contains(&n),
                "train.oversample: {g:?} = {n}: expected \"attribute=value\" = 1..=100"
            );
        }
        Ok(())
    }
}

/// Progress saved with the last checkpoint.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct State {
    epoch: usize,
    best_val_loss: f64,
    best_epoch: usize,
    history: Vec<EpochStats>,
}

/// Forces lazy parameter initialisation right after seeding, so the initial weights depend only
/// on the seed and not on what runs first.
struct ForceInit;
impl ModuleVisitor for ForceInit {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let _ = param.val();
    }
}

fn optimizer(t: &TrainSettings) -> ModuleOptimizer {
    // no weight decay on biases and batch-norm scales and shifts
    let no_decay = ParamGroup::from_regex(r"(^|\.)(bias|gamma|beta)$").expect("valid regex");
    AdamWConfig::new()
        .with_weight_decay(t.weight_decay)
        .with_epsilon(1e-8)
        .init()
        .with_group(
            no_decay,
            AdamWConfig::new()
                .with_weight_decay(0.0)
                .with_epsilon(1e-8)
                .build(),
            None,
        )
}

fn scheduler(
    t: &TrainSettings,
    steps_per_epoch: usize,
) -> facegender_pipeline::Result<ModuleLrScheduler> {
    let warmup = (t.warmup_epochs * steps_per_epoch).max(1);
    let total = (t.epochs * steps_per_epoch).max(warmup + 1);
    SequentialLrSchedulerConfig::new(
        vec![
            LrSchedulerConfig::Linear(LinearLrSchedulerConfig::new(t.lr * 0.05, t.lr, warmup)),
            LrSchedulerConfig::Cosine(
                CosineAnnealingLrSchedulerConfig::new(t.lr, total - warmup)
                    .with_min_lr(t.lr * 0.01),
            ),
        ],
        vec![warmup],
    )
    .init()
    .map_err(|e| facegender_pipeline::invalid!("{e}"))
}

/// Mean loss and accuracy of `model` (evaluation mode) over a split.
pub fn evaluate(
    model: &Net,
    split: &Split,
    batch: usize,
    device: &Device,
    loss_fn: &CrossEntropyLoss,
) -> facegender_pipeline::Result<(f64, f64)> {
    let m = model.valid();
    let side = split.images.first().map_or(0, |i| i.width() as usize);
    let (mut loss, mut correct) = (0f64, 0usize);
    for chunk in (0..split.len()).collect::<Vec<_>>().chunks(batch) {
        let x = Tensor::<4>::from_data(
            TensorData::new(
                data::batch(split, chunk, None),
                [chunk.len(), 3, side, side],
            ),
            device,
        );
        let labels: Vec<i64> = chunk.iter().map(|&i| split.labels[i] as i64).collect();
        let y = Tensor::<1, Int>::from_data(TensorData::new(labels.clone(), [chunk.len()]), device);
        let logits = m.forward(x);
        loss += loss_fn.forward(logits.clone(), y).into_scalar::<f32>() as f64 * chunk.len() as f64;
        let pred: Vec<i64> = logits
            .argmax(1)
            .squeeze_dim::<1>(1)
            .try_into_vec_as::<i64>()
            .map_err(|e| facegender_pipeline::invalid!("{e:?}"))?;
        correct += pred.iter().zip(&labels).filter(|(a, b)| a == b).count();
    }
    let n = split.len().max(1) as f64;
    Ok((loss / n, correct as f64 / n))
}

/// Validation batch size (forward only, no autodiff graph): on the shipped config validation
/// is about 3 % of an epoch at this size, so it was left as it was.
const VAL_BATCH: usize = 256;

/// Augmented batches built ahead of burn.
const PREFETCH: usize = 2;

/// One augmented training batch, ready for burn.
struct Batch {
    step: usize,
    images: Vec<f32>,
    labels: Vec<i64>,
    /// The teacher's softened outputs, row-major `[n, classes]` (empty without distillation).
    soft: Vec<f32>,
}

/// Builds the epoch's batches on a thread of its own, [`PREFETCH`] ahead of the training
/// steps, so that augmentation runs while burn computes. The thread stops when the receiver is
/// dropped (a step failed) or the epoch's batches are done.
fn prefetch<'s>(
    scope: &'s std::thread::Scope<'s, '_>,
    train: &'s Split,
    order: &'s [usize],
    t: &'s TrainSettings,
    augment: &'s Augment,
    epoch: usize,
    soft: &'s [f32],
) -> std::sync::mpsc::Receiver<Batch> {
    let k = train.classes.len();
    let (tx, rx) = std::sync::mpsc::sync_channel(PREFETCH);
    scope.spawn(move || {
        for (step, idx) in order.chunks(t.batch).enumerate() {
            if idx.len() < 2 {
                continue; // batch norm needs two samples
            }
            let seed = t.seed ^ ((epoch * 1_000_003 + step) as u64);
            let b = Batch {
                step,
                images: data::batch_serial(train, idx, Some((augment, seed))),
                labels: idx.iter().map(|&i| train.labels[i] as i64).collect(),
                soft: idx
                    .iter()
                    .filter_map(|&i| soft.get(i * k..(i + 1) * k))
                    .flatten()
                    .copied()
                    .collect(),
            };
            if tx.send(b).is_err() {
                break;
            }
        }
    });
    rx
}

/// Trains a model on `train`, validating on `val`, writing everything to `out`.
pub fn train(
    cfg: &TrainConfig,
    train: &Split,
    val: &Split,
    out: &Path,
    resume: bool,
    progress: bool,
) -> facegender_pipeline::Result<Vec<EpochStats>> {
    cfg.validate()?;
    let t = &cfg.train;
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let last = out.join("last");
    let resuming = resume && last.join("state.json").exists();
    if !resuming && out.join("history.csv").exists() {
        facegender_pipeline::bail!(
            "{} already holds a run; pass --resume to continue it or choose another --out",
            out.display()
        );
    }
    fsutil::write_replace(
        &out.join("config.toml"),
        toml::to_string_pretty(cfg)
            .map_err(Error::other)?
            .as_bytes(),
    )?;
    fsutil::write_replace(
        &out.join("classes.json"),
        &serde_json::to_vec(&train.classes)?,
    )?;

    let plain = t.backend.device();
    let device = plain.clone().autodiff();
    device.seed(t.seed);
    let repeats = oversampling(t, train)?;
    let soft = teacher_targets(t, train)?;
    let steps_per_epoch =
        data::balanced_len(&train.labels, &repeats, train.classes.len()).div_ceil(t.batch);
    let mut model = cfg.model.init(&device);
    model.visit(&mut ForceInit);
    let mut optim = optimizer(t);
    let mut sched = scheduler(t, steps_per_epoch)?;
    let mut state = State {
        epoch: 0,
        best_val_loss: f64::INFINITY,
        best_epoch: 0,
        history: Vec::new(),
    };
    if !resuming && !t.init_from.is_empty() {
        model = model.try_load_file(&t.init_from).map_err(|e| {
            facegender_pipeline::invalid!("loading --init-from {}: {e:?}", t.init_from)
        })?;
        eprintln!("starting from the weights in {}", t.init_from);
    }
    if resuming {
        state = serde_json::from_slice(&std::fs::read(last.join("state.json"))?)?;
        let file = |name: &str| {
            let numbered = checkpoint_file(&last, name, state.epoch);
            // runs saved before checkpoints were numbered
            if numbered.exists() {
                numbered
            } else {
                last.join(format!("{name}.bpk"))
            }
        };
        model = model
            .try_load_file(file("model"))
            .map_err(|e| facegender_pipeline::invalid!("loading checkpoint: {e:?}"))?;
        optim = optim
            .load(file("optim"))
            .map_err(|e| facegender_pipeline::invalid!("loading optimizer: {e:?}"))?;
        sched = sched.load_record(
            LrSchedulerRecord::load(file("sched"))
                .map_err(|e| facegender_pipeline::invalid!("loading scheduler: {e:?}"))?,
        );
        eprintln!(
            "resuming after epoch {} (best validation loss {:.4} at epoch {})",
            state.epoch, state.best_val_loss, state.best_epoch
        );
    }
    let loss_fn = CrossEntropyLossConfig::new()
        .with_smoothing((t.label_smoothing > 0.0).then_some(t.label_smoothing))
        .init(&device);
    let eval_loss = CrossEntropyLossConfig::new().init(&plain);
    let side = cfg.model.input;
    for epoch in state.epoch + 1..=t.epochs {
        if state.epoch > 0 && epoch - state.best_epoch > t.patience {
            eprintln!(
                "early stop: no better validation loss for {} epochs",
                t.patience
            );
            break;
        }
        let started = Instant::now();
        let order = data::balanced_order_repeated(
            &train.labels,
            &repeats,
            train.classes.len(),
            t.seed,
            epoch,
        );
        let bar = progress::styled(
            order.len(),
            progress,
            "epoch {prefix} [{bar:25}] {pos}/{len} {per_sec} ETA {eta} {msg}",
        );
        bar.set_prefix(format!("{epoch}/{}", t.epochs));
        let mut profile = EpochProfile::default();
        let (mut loss_sum, mut correct, mut seen, mut lr) = (0f64, 0usize, 0usize, t.lr);
        // the model moves into the scope (burn's optimizer step takes it by value) and back out
        model = std::thread::scope(|scope| -> facegender_pipeline::Result<Net> {
            let mut model = model;
            let batches = prefetch(scope, train, &order, t, &cfg.augment, epoch, &soft);
            loop {
                let waited = Instant::now();
                let Ok(b) = batches.recv() else { break };
                profile.batches += waited.elapsed().as_secs_f64();

                let stepped = Instant::now();
                let n = b.labels.len();
                let x =
                    Tensor::<4>::from_data(TensorData::new(b.images, [n, 3, side, side]), &device);
                let y =
                    Tensor::<1, Int>::from_data(TensorData::new(b.labels.clone(), [n]), &device);
                let logits = model.forward(x);
                let mut loss = loss_fn.forward(logits.clone(), y);
                if !b.soft.is_empty() {
                    let (w, temp) = (t.distill.weight, t.distill.temperature);
                    let k = train.classes.len();
                    let p = Tensor::<2>::from_data(TensorData::new(b.soft, [n, k]), &device);
                    let log_q =
                        burn::tensor::activation::log_softmax(logits.clone().div_scalar(temp), 1);
                    let soft_ce = (p * log_q).sum_dim(1).mean().neg().mul_scalar(temp * temp);
                    loss = loss.mul_scalar(1.0 - w) + soft_ce.mul_scalar(w);
                }
                let loss_value = loss.clone().into_scalar::<f32>() as f64;
                facegender_pipeline::ensure!(
                    loss_value.is_finite(),
                    "training diverged (loss {loss_value}) at epoch {epoch}, step {}",
                    b.step
                );
                let grads = GradientsParams::from_grads(loss.backward(), &model);
                let rate = sched.step();
                lr = rate.base();
                model = optim.step(rate, model, grads);
                profile.steps += stepped.elapsed().as_secs_f64();

                let measured = Instant::now();
                let pred: Vec<i64> = logits
                    .argmax(1)
                    .squeeze_dim::<1>(1)
                    .try_into_vec_as::<i64>()
                    .map_err(|e| facegender_pipeline::invalid!("{e:?}"))?;
                loss_sum += loss_value * n as f64;
                correct += pred.iter().zip(&b.labels).filter(|(a, b)| a == b).count();
                seen += n;
                bar.inc(n as u64);
                bar.set_message(format!(
                    "loss {:.4} acc {:.3}",
                    loss_sum / seen as f64,
                    correct as f64 / seen as f64
                ));
                profile.metrics += measured.elapsed().as_secs_f64();
            }
            Ok(model)
        })?;
        bar.finish_and_clear();
        let validated = Instant::now();
        let (val_loss, val_acc) = evaluate(&model, val, VAL_BATCH, &plain, &eval_loss)?;
        profile.validation = validated.elapsed().as_secs_f64();
        let mut stats = EpochStats {
            epoch,
            lr,
            train_loss: loss_sum / seen.max(1) as f64,
            train_acc: correct as f64 / seen.max(1) as f64,
            val_loss,
            val_acc,
            seconds: 0.0,
            images_per_s: 0.0,
            profile,
        };
        let saved = Instant::now();
        state.epoch = epoch;
        if val_loss < state.best_val_loss {
            state.best_val_loss = val_loss;
            state.best_epoch = epoch;
            save_model(&model, &out.join("best.bpk"))?;
        }
        // last checkpoint: this epoch's model, optimizer and scheduler first (a kill at any
        // point leaves a complete set named by state.json)
        std::fs::create_dir_all(&last)?;
        save_model(&model, &checkpoint_file(&last, "model", epoch))?;
        optim
            .save(checkpoint_file(&last, "optim", epoch))
            .map_err(|e| facegender_pipeline::invalid!("saving optimizer: {e:?}"))?;
        sched
            .to_record()
            .save(checkpoint_file(&last, "sched", epoch))
            .map_err(|e| facegender_pipeline::invalid!("saving scheduler: {e:?}"))?;
        // the chart (it shows no timings), then the epoch's figures; then history.csv and the
        // state that points at the checkpoints, each written once (the milliseconds of these
        // two small writes are not in the figures), then the previous epoch's files go
        state.history.push(stats.clone());
        history::chart(&out.join("history.png"), &state.history)?;
        stats.profile.save = saved.elapsed().as_secs_f64();
        stats.seconds = started.elapsed().as_secs_f64();
        stats.images_per_s = seen as f64 / stats.seconds.max(f64::MIN_POSITIVE);
        if let Some(last_stats) = state.history.last_mut() {
            *last_stats = stats.clone();
        }
        history::write_csv(out, &state.history)?;
        fsutil::write_replace(
            &last.join("state.json"),
            &serde_json::to_vec_pretty(&state)?,
        )?;
        remove_older_checkpoints(&last, epoch);
        eprintln!(
            "epoch {epoch:>3}: train loss {:.4} acc {:.4} | val loss {:.4} acc {:.4} | lr {:.2e} | {:.0} s, {:.0} images/s, {}",
            stats.train_loss,
            stats.train_acc,
            val_loss,
            val_acc,
            lr,
            stats.seconds,
            stats.images_per_s,
            stats.profile.summary(stats.seconds)
        );
    }
    Ok(state.history)
}

/// `last/NAME-EPOCH.bpk`.
fn checkpoint_file(last: &Path, name: &str, epoch: usize) -> PathBuf {
    last.join(format!("{name}-{epoch}.bpk"))
}

/// Removes `last/*.bpk` files other than `epoch`'s (best effort: a leftover file only costs
/// space, and resume reads the files `state.json` names).
fn remove_older_checkpoints(last: &Path, epoch: usize) {
    let keep: Vec<PathBuf> = ["model", "optim", "sched"]
        .iter()
        .map(|n| checkpoint_file(last, n, epoch))
        .collect();
    if let Ok(entries) = std::fs::read_dir(last) {
        for p in entries.flatten().map(|e| e.path()) {
            if p.extension().is_some_and(|x| x == "bpk") && !keep.contains(&p) {
                let _ = std::fs::remove_file(p);
            }
        }
    }
}

/// The teacher's softened outputs for every training crop from `train.distill.logits` (empty
/// when there is none), with a line saying so.
fn teacher_targets(t: &TrainSettings, train: &Split) -> facegender_pipeline::Result<Vec<f32>> {
    let d = &t.distill;
    if d.logits.is_empty() {
        return Ok(Vec::new());
    }
    let logits = crate::teacher::read(Path::new(&d.logits), train)?;
    let agree = logits
        .chunks_exact(train.classes.len())
        .zip(&train.labels)
        .filter(|(row, l)| {
            row.iter()
                .enumerate()
                .max_by(|a, b| a.1.total_cmp(b.1))
                .map(|(i, _)| i)
                == Some(**l)
        })
        .count();
    eprintln!(
        "distilling from {} (weight {}, temperature {}): the teacher agrees with {:.1} % of the training labels",
        d.logits,
        d.weight,
        d.temperature,
        100.0 * agree as f64 / train.len().max(1) as f64
    );
    Ok(crate::teacher::soften(
        &logits,
        train.classes.len(),
        d.temperature,
    ))
}

/// Each training crop's repeat count from `train.oversample` (empty when it is), with a line on
/// what it does to the epoch.
fn oversampling(t: &TrainSettings, train: &Split) -> facegender_pipeline::Result<Vec<usize>> {
    if t.oversample.is_empty() {
        return Ok(Vec::new());
    }
    let files: Vec<PathBuf> = t.labels.iter().map(PathBuf::from).collect();
    let groups = groups_from_labels(&files, train)?;
    let unlabelled = groups.iter().filter(|g| g.is_empty()).count();
    facegender_pipeline::ensure!(
        unlabelled < train.len(),
        "train.oversample: none of the {} training crops is in {:?}",
        train.len(),
        t.labels
    );
    let repeats: Vec<usize> = groups
        .iter()
        .map(|g| {
            g.iter()
                .filter_map(|a| t.oversample.get(a))
                .copied()
                .max()
                .unwrap_or(1)
        })
        .collect();
    let counts: Vec<String> = t
        .oversample
        .iter()
        .map(|(g, n)| {
            let k = groups.iter().filter(|gs| gs.contains(g)).count();
            format!("{g} x{n} ({k} crops)")
        })
        .collect();
    eprintln!(
        "oversampling {}; {} crops without labels; an epoch is {} crops (from {})",
        counts.join(", "),
        unlabelled,
        data::balanced_len(&train.labels, &repeats, train.classes.len()),
        data::balanced_len(&train.labels, &[], train.classes.len()),
    );
    Ok(repeats)
}

fn save_model(model: &Net, path: &PathBuf) -> facegender_pipeline::Result<()> {
    model
        .valid()
        .save_file(path)
        .map_err(|e| facegender_pipeline::invalid!("saving {}: {e:?}", path.display()))
}

/// Mean seconds per training step and the losses of `steps` steps on `backend`, for the backend
/// comparison (`facegender train --compare-backends`).
pub fn time_steps(
    cfg: &TrainConfig,
    train: &Split,
    backend: Backend,
    steps: usize,
) -> facegender_pipeline::Result<(f64, Vec<f32>)> {
    let t = &cfg.train;
    let device = backend.device().autodiff();
    device.seed(t.seed);
    let mut model = cfg.model.init(&device);
    model.visit(&mut ForceInit);
    let mut optim = optimizer(t);
    let loss_fn = CrossEntropyLossConfig::new().init(&device);
    let side = cfg.model.input;
    let order = data::balanced_order(&train.labels, train.classes.len(), t.seed, 1);
    let mut losses = Vec::new();
    let mut elapsed = 0.0;
    for (step, idx) in order.chunks(t.batch).take(steps + 1).enumerate() {
        let images = data::batch(train, idx, None);
        let labels: Vec<i64> = idx.iter().map(|&i| train.labels[i] as i64).collect();
        let started = Instant::now();
        let x =
            Tensor::<4>::from_data(TensorData::new(images, [idx.len(), 3, side, side]), &device);
        let y = Tensor::<1, Int>::from_data(TensorData::new(labels, [idx.len()]), &device);
        let loss = loss_fn.forward(model.forward(x), y);
        losses.push(loss.clone().into_scalar::<f32>());
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        model = optim.step(t.lr, model, grads);
        if step > 0 {
            elapsed += started.elapsed().as_secs_f64(); // the first step warms caches up
        }
    }
    Ok((elapsed / steps.max(1) as f64, losses))
}
