//! The engines `eval` compares that need no training framework: the float ONNX and the int8
//! ONNX through tract, and the int8 model file through the core. (The float model in burn is
//! `facegender_train::inference::run_float`.)

use std::path::Path;

use facegender_core::nn::model::Model;
use facegender_core::nn::onnx::{InputKind, TractModel};
use rayon::prelude::*;
use tract_onnx::prelude::*;

use super::{Engine, Outputs};
use crate::classify::{batch_one_nchw, core_input, nhwc_input};
use crate::dataset::crops::Split;
use crate::error::Context;
use crate::model_dir;

/// Runs the float ONNX (`model.onnx`) through tract, one image at a time (batch 1).
pub fn run_onnx(model_dir: &Path, split: &Split) -> crate::Result<Outputs> {
    let path = model_dir.join(model_dir::FLOAT_ONNX);
    let side = split.images.first().map_or(0, |i| i.width() as usize);
    let plan = tract_onnx::onnx()
        .model_for_path(&path)
        .with_context(|| format!("loading {}", path.display()))?
        .with_input_fact(0, f32::fact([1, 3, side, side]).into())?
        .into_optimized()?
        .into_runnable()?;
    let logits = split
        .images
        .par_iter()
        .map(|img| {
            let x = batch_one_nchw(img);
            let t = Tensor::from_shape(&[1, 3, side, side], &x)?;
            let out = plan.run(tvec!(t.into()))?;
            Ok(out[0].try_as_plain_ram()?.as_slice::<f32>()?.to_vec())
        })
        .collect::<TractResult<Vec<_>>>()?;
    Ok(Outputs {
        engine: Engine::Onnx,
        logits,
        int8: None,
    })
}

fn int8_outputs(engine: Engine, int8: Vec<Vec<i8>>, model: &Model<'_>) -> Outputs {
    let q = model.output(0).q;
    let logits = int8
        .iter()
        .map(|v| v.iter().map(|&x| q.dequantize(x)).collect())
        .collect();
    Outputs {
        engine,
        logits,
        int8: Some(int8),
    }
}

/// Runs the int8 ONNX (`model-int8.onnx`) through tract.
pub fn run_int8_tract(model_dir: &Path, split: &Split) -> crate::Result<Outputs> {
    let bytes = model_dir::read(&model_dir.join(model_dir::CORE_MODEL))?;
    let model = Model::parse(&bytes)?;
    let onnx = model_dir::read(&model_dir.join(model_dir::INT8_ONNX))?;
    let proto: tract_onnx::pb::ModelProto = prost::Message::decode(&onnx[..])?;
    let outputs = (0..model.output_count())
        .map(|k| model.output(k).shape)
        .collect();
    let tract = TractModel::from_proto(&proto, model.input().shape, outputs, InputKind::Float)?;
    let int8 = split
        .images
        .par_iter()
        .map(|img| Ok(tract.run_f32(&nhwc_input(img))?.swap_remove(0)))
        .collect::<TractResult<Vec<_>>>()?;
    Ok(int8_outputs(Engine::Int8Tract, int8, &model))
}

/// Runs the int8 model file through facegender-core.
pub fn run_int8_core(model_dir: &Path, split: &Split) -> crate::Result<Outputs> {
    let bytes = model_dir::read(&model_dir.join(model_dir::CORE_MODEL))?;
    let model = Model::parse(&bytes)?;
    let int8 = split
        .images
        .par_iter()
        .map_init(
            || vec![0u8; model.arena_len()],
            |arena, img| -> crate::Result<Vec<i8>> {
                let out = model.run(arena, &core_input(img))?;
                Ok(out.get(0).context("model has no output")?.to_vec())
            },
        )
        .collect::<crate::Result<Vec<_>>>()?;
    Ok(int8_outputs(Engine::Int8Core, int8, &model))
}
