use burn::module::Module;
use burn::nn::loss::CrossEntropyLossConfig;
use burn::optim::{AdamWConfig, GradientsParams};
use burn::tensor::{Device, Int, Tensor, TensorData};
fn main() {
    let cfg = facegender::train::model::ModelConfig::default();
    let device = Device::flex().autodiff();
    device.seed(1);
    let mut model = cfg.init(&device);
    struct ForceInit;
    impl burn::module::ModuleVisitor for ForceInit {
        fn visit_float<const D: usize>(&mut self, param: &burn::module::Param<Tensor<D>>) {
            let _ = param.val();
        }
    }
    if std::env::var_os("FORCE").is_some() { model.visit(&mut ForceInit); println!("forced init"); }
    let mut optim = if std::env::var_os("EPS").is_some() { AdamWConfig::new().with_weight_decay(5e-4).with_epsilon(1e-8).init() } else { AdamWConfig::new().init() };
    let loss_fn = CrossEntropyLossConfig::new().init(&device);
    let split = facegender::train::data::load_split(std::path::Path::new("/work/data/split64/val"), None, 64, false).unwrap();
    let n = 64;
    let all: Vec<usize> = (0..512).map(|i| i * split.len() / 512).collect();
    let order = facegender::train::data::balanced_order(&all.iter().map(|&i| split.labels[i]).collect::<Vec<_>>(), 2, 1, 1);
    use burn::lr_scheduler::LrSchedulerConfig;
    use burn::lr_scheduler::cosine::CosineAnnealingLrSchedulerConfig;
    use burn::lr_scheduler::linear::LinearLrSchedulerConfig;
    use burn::lr_scheduler::sequential::SequentialLrSchedulerConfig;
    let mut sched = SequentialLrSchedulerConfig::new(
        vec![
            LrSchedulerConfig::Linear(LinearLrSchedulerConfig::new(1e-4, 2e-3, 10)),
            LrSchedulerConfig::Cosine(CosineAnnealingLrSchedulerConfig::new(2e-3, 100).with_min_lr(2e-5)),
        ],
        vec![10],
    ).init().unwrap();
    for step in 0..120 {
        let chunk = &order[(step % 8) * 64..(step % 8 + 1) * 64];
        let idx: Vec<usize> = chunk.iter().map(|&k| all[k]).collect();
        let x = facegender::train::data::batch(&split, &idx, None);
        let y: Vec<i64> = idx.iter().map(|&i| split.labels[i] as i64).collect();
        let xt = Tensor::<4>::from_data(TensorData::new(x.clone(), [n, 3, 64, 64]), &device);
        let yt = Tensor::<1, Int>::from_data(TensorData::new(y.clone(), [n]), &device);
        let w0: Vec<f32> = model.stages[0].conv.conv.weight.val().try_into_vec_as::<f32>().unwrap();
        let fc0: Vec<f32> = model.fc.weight.val().try_into_vec_as::<f32>().unwrap();
        let loss = loss_fn.forward(model.forward(xt), yt);
        let l: f32 = loss.clone().into_scalar();
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        if std::env::var_os("VALID").is_some() && step % 8 == 7 { let _v = model.valid(); }
        let r = sched.step();  model = optim.step(r, model, grads);
        let w1: Vec<f32> = model.stages[0].conv.conv.weight.val().try_into_vec_as::<f32>().unwrap();
        let fc1: Vec<f32> = model.fc.weight.val().try_into_vec_as::<f32>().unwrap();
        let dw: f32 = w0.iter().zip(&w1).map(|(a, b)| (a - b).abs()).sum();
        let dfc: f32 = fc0.iter().zip(&fc1).map(|(a, b)| (a - b).abs()).sum();
        if step % 8 == 0 { println!("step {step} loss {l:.4} |dW conv0| {dw:.6} |dW fc| {dfc:.6}"); }
    }
    let _ = model.valid();
}
