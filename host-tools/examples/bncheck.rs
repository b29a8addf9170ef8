use burn::tensor::{Device, Tensor, TensorData, Distribution};
fn main() {
    let device = Device::flex().autodiff();
    let cfg = facegender::train::model::ModelConfig::default();
    let model = cfg.init(&device);
    let x = Tensor::<4>::random([16, 3, 64, 64], Distribution::Normal(0.3, 2.0), &device);
    let conv = model.stages[0].conv.conv.forward(x.clone());
    let bn = model.stages[0].conv.bn.forward(conv.clone());
    let m: Vec<f32> = bn.clone().mean_dim(0).mean_dim(2).mean_dim(3).try_into_vec_as::<f32>().unwrap();
    let v: Vec<f32> = (bn.clone() * bn.clone()).mean_dim(0).mean_dim(2).mean_dim(3).try_into_vec_as::<f32>().unwrap();
    println!("bn out mean {:?}\nbn out E[x^2] {:?}", &m[..4], &v[..4]);
    let cm: Vec<f32> = conv.clone().mean_dim(0).mean_dim(2).mean_dim(3).try_into_vec_as::<f32>().unwrap();
    println!("conv mean {:?}", &cm[..4]);
    let _ = TensorData::new(vec![0f32], [1]);
}
