//! PNG charts (plotters): the confusion matrix and the ROC curve. (Training curves are
//! `facegender_train::history`.)

use std::path::Path;

use plotters::prelude::*;

pub fn err<E: std::fmt::Debug>(e: E) -> crate::Error {
    crate::invalid!("plotting: {e:?}")
}

/// Confusion matrix (counts, rows = true class) next to the ROC curve of the positive class.
pub fn confusion_and_roc(
    path: &Path,
    classes: &[String],
    confusion: &[Vec<usize>],
    roc: &[(f64, f64)],
    auc: f64,
    title: &str,
) -> crate::Result<()> {
    let root = BitMapBackend::new(path, (900, 440)).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let root = root.titled(title, ("sans-serif", 20)).map_err(err)?;
    let (left, right) = root.split_horizontally(440);
    let n = classes.len();
    let max = confusion
        .iter()
        .flatten()
        .copied()
        .max()
        .unwrap_or(1)
        .max(1) as f64;
    let mut chart = ChartBuilder::on(&left)
        .caption(
            "confusion matrix (rows: true, columns: predicted)",
            ("sans-serif", 15),
        )
        .margin(12)
        .x_label_area_size(30)
        .y_label_area_size(70)
        .build_cartesian_2d(0..n, 0..n)
        .map_err(err)?;
    chart
        .configure_mesh()
        .disable_mesh()
        .x_labels(n)
        .y_labels(n)
        .x_label_formatter(&|i| classes.get(*i).cloned().unwrap_or_default())
        .y_label_formatter(&|i| {
            // plotters also asks for the label at the range's end (i == n)
            n.checked_sub(1 + *i)
                .and_then(|k| classes.get(k).cloned())
                .unwrap_or_default()
        })
        .draw()
        .map_err(err)?;
    for (t, row) in confusion.iter().enumerate() {
        for (p, &count) in row.iter().enumerate() {
            let y = n - 1 - t;
            let shade = (255.0 * (1.0 - 0.8 * count as f64 / max)) as u8;
            chart
                .draw_series(std::iter::once(Rectangle::new(
                    [(p, y), (p + 1, y + 1)],
                    RGBColor(shade, shade, 255).filled(),
                )))
                .map_err(err)?;
            let pos = chart.backend_coord(&(p, y + 1));
            let cell = chart.backend_coord(&(p + 1, y));
            let centre = ((pos.0 + cell.0) / 2 - 20, (pos.1 + cell.1) / 2 - 8);
            left.draw(&Text::new(format!("{count}"), centre, ("sans-serif", 20)))
                .map_err(err)?;
        }
    }
    let mut roc_chart = ChartBuilder::on(&right)
        .caption(format!("ROC, AUC = {auc:.4}"), ("sans-serif", 15))
        .margin(12)
        .x_label_area_size(32)
        .y_label_area_size(42)
        .build_cartesian_2d(0f64..1f64, 0f64..1f64)
        .map_err(err)?;
    roc_chart
        .configure_mesh()
        .x_desc("false positive rate")
        .y_desc("true positive rate")
        .draw()
        .map_err(err)?;
    roc_chart
        .draw_series(LineSeries::new(
            vec![(0.0, 0.0), (1.0, 1.0)],
            BLACK.mix(0.3),
        ))
        .map_err(err)?;
    roc_chart
        .draw_series(LineSeries::new(roc.iter().copied(), RED.stroke_width(2)))
        .map_err(err)?;
    root.present().map_err(err)?;
    Ok(())
}
