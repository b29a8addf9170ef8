//! The core engine against tract on the same model written as ONNX: equal element for element.

use facegender_core::nn::OpKind::Conv2d;
use facegender_core::nn::model::Model;
use facegender_core::nn::onnx::{InputKind, TractModel};
use facegender_core::nn::random::{Rng, random_model};
use facegender_core::nn::write::{ModelBuilder, Params};
use facegender_core::nn::{Clamp, QParams, Shape, Window};

/// A classifier stem (3x3 stride 2 over RGB, 24 per-channel scales, input scale 1/128) as the
/// exporter writes it, with a power-of-two output scale. With 24 or more channels tract folds the
/// multiplier in another order than `(w_scale * x_scale) / y_scale`; with `y_scale = 0.0371` this
/// model flipped 8 outputs in 4.6 million. A power-of-two `y_scale` makes every order exact.
#[test]
fn core_equals_tract_on_a_stem_conv_with_power_of_two_output_scale() {
    let mut rng = Rng(12345);
    let xq = QParams {
        scale: 1.0 / 128.0,
        zero_point: 3,
    };
    let yq = QParams {
        scale: 1.0 / 32.0,
        zero_point: -5,
    };
    let mut b = ModelBuilder::new(Shape::new(17, 17, 3), xq);
    let w = rng.i8s(24 * 27);
    let bias = (0..24).map(|_| rng.range(0, 2000) as i32 - 1000).collect();
    let ws = (0..24)
        .map(|_| 0.001 + rng.range(0, 1000) as f32 * 1e-5)
        .collect();
    let (win, p) = (Window::valid(3, 3, 2, 2), Params::new(w, bias, ws));
    let y = b.conv(Conv2d, 0, win, yq, Clamp::NONE, p).unwrap();
    b.output(y);
    let bytes = b.to_bytes().unwrap();
    let m = Model::parse(&bytes).unwrap();
    let tract = TractModel::from_model(&m, InputKind::Int8).unwrap();
    let mut arena = vec![0u8; m.arena_len()];
    for run in 0..3000 {
        let x = rng.i8s(17 * 17 * 3);
        let want = tract.run_i8(&x).unwrap();
        let got = m.run(&mut arena, &x).unwrap();
        assert_eq!(got.get(0).unwrap(), &want[0][..], "input {run}");
    }
}

/// 240 random models (layer mixes, per-channel and uniform scales, odd sizes), one random input
/// each, plus a second input for the first 20 models.
#[test]
fn core_equals_tract_on_random_models() {
    let mut pairs = 0;
    let mut elements = 0;
    for seed in 0..240u64 {
        let bytes = random_model(seed).unwrap().to_bytes().unwrap();
        let m = Model::parse(&bytes).unwrap();
        let tract = TractModel::from_model(&m, InputKind::Int8)
            .unwrap_or_else(|e| panic!("seed {seed}: tract cannot load the ONNX: {e:?}"));
        let runs = if seed < 20 { 2 } else { 1 };
        for r in 0..runs {
            let input = Rng(seed * 31 + r).i8s(m.input().shape.len());
            let want = tract.run_i8(&input).unwrap();
            let mut arena = vec![0u8; m.arena_len()];
            let got = m.run(&mut arena, &input).unwrap();
            for (k, w) in want.iter().enumerate() {
                assert_eq!(
                    got.get(k).unwrap(),
                    &w[..],
                    "seed {seed} run {r} output {k}"
                );
                elements += w.len();
            }
            pairs += 1;
        }
    }
    assert!(pairs >= 200);
    eprintln!("{pairs} model/input pairs, {elements} output elements, all equal");
}

#[test]
fn float_input_graph_quantises_like_the_core() {
    for seed in 0..20u64 {
        let bytes = random_model(seed).unwrap().to_bytes().unwrap();
        let m = Model::parse(&bytes).unwrap();
        let tract = TractModel::from_model(&m, InputKind::Float).unwrap();
        let mut rng = Rng(seed);
        let x: Vec<f32> = (0..m.input().shape.len())
            .map(|_| (rng.unit() - 0.5) * 8.0)
            .collect();
        let q = m.input().q;
        let xq: Vec<i8> = x.iter().map(|&v| q.quantize(v)).collect();
        let mut arena = vec![0u8; m.arena_len()];
        let got = m.run(&mut arena, &xq).unwrap();
        let want = tract.run_f32(&x).unwrap();
        for (k, w) in want.iter().enumerate() {
            assert_eq!(got.get(k).unwrap(), &w[..], "seed {seed} output {k}");
        }
    }
}

/// Models aimed at the accumulators where tract's two rounding rules (f32 product per channel,
/// exact product when uniform) disagree, so a kernel using the wrong rule fails here.
#[test]
fn core_equals_tract_where_the_rounding_rules_differ() {
    use facegender_core::nn::OpKind::Conv2d;
    use facegender_core::nn::write::{ModelBuilder, Params};
    use facegender_core::nn::{Clamp, QParams, Shape, Window};
    use facegender_core::quant::Requant;

    let mut rng = Rng(99);
    let (mut models, mut differing) = (0, 0);
    while models < 40 {
        let xq = QParams {
            scale: 0.01 + rng.unit() * 0.05,
            zero_point: 0,
        };
        let yq = QParams {
            scale: 0.05 + rng.unit() * 0.5,
            zero_point: 0,
        };
        let uniform = models % 2 == 1;
        let ws0 = 0.001 + rng.unit() * 0.01;
        let ws = if uniform {
            vec![ws0, ws0]
        } else {
            vec![ws0, ws0 * 1.37]
        };
        let m = (ws0 * xq.scale) / yq.scale;
        let r = Requant::from_f32(m).unwrap();
        // an accumulator in reach of int8 outputs where the two rules disagree
        let Some(acc) =
            (1..200_000).find(|&a| r.apply(a) != r.apply_exact(a) && r.apply_exact(a).abs() < 100)
        else {
            continue;
        };
        // input 1 x 256 x 1, values -128..127, weight 1: channel 0 sees acc - 128 ..= acc + 127
        let mut b = ModelBuilder::new(Shape::new(1, 256, 1), xq);
        let (win, p) = (
            Window::valid(1, 1, 1, 1),
            Params::new(vec![1, 1], vec![acc, acc], ws),
        );
        let y = b.conv(Conv2d, 0, win, yq, Clamp::NONE, p).unwrap();
        b.output(y);
        let bytes = b.to_bytes().unwrap();
        let model = Model::parse(&bytes).unwrap();
        let input: Vec<i8> = (-128..=127).map(|v| v as i8).collect();
        let want = TractModel::from_model(&model, InputKind::Int8)
            .unwrap()
            .run_i8(&input)
            .unwrap();
        let mut arena = vec![0u8; model.arena_len()];
        let got = model.run(&mut arena, &input).unwrap();
        assert_eq!(
            got.get(0).unwrap(),
            &want[0][..],
            "model {models} uniform={uniform}"
        );
        differing += (0..256)
            .filter(|&i| {
                let a = acc + i - 128;
                r.apply(a) != r.apply_exact(a)
            })
            .count();
        models += 1;
    }
    assert!(
        differing >= 40,
        "only {differing} distinguishing accumulators were exercised"
    );
}
