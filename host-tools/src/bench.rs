//! `facegender bench`: where the time goes, per stage, and images per second on one thread and
//! on all threads; plus the int8 engines head to head (core vs tract, batch 1, one thread).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use facegender_core::nn::model::Model;
use facegender_core::nn::onnx::{InputKind, TractModel};
use rayon::prelude::*;
use serde::Serialize;

use facegender_core::image::RgbView;
use facegender_descriptor::face_chip;
use facegender_pipeline::classify::{Classifier, core_input};
use facegender_pipeline::decode::{Limits, decode_file};
use facegender_pipeline::detect::DEFAULT_THRESHOLD;
use facegender_pipeline::detect::int8::detector_input;
use facegender_pipeline::host::HostModel;
use facegender_pipeline::model_dir::{self, CORE_MODEL};
use facegender_pipeline::preprocess::{Models, faces_with_landmarks};
use facegender_pipeline::{cpu, landmarks};

/// Mean milliseconds per image for each stage (one thread).
#[derive(Clone, Debug, Default, Serialize)]
pub struct Stages {
    pub decode: f64,
    pub detect: f64,
    pub landmarks: f64,
    pub align: f64,
    pub classify_core: f64,
    pub classify_tract: f64,
}

#[derive(Clone, Debug, Serialize)]
pub struct BenchReport {
    pub images: usize,
    pub faces: usize,
    pub stage_ms: Stages,
    /// Whole chain (decode to label, core classifier) on one thread.
    pub images_per_second_1_thread: f64,
    pub threads: usize,
    pub images_per_second_all_threads: f64,
    /// The classifier alone, batch 1, one thread, repeated on one crop.
    pub classifier_core_us: f64,
    pub classifier_tract_us: f64,
    /// tract time / core time (above 1: the core is faster).
    pub core_speedup_over_tract: f64,
    /// The int8 BlazeFace (the device chain's detector) alone, batch 1, one thread, on the first
    /// photo's letterboxed input.
    pub detector_core_us: f64,
    pub detector_tract_us: f64,
    pub detector_core_speedup_over_tract: f64,
    /// The CPU, and what each engine could use on it.
    pub cpu: String,
    pub core_kernels: String,
    pub cpu_features: String,
    pub landmarks_us_per_face: f64,
    pub align_us_per_face: f64,
    /// dlib's face-recognition ResNet, when a host model is benchmarked.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host: Option<HostBench>,
}

/// The host-grade classifier's costs: the descriptor per face on each engine, and the whole host
/// chain (student and descriptor head) beside the student's chain.
#[derive(Clone, Debug, Serialize)]
pub struct HostBench {
    /// The engine `predict` uses, and the one timed beside it.
    pub engine: String,
    pub chip_us_per_face: f64,
    pub descriptor_macs: u64,
    /// One chip through the network, batch 1, one thread, repeated.
    pub descriptor_tract_ms: f64,
    pub descriptor_plain_loops_ms: f64,
    /// plain-loop time / tract time (above 1: tract is faster).
    pub tract_speedup_over_plain_loops: f64,
    /// Descriptors of the benchmark's faces on all threads (one face per thread at a time).
    pub descriptor_faces_per_second_all_threads: f64,
    pub host_chain_images_per_second_1_thread: f64,
    pub host_chain_images_per_second_all_threads: f64,
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// The full chain on one photo with the core classifier, and with `host` the descriptor head too;
/// returns the number of faces.
fn chain(
    m: &Models<'_>,
    c: &Classifier<'_>,
    host: Option<&HostModel>,
    path: &Path,
    arena: &mut [u8],
) -> anyhow::Result<usize> {
    let img = decode_file(path, &Limits::default())?;
    let faces = faces_with_landmarks(m, &img, DEFAULT_THRESHOLD, None)?;
    for f in &faces {
        let crop = c.crop(&img, &f.landmarks)?;
        c.classify(&crop, arena)?;
        if let Some(h) = host {
            h.head_logits(&img, &f.landmarks)?;
        }
    }
    Ok(faces.len())
}

/// Mean microseconds of `f` over `repeats` calls, after one call that warms caches up.
fn mean_us(repeats: usize, f: &mut dyn FnMut()) -> f64 {
    f();
    let s = Instant::now();
    for _ in 0..repeats {
        f();
    }
    s.elapsed().as_secs_f64() * 1e6 / repeats as f64
}

/// The descriptor's engines and the host chain's throughput.
fn bench_host(
    m: &Models<'_>,
    c: &Classifier<'_>,
    h: &HostModel,
    files: &[PathBuf],
    repeats: usize,
) -> anyhow::Result<HostBench> {
    let mut chips = Vec::new();
    let mut chip_s = 0.0;
    for f in files {
        let img = decode_file(f, &Limits::default())?;
        let view = RgbView::packed(img.as_raw(), img.width() as usize, img.height() as usize)
            .map_err(|e| anyhow::anyhow!("{e:?}"))?;
        for face in faces_with_landmarks(m, &img, DEFAULT_THRESHOLD, None)? {
            let pts: Vec<[f64; 2]> = face
                .landmarks
                .iter()
                .map(|p| [p.x as f64, p.y as f64])
                .collect();
            let s = Instant::now();
            chips.push(face_chip(&view, &pts)?);
            chip_s += s.elapsed().as_secs_f64();
        }
    }
    anyhow::ensure!(!chips.is_empty(), "no face in the benchmark's photos");
    let probe = &chips[0];
    let tract_ms = mean_us(repeats, &mut || {
        let _ = h.net.describe_chip(probe);
    }) / 1e3;
    let plain_ms = mean_us(repeats, &mut || {
        let _ = facegender_descriptor::reference::describe(&h.net.network, probe);
    }) / 1e3;
    let s = Instant::now();
    chips
        .par_iter()
        .try_for_each(|chip| h.net.describe_chip(chip).map(|_| ()))?;
    let faces_per_s = chips.len() as f64 / s.elapsed().as_secs_f64();
    let mut arena = vec![0u8; c.model.arena_len()];
    let s = Instant::now();
    for f in files {
        chain(m, c, Some(h), f, &mut arena)?;
    }
    let one = files.len() as f64 / s.elapsed().as_secs_f64();
    let s = Instant::now();
    files
        .par_iter()
        .map_init(
            || vec![0u8; c.model.arena_len()],
            |a, f| chain(m, c, Some(h), f, a),
        )
        .collect::<anyhow::Result<Vec<_>>>()?;
    let all = files.len() as f64 / s.elapsed().as_secs_f64();
    Ok(HostBench {
        engine: "tract 0.23 (ONNX graph, f32; its own kernels for the CPU's features) in use; plain Rust loops beside it".into(),
        chip_us_per_face: chip_s * 1e6 / chips.len() as f64,
        descriptor_macs: h.net.network.macs(),
        descriptor_tract_ms: tract_ms,
        descriptor_plain_loops_ms: plain_ms,
        tract_speedup_over_plain_loops: plain_ms / tract_ms,
        descriptor_faces_per_second_all_threads: faces_per_s,
        host_chain_images_per_second_1_thread: one,
        host_chain_images_per_second_all_threads: all,
    })
}

/// Runs the benchmark over `files` (stages and throughput) and the engine comparison; with a
/// host model, its descriptor and chain too.
pub fn run(
    m: &Models<'_>,
    c: &Classifier<'_>,
    host: Option<&HostModel>,
    model_dir: &Path,
    detector_int8: &Path,
    files: &[PathBuf],
    repeats: usize,
) -> anyhow::Result<BenchReport> {
    let bytes = model_dir::read(&model_dir.join(CORE_MODEL))?;
    let model = Model::parse(&bytes).map_err(|e| anyhow::anyhow!("{e}"))?;
    let tract = TractModel::from_model(&model, InputKind::Int8)?;
    let mut arena = vec![0u8; model.arena_len()];
    let mut t = Stages::default();
    let (mut faces, mut crops) = (0usize, Vec::new());
    for f in files {
        let s = Instant::now();
        let img = decode_file(f, &Limits::default())?;
        t.decode += ms(s.elapsed());
        let s = Instant::now();
        let dets = m.detector.detect(&img, DEFAULT_THRESHOLD)?;
        t.detect += ms(s.elapsed());
        let grey = landmarks::intensity(&img);
        for d in &dets {
            let s = Instant::now();
            let pts = landmarks::predict(
                &m.landmarks,
                &grey,
                img.width(),
                img.height(),
                m.box_map.rect(d),
            )?;
            t.landmarks += ms(s.elapsed());
            let s = Instant::now();
            let crop = c.crop(&img, &pts)?;
            t.align += ms(s.elapsed());
            let input = core_input(&crop);
            let s = Instant::now();
            model
                .run(&mut arena, &input)
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            t.classify_core += ms(s.elapsed());
            let s = Instant::now();
            tract.run_i8(&input)?;
            t.classify_tract += ms(s.elapsed());
            crops.push(input);
            faces += 1;
        }
    }
    let n = files.len().max(1) as f64;
    let per_image = Stages {
        decode: t.decode / n,
        detect: t.detect / n,
        landmarks: t.landmarks / n,
        align: t.align / n,
        classify_core: t.classify_core / n,
        classify_tract: t.classify_tract / n,
    };
    let nf = faces.max(1) as f64;

    // throughput: one thread, then all threads
    let s = Instant::now();
    for f in files {
        chain(m, c, None, f, &mut arena)?;
    }
    let one = files.len() as f64 / s.elapsed().as_secs_f64();
    let threads = rayon::current_num_threads();
    let s = Instant::now();
    files
        .par_iter()
        .map_init(
            || vec![0u8; model.arena_len()],
            |a, f| chain(m, c, None, f, a),
        )
        .collect::<anyhow::Result<Vec<_>>>()?;
    let all = files.len() as f64 / s.elapsed().as_secs_f64();

    // engines head to head on the same crop, batch 1, this thread only
    let probe = crops
        .first()
        .cloned()
        .unwrap_or_else(|| vec![0i8; model.input().shape.len()]);
    let time = |f: &mut dyn FnMut()| mean_us(repeats, f);
    let core_us = time(&mut || {
        let _ = model.run(&mut arena, &probe);
    });
    let tract_us = time(&mut || {
        let _ = tract.run_i8(&probe);
    });
    // the int8 detector, the same way
    let det_bytes = model_dir::read(&detector_int8.join(CORE_MODEL))?;
    let det = Model::parse(&det_bytes).map_err(|e| anyhow::anyhow!("{e}"))?;
    let det_tract = TractModel::from_model(&det, InputKind::Int8)?;
    let first = decode_file(&files[0], &Limits::default())?;
    let (det_in, _) = detector_input(&first);
    let mut det_arena = vec![0u8; det.arena_len()];
    let det_core_us = time(&mut || {
        let _ = det.run(&mut det_arena, &det_in);
    });
    let det_tract_us = time(&mut || {
        let _ = det_tract.run_i8(&det_in);
    });
    Ok(BenchReport {
        images: files.len(),
        faces,
        stage_ms: per_image,
        images_per_second_1_thread: one,
        threads,
        images_per_second_all_threads: all,
        classifier_core_us: core_us,
        classifier_tract_us: tract_us,
        core_speedup_over_tract: tract_us / core_us,
        detector_core_us: det_core_us,
        detector_tract_us: det_tract_us,
        detector_core_speedup_over_tract: det_tract_us / det_core_us,
        cpu: cpu::model(),
        core_kernels: cpu::core_kernels().to_string(),
        cpu_features: cpu::features(),
        landmarks_us_per_face: t.landmarks * 1e3 / nf,
        align_us_per_face: t.align * 1e3 / nf,
        host: host
            .map(|h| bench_host(m, c, h, files, repeats.clamp(1, 20)))
            .transpose()?,
    })
}

/// The terminal table.
pub fn table(r: &BenchReport) -> String {
    let mut t = student_table(r);
    if let Some(h) = &r.host {
        t.push_str(&format!(
            "\nhost-grade classifier (dlib face-recognition ResNet + head, with the student)\n\
             face chip                  {:>8.1} us/face\n\
             descriptor, tract          {:>8.2} ms/face (batch 1, 1 thread; {:.0} M MACs)\n\
             descriptor, plain loops    {:>8.2} ms/face (tract is {:.1}x faster)\n\
             descriptor, {} threads      {:>8.1} faces/s\n\
             host chain, 1 thread       {:>8.1} images/s (student chain: {:.1})\n\
             host chain, {} threads      {:>8.1} images/s (student chain: {:.1})\n\
             descriptor engine: {}",
            h.chip_us_per_face,
            h.descriptor_tract_ms,
            h.descriptor_macs as f64 / 1e6,
            h.descriptor_plain_loops_ms,
            h.tract_speedup_over_plain_loops,
            r.threads,
            h.descriptor_faces_per_second_all_threads,
            h.host_chain_images_per_second_1_thread,
            r.images_per_second_1_thread,
            r.threads,
            h.host_chain_images_per_second_all_threads,
            r.images_per_second_all_threads,
            h.engine
        ));
    }
    t
}

fn student_table(r: &BenchReport) -> String {
    let s = &r.stage_ms;
    format!(
        "{} images, {} faces\n\
         stage (one thread)         ms/image\n\
         decode                     {:>8.3}\n\
         detect (BlazeFace, tract)  {:>8.3}\n\
         landmarks (dlib ERT, core) {:>8.3}\n\
         align + crop (core)        {:>8.3}\n\
         classify, int8 core        {:>8.3}\n\
         classify, int8 tract       {:>8.3}\n\
         whole chain, 1 thread      {:>8.1} images/s\n\
         whole chain, {} threads     {:>8.1} images/s\n\
         classifier alone, batch 1, 1 thread: core {:.1} us, tract {:.1} us, core is {:.2}x tract's speed\n\
         int8 BlazeFace alone, batch 1, 1 thread: core {:.1} us, tract {:.1} us, core is {:.2}x tract's speed\n\
         landmarks {:.1} us per face, align {:.1} us per face\n\
         CPU: {}; features: {}; core kernels: {}; tract: its own kernels for these features",
        r.images,
        r.faces,
        s.decode,
        s.detect,
        s.landmarks,
        s.align,
        s.classify_core,
        s.classify_tract,
        r.images_per_second_1_thread,
        r.threads,
        r.images_per_second_all_threads,
        r.classifier_core_us,
        r.classifier_tract_us,
        r.core_speedup_over_tract,
        r.detector_core_us,
        r.detector_tract_us,
        r.detector_core_speedup_over_tract,
        r.landmarks_us_per_face,
        r.align_us_per_face,
        r.cpu,
        r.cpu_features,
        r.core_kernels
    )
}
