//! Results as columns: one numpy array per field, one row per face and one row for each photo
//! without a face or that could not be read, so that a batch goes straight into a data frame,
//! Arrow or Parquet. Rows that lack a value hold NaN (floats), zeros (integers), None (objects);
//! `has_logits` tells which rows were classified.

use facegender_pipeline::predict::ImageResult;
use facegender_pipeline::predictor::Predictor;
use facegender_pipeline::preprocess::Entry;
use numpy::ndarray::{Array1, ArrayD, IxDyn};
use numpy::{PyArray1, PyArrayDyn};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyString};

/// A column of Python objects (strings or None).
fn objects<'py>(py: Python<'py>, v: Vec<Option<String>>) -> PyResult<Bound<'py, PyAny>> {
    let items: Vec<Py<PyAny>> = v
        .into_iter()
        .map(|s| match s {
            Some(s) => PyString::new(py, &s).into_any().unbind(),
            None => py.None(),
        })
        .collect();
    Ok(PyArray1::from_vec(py, items).into_any())
}

fn flat<T: Copy>(rows: &[Vec<T>], width: usize, fill: T) -> Vec<T> {
    rows.iter()
        .flat_map(|r| {
            let mut r = r.clone();
            r.resize(width, fill);
            r
        })
        .collect()
}

/// Rows of `inner`-shaped values as one N x inner... array, short rows padded with `fill`.
fn rows<'py, T: numpy::Element + Copy>(
    py: Python<'py>,
    rows: &[Vec<T>],
    inner: &[usize],
    fill: T,
) -> PyResult<Bound<'py, PyAny>> {
    let width = inner.iter().product();
    let shape: Vec<usize> = std::iter::once(rows.len())
        .chain(inner.iter().copied())
        .collect();
    let a = ArrayD::from_shape_vec(IxDyn(&shape), flat(rows, width, fill))
        .map_err(|e| pyo3::exceptions::PyValueError::new_err(e.to_string()))?;
    Ok(PyArrayDyn::from_owned_array(py, a).into_any())
}

/// The columns of `predict` results (`photo` is the index of the input each row came from).
pub fn faces<'py>(
    py: Python<'py>,
    results: &[ImageResult],
    p: &Predictor,
) -> PyResult<Bound<'py, PyDict>> {
    let k = p.classes().len();
    let logit_width = if p.options().config.mirror { 2 * k } else { k };
    let device = p.options().device_chain;
    let mut c = Columns::default();
    for (i, r) in results.iter().enumerate() {
        let image = Some(r.image.to_string_lossy().into_owned());
        if r.faces.is_empty() {
            c.photo.push(i as i64);
            c.image.push(image);
            c.status.push(Some(r.status.to_string()));
            c.error.push(r.error.clone());
            c.face.push(-1);
            c.bbox.push(vec![]);
            c.score.push(f32::NAN);
            c.label.push(None);
            c.probability.push(f32::NAN);
            c.logits.push(vec![]);
            c.has_logits.push(false);
            c.head.push(vec![]);
            c.combined.push(vec![]);
            c.landmarks.push(vec![]);
            c.keypoints.push(vec![]);
            continue;
        }
        for f in &r.faces {
            c.photo.push(i as i64);
            c.image.push(image.clone());
            c.status.push(Some(f.status.to_string()));
            c.error.push(r.error.clone());
            c.face.push(f.face as i64);
            c.bbox.push(f.bbox.to_vec());
            c.score.push(f.score);
            c.label.push(f.label.clone());
            c.probability.push(f.probability.unwrap_or(f32::NAN));
            c.has_logits.push(f.logits.is_some());
            c.logits.push(f.logits.clone().unwrap_or_default());
            c.head.push(f.head_logits.clone().unwrap_or_default());
            c.combined
                .push(f.combined_logits.clone().unwrap_or_default());
            c.landmarks
                .push(f.landmarks.iter().flat_map(|&[x, y]| [x, y]).collect());
            c.keypoints.push(
                f.keypoints
                    .iter()
                    .flatten()
                    .flat_map(|&[x, y]| [x, y])
                    .collect(),
            );
        }
    }
    let d = PyDict::new(py);
    d.set_item("photo", PyArray1::from_vec(py, c.photo))?;
    d.set_item("image", objects(py, c.image)?)?;
    d.set_item("status", objects(py, c.status)?)?;
    d.set_item("error", objects(py, c.error)?)?;
    d.set_item("face", PyArray1::from_vec(py, c.face))?;
    d.set_item("box", rows(py, &c.bbox, &[4], f32::NAN)?)?;
    d.set_item("score", PyArray1::from_vec(py, c.score))?;
    d.set_item("label", objects(py, c.label)?)?;
    d.set_item("probability", PyArray1::from_vec(py, c.probability))?;
    d.set_item("logits", rows(py, &c.logits, &[logit_width], 0i8)?)?;
    d.set_item("has_logits", PyArray1::from_vec(py, c.has_logits))?;
    if p.is_host_model() {
        d.set_item("head_logits", rows(py, &c.head, &[k], f32::NAN)?)?;
        d.set_item("combined_logits", rows(py, &c.combined, &[k], f32::NAN)?)?;
    }
    if device {
        d.set_item("keypoints", rows(py, &c.keypoints, &[6, 2], f32::NAN)?)?;
    } else {
        d.set_item("landmarks", rows(py, &c.landmarks, &[68, 2], 0i32)?)?;
    }
    Ok(d)
}

#[derive(Default)]
struct Columns {
    photo: Vec<i64>,
    image: Vec<Option<String>>,
    status: Vec<Option<String>>,
    error: Vec<Option<String>>,
    face: Vec<i64>,
    bbox: Vec<Vec<f32>>,
    score: Vec<f32>,
    label: Vec<Option<String>>,
    probability: Vec<f32>,
    logits: Vec<Vec<i8>>,
    has_logits: Vec<bool>,
    head: Vec<Vec<f32>>,
    combined: Vec<Vec<f32>>,
    landmarks: Vec<Vec<i32>>,
    keypoints: Vec<Vec<f32>>,
}

/// The columns of `crops`: one row per photo, as `preprocess`'s report has them.
pub fn crops<'py>(py: Python<'py>, entries: &[Entry]) -> PyResult<Bound<'py, PyDict>> {
    let status = |e: &Entry| {
        serde_json::to_value(e.status)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
    };
    let d = PyDict::new(py);
    d.set_item(
        "image",
        objects(py, entries.iter().map(|e| Some(e.path.clone())).collect())?,
    )?;
    d.set_item("status", objects(py, entries.iter().map(status).collect())?)?;
    d.set_item(
        "reason",
        objects(py, entries.iter().map(|e| e.reason.clone()).collect())?,
    )?;
    d.set_item(
        "faces",
        PyArray1::from_vec(py, entries.iter().map(|e| e.faces as i64).collect()),
    )?;
    let boxes: Vec<Vec<f32>> = entries
        .iter()
        .map(|e| e.bbox.map(|b| b.to_vec()).unwrap_or_default())
        .collect();
    d.set_item("box", rows(py, &boxes, &[4], f32::NAN)?)?;
    d.set_item(
        "has_crop",
        PyArray1::from_owned_array(
            py,
            Array1::from(
                entries
                    .iter()
                    .map(|e| e.status == facegender_pipeline::preprocess::Status::Ok)
                    .collect::<Vec<_>>(),
            ),
        ),
    )?;
    Ok(d)
}

/// One photo's JSON line, as `facegender predict --json` prints it.
pub fn json_line(r: &ImageResult) -> serde_json::Result<String> {
    serde_json::to_string(r)
}
