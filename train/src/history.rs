//! What each epoch measured: [`EpochStats`] and its profile, written as `history.csv` and
//! drawn as `history.png` after every epoch.

use std::io::Write;
use std::path::Path;

use facegender_pipeline::eval::chart::err;
use facegender_pipeline::fsutil;
use plotters::prelude::*;
use serde::{Deserialize, Serialize};

/// Loss and accuracy per epoch, train and validation, side by side.
pub fn chart(path: &Path, h: &[EpochStats]) -> facegender_pipeline::Result<()> {
    let root = BitMapBackend::new(path, (1000, 420)).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let (left, right) = root.split_horizontally(500);
    let epochs = h.last().map_or(1, |e| e.epoch).max(2) as f64;
    type Get = fn(&EpochStats) -> f64;
    let panels: [(&DrawingArea<_, _>, &str, Get, Get); 2] = [
        (&left, "loss", |e| e.train_loss, |e| e.val_loss),
        (&right, "accuracy", |e| e.train_acc, |e| e.val_acc),
    ];
    for (area, name, train, val) in panels {
        let all: Vec<f64> = h
            .iter()
            .flat_map(|e| [train(e), val(e)])
            .filter(|v| v.is_finite())
            .collect();
        let (lo, hi) = all
            .iter()
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &v| {
                (a.min(v), b.max(v))
            });
        let (lo, hi) = if lo.is_finite() {
            (lo - 0.02 * (hi - lo + 1e-9), hi + 0.02 * (hi - lo + 1e-9))
        } else {
            (0.0, 1.0)
        };
        let mut chart = ChartBuilder::on(area)
            .caption(name, ("sans-serif", 22))
            .margin(12)
            .x_label_area_size(32)
            .y_label_area_size(52)
            .build_cartesian_2d(1f64..epochs, lo..hi)
            .map_err(err)?;
        chart.configure_mesh().x_desc("epoch").draw().map_err(err)?;
        for (label, get, color) in [("train", train, BLUE), ("validation", val, RED)] {
            chart
                .draw_series(LineSeries::new(
                    h.iter().map(|e| (e.epoch as f64, get(e))),
                    color.stroke_width(2),
                ))
                .map_err(err)?
                .label(label)
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2))
                });
        }
        chart
            .configure_series_labels()
            .border_style(BLACK)
            .background_style(WHITE)
            .draw()
            .map_err(err)?;
    }
    root.present().map_err(err)?;
    Ok(())
}

/// One epoch's figures.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EpochStats {
    pub epoch: usize,
    pub lr: f64,
    pub train_loss: f64,
    pub train_acc: f64,
    pub val_loss: f64,
    pub val_acc: f64,
    pub seconds: f64,
    /// Training images per second over the whole epoch (validation and checkpoint included).
    #[serde(default)]
    pub images_per_s: f64,
    /// Where the epoch's wall time went.
    #[serde(default)]
    pub profile: EpochProfile,
}

/// Where one epoch's wall time went, in seconds. `steps` is what `train --compare-backends`
/// times (tensors in, forward, loss, backward, optimizer step); the rest is the loop's overhead.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct EpochProfile {
    /// burn's training steps.
    pub steps: f64,
    /// Waiting for the next augmented batch (built on another thread while burn computes).
    pub batches: f64,
    /// Reading the loss and predictions back, progress output.
    pub metrics: f64,
    pub validation: f64,
    /// Checkpoints, history and its chart.
    pub save: f64,
}

impl EpochProfile {
    pub fn total(&self) -> f64 {
        self.steps + self.batches + self.metrics + self.validation + self.save
    }

    /// Share of an epoch of `wall` seconds spent outside burn's training steps (the timed
    /// phases and whatever the loop did between them).
    pub fn outside_share(&self, wall: f64) -> f64 {
        let wall = wall.max(self.total());
        if wall > 0.0 {
            1.0 - self.steps / wall
        } else {
            0.0
        }
    }

    /// `outside burn's steps 8.1 % (batches 0.4, metrics 0.3, validation 6.9, save 0.5, other
    /// 0.0)`, in per cent of the epoch's `wall` seconds.
    pub fn summary(&self, wall: f64) -> String {
        let wall = wall.max(self.total());
        let pct = |x: f64| 100.0 * x / wall.max(f64::MIN_POSITIVE);
        format!(
            "outside burn's steps {:.1} % (batches {:.1}, metrics {:.1}, validation {:.1}, save {:.1}, other {:.1})",
            100.0 * self.outside_share(wall),
            pct(self.batches),
            pct(self.metrics),
            pct(self.validation),
            pct(self.save),
            pct(wall - self.total())
        )
    }
}

/// `history.csv`: one line per epoch, with its throughput and profile.
pub fn write_csv(out: &Path, h: &[EpochStats]) -> facegender_pipeline::Result<()> {
    let mut csv = Vec::new();
    writeln!(
        csv,
        "epoch,lr,train_loss,train_acc,val_loss,val_acc,seconds,images_per_s,steps_s,batches_s,metrics_s,validation_s,save_s"
    )?;
    for e in h {
        let p = &e.profile;
        writeln!(
            csv,
            "{},{:.6e},{:.6},{:.6},{:.6},{:.6},{:.1},{:.1},{:.2},{:.2},{:.2},{:.2},{:.2}",
            e.epoch,
            e.lr,
            e.train_loss,
            e.train_acc,
            e.val_loss,
            e.val_acc,
            e.seconds,
            e.images_per_s,
            p.steps,
            p.batches,
            p.metrics,
            p.validation,
            p.save
        )?;
    }
    Ok(fsutil::write_replace(&out.join("history.csv"), &csv)?)
}
