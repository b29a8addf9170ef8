//! `facegender._native`: the chain of `facegender predict` and `preprocess` for Python, over
//! [`facegender_pipeline::predictor`]. Models load once per [`Pipeline`]; every heavy call copies
//! its inputs out of Python objects, then releases the GIL while Rust works (as tokenizers and
//! tiktoken do), so Python threads and other interpreters' work go on meanwhile. No thread pool
//! starts at import: a pipeline with `threads > 1` makes its own on first use.

mod columns;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use facegender_pipeline::align::AlignMethod;
use facegender_pipeline::detect::Variant;
use facegender_pipeline::model_dir;
use facegender_pipeline::predict::{Config, ImageResult, Photo};
use facegender_pipeline::predictor::{Options, Predictor};
use facegender_pipeline::preprocess::{CropSettings, MultiFace};
use numpy::ndarray::Array4;
use numpy::{PyArray4, PyReadonlyArray3};
use pyo3::exceptions::{PyException, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyTuple};
use rayon::prelude::*;

pyo3::create_exception!(
    _native,
    FacegenderError,
    PyException,
    "A model could not be loaded, or a setting is invalid."
);

fn err(e: impl std::fmt::Display) -> PyErr {
    FacegenderError::new_err(e.to_string())
}

/// The detector, dlib's landmarks and the classifier, loaded once; see the package docs.
#[pyclass(frozen, module = "facegender._native")]
pub struct Pipeline {
    predictor: Predictor,
    args: Args,
    pool: OnceLock<Result<rayon::ThreadPool, String>>,
}

/// The constructor's arguments, kept so that a pipeline pickles as them (an engine ships the
/// arguments to its workers, which load the models there).
#[derive(Clone)]
struct Args {
    models_dir: Option<PathBuf>,
    model: Option<PathBuf>,
    dlib: Option<PathBuf>,
    device_chain: bool,
    mirror: bool,
    min_face: f64,
    min_probability: f64,
    threshold: f64,
    detector: String,
    threads: usize,
}

#[pymethods]
impl Pipeline {
    #[new]
    #[pyo3(signature = (models_dir=None, *, model=None, dlib=None, device_chain=false, mirror=false,
        min_face=32.0, min_probability=0.6, threshold=0.5, detector="front", threads=1))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        models_dir: Option<PathBuf>,
        model: Option<PathBuf>,
        dlib: Option<PathBuf>,
        device_chain: bool,
        mirror: bool,
        min_face: f64,
        min_probability: f64,
        threshold: f64,
        detector: &str,
        threads: usize,
    ) -> PyResult<Self> {
        let args = Args {
            models_dir,
            model,
            dlib,
            device_chain,
            mirror,
            min_face,
            min_probability,
            threshold,
            detector: detector.to_string(),
            threads,
        };
        if threads == 0 {
            return Err(PyValueError::new_err("threads must be at least 1"));
        }
        let variant = match detector {
            "front" => Variant::Front,
            "back" => Variant::Back,
            other => {
                return Err(PyValueError::new_err(format!(
                    "detector must be 'front' or 'back', not {other:?}"
                )));
            }
        };
        let mut options = Options::new(
            model_dir::models_dir(args.models_dir.as_deref()),
            model_dir::dlib_model_path(args.dlib.as_deref()),
        );
        options.model = args.model.clone();
        options.device_chain = device_chain;
        options.detector = variant;
        options.config = Config {
            threshold: threshold as f32,
            min_face: min_face as f32,
            min_probability: min_probability as f32,
            mirror,
        };
        let predictor = py.detach(|| Predictor::load(&options)).map_err(err)?;
        Ok(Self {
            predictor,
            args,
            pool: OnceLock::new(),
        })
    }

    /// The classes, in the order of the logits' columns.
    #[getter]
    fn classes(&self) -> Vec<String> {
        self.predictor.classes().to_vec()
    }

    /// sha256 of what decides a label (the student's int8 model, and host.json for a host model).
    #[getter]
    fn model_sha256(&self) -> String {
        self.predictor.model_sha256().to_string()
    }

    /// Whether labels come from the host-grade classifier (adds head and combined logits).
    #[getter]
    fn is_host_model(&self) -> bool {
        self.predictor.is_host_model()
    }

    /// The models folder in use (resolved as the CLI resolves it).
    #[getter]
    fn models_dir(&self) -> PathBuf {
        self.predictor.options().models_dir.clone()
    }

    /// The settings, as the keyword arguments that rebuild this pipeline.
    #[getter]
    fn settings<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let a = &self.args;
        let d = PyDict::new(py);
        d.set_item("models_dir", &a.models_dir)?;
        d.set_item("model", &a.model)?;
        d.set_item("dlib", &a.dlib)?;
        d.set_item("device_chain", a.device_chain)?;
        d.set_item("mirror", a.mirror)?;
        d.set_item("min_face", a.min_face)?;
        d.set_item("min_probability", a.min_probability)?;
        d.set_item("threshold", a.threshold)?;
        d.set_item("detector", &a.detector)?;
        d.set_item("threads", a.threads)?;
        Ok(d)
    }

    fn __reduce__<'py>(
        &self,
        py: Python<'py>,
    ) -> PyResult<(Bound<'py, PyAny>, Bound<'py, PyTuple>)> {
        let restore = py.import("facegender")?.getattr("_restore")?;
        Ok((restore, PyTuple::new(py, [self.settings(py)?])?))
    }

    fn __repr__(&self) -> String {
        let chain = if self.args.device_chain {
            "device"
        } else {
            "host"
        };
        format!(
            "Pipeline(chain={chain}, student={}, host_model={}, classes={:?})",
            self.predictor.student_dir().display(),
            self.predictor.is_host_model(),
            self.predictor.classes()
        )
    }

    /// Labels every face in each photo file; see the package docs for the columns.
    fn predict_paths<'py>(
        &self,
        py: Python<'py>,
        paths: Vec<PathBuf>,
    ) -> PyResult<Bound<'py, PyDict>> {
        let results = py.detach(|| self.run(&paths, |s, p| s.predict(Photo::Path(p), None)))?;
        columns::faces(py, &results, &self.predictor)
    }

    /// Labels every face in each encoded photo (JPEG, PNG, WebP, BMP, GIF bytes).
    #[pyo3(signature = (blobs, names=None))]
    fn predict_bytes<'py>(
        &self,
        py: Python<'py>,
        blobs: Vec<Vec<u8>>,
        names: Option<Vec<PathBuf>>,
    ) -> PyResult<Bound<'py, PyDict>> {
        let names = names_or_numbers(names, blobs.len())?;
        let items: Vec<(&Path, &[u8])> = names
            .iter()
            .map(PathBuf::as_path)
            .zip(blobs.iter().map(Vec::as_slice))
            .collect();
        let results = py.detach(|| {
            self.run(&items, |s, (name, bytes)| {
                s.predict(Photo::Bytes { name, bytes }, None)
            })
        })?;
        columns::faces(py, &results, &self.predictor)
    }

    /// Labels every face in one RGB photo given as an H x W x 3 uint8 array.
    #[pyo3(signature = (image, name="array"))]
    fn predict_array<'py>(
        &self,
        py: Python<'py>,
        image: PyReadonlyArray3<'py, u8>,
        name: &str,
    ) -> PyResult<Bound<'py, PyDict>> {
        let image = rgb_image(&image)?;
        let name = PathBuf::from(name);
        let session = self.predictor.session().map_err(err)?;
        let result = py.detach(|| {
            session.predict(
                Photo::Pixels {
                    name: &name,
                    image: &image,
                },
                None,
            )
        });
        columns::faces(py, &[result], &self.predictor)
    }

    /// `preprocess`'s aligned crop of each photo's largest face: an N x S x S x 3 uint8 array
    /// (zeros where there is no crop) and a dict of columns (image, status, reason, faces, box).
    #[pyo3(signature = (paths, crop=64, scale=0.75, align="inner-eyes-bottom-lip", skip_multi=false, min_face=24.0))]
    #[allow(clippy::too_many_arguments)]
    fn crops<'py>(
        &self,
        py: Python<'py>,
        paths: Vec<PathBuf>,
        crop: u32,
        scale: f64,
        align: &str,
        skip_multi: bool,
        min_face: f32,
    ) -> PyResult<(Bound<'py, PyArray4<u8>>, Bound<'py, PyDict>)> {
        if !(8..=1024).contains(&crop) {
            return Err(PyValueError::new_err("crop must be 8 to 1024 pixels"));
        }
        if !(scale > 0.0 && scale <= 4.0) {
            return Err(PyValueError::new_err("scale must be in (0, 4]"));
        }
        let align = AlignMethod::from_name(align).ok_or_else(|| {
            PyValueError::new_err(format!(
                "align must be one of {:?}, not {align:?}",
                AlignMethod::NAMES
            ))
        })?;
        let s = CropSettings {
            crop,
            align,
            scale,
            multi: if skip_multi {
                MultiFace::Skip
            } else {
                MultiFace::Largest
            },
            threshold: self.args.threshold as f32,
            min_face,
        };
        let (pixels, entries) = py.detach(|| {
            let made = self.run(&paths, |session, p| session.crop(Photo::Path(p), &s))?;
            let side = crop as usize;
            let mut pixels = Array4::<u8>::zeros((made.len(), side, side, 3));
            for (i, (c, _)) in made.iter().enumerate() {
                if let Some(c) = c {
                    let dst = pixels.index_axis_mut(numpy::ndarray::Axis(0), i);
                    for (d, v) in dst.into_iter().zip(c.as_raw()) {
                        *d = *v;
                    }
                }
            }
            let entries: Vec<_> = made.into_iter().map(|(_, e)| e).collect();
            PyResult::Ok((pixels, entries))
        })?;
        let table = columns::crops(py, &entries)?;
        Ok((PyArray4::from_owned_array(py, pixels), table))
    }
}

impl Pipeline {
    /// Runs `f` on every item in order, on this pipeline's threads.
    fn run<T: Sync, R: Send>(
        &self,
        items: &[T],
        f: impl Fn(&facegender_pipeline::predictor::Session<'_>, &T) -> R + Sync,
    ) -> PyResult<Vec<R>> {
        let session = self.predictor.session().map_err(err)?;
        if self.args.threads == 1 {
            return Ok(items.iter().map(|i| f(&session, i)).collect());
        }
        let pool = self
            .pool
            .get_or_init(|| {
                rayon::ThreadPoolBuilder::new()
                    .num_threads(self.args.threads)
                    .build()
                    .map_err(|e| e.to_string())
            })
            .as_ref()
            .map_err(err)?;
        Ok(pool.install(|| items.par_iter().map(|i| f(&session, i)).collect()))
    }
}

/// `names`, or `0`, `1`, ... when not given; one per blob.
fn names_or_numbers(names: Option<Vec<PathBuf>>, n: usize) -> PyResult<Vec<PathBuf>> {
    match names {
        Some(v) if v.len() != n => Err(PyValueError::new_err(format!(
            "{} names for {n} blobs",
            v.len()
        ))),
        Some(v) => Ok(v),
        None => Ok((0..n).map(|i| PathBuf::from(i.to_string())).collect()),
    }
}

/// A copy of an H x W x 3 uint8 array (any strides) as an image.
fn rgb_image(a: &PyReadonlyArray3<'_, u8>) -> PyResult<image::RgbImage> {
    let v = a.as_array();
    let (h, w, c) = v.dim();
    if c != 3 || h == 0 || w == 0 {
        return Err(PyValueError::new_err(format!(
            "expected an H x W x 3 RGB array, got shape ({h}, {w}, {c})"
        )));
    }
    let too_big = || PyValueError::new_err(format!("image of {w}x{h} is too large"));
    let (w32, h32) = (
        u32::try_from(w).map_err(|_| too_big())?,
        u32::try_from(h).map_err(|_| too_big())?,
    );
    if (w as u64) * (h as u64) > 64_000_000 {
        return Err(too_big());
    }
    let pixels: Vec<u8> = v.iter().copied().collect();
    image::RgbImage::from_raw(w32, h32, pixels).ok_or_else(too_big)
}

/// The per-photo results as JSON lines, exactly as `facegender predict --json` prints them.
#[pyfunction]
fn to_json_lines(
    py: Python<'_>,
    pipeline: &Pipeline,
    paths: Vec<PathBuf>,
) -> PyResult<Vec<String>> {
    let results: Vec<ImageResult> =
        py.detach(|| pipeline.run(&paths, |s, p| s.predict(Photo::Path(p), None)))?;
    results
        .iter()
        .map(|r| columns::json_line(r).map_err(err))
        .collect()
}

/// The CPU and the SIMD features the engines use here (benchmarks print them).
#[pyfunction]
fn cpu() -> std::collections::BTreeMap<&'static str, String> {
    use facegender_pipeline::cpu;
    std::collections::BTreeMap::from([
        ("model", cpu::model()),
        ("features", cpu::features()),
        ("core_kernels", cpu::core_kernels().to_string()),
    ])
}

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<Pipeline>()?;
    m.add_function(wrap_pyfunction!(to_json_lines, m)?)?;
    m.add_function(wrap_pyfunction!(cpu, m)?)?;
    m.add("FacegenderError", m.py().get_type::<FacegenderError>())?;
    Ok(())
}
