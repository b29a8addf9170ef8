use std::time::Instant;
fn main() -> anyhow::Result<()> {
    let dir = facegender::models::models_dir(None);
    let bf = facegender::detect::BlazeFace::load(&dir, facegender::detect::Variant::Front)?;
    let img = facegender::decode::decode_file(std::path::Path::new("../shared/data/fairface-train/male/1.jpg"), &Default::default())?;
    let t = Instant::now();
    for _ in 0..50 { let _ = facegender::detect::input_tensor(&img, 128, 0.0); }
    println!("input_tensor {:?}", t.elapsed() / 50);
    let (x, _) = facegender::detect::input_tensor(&img, 128, 0.0);
    let t = Instant::now();
    for _ in 0..50 { let _ = bf.run(&x)?; }
    println!("run {:?}", t.elapsed() / 50);
    Ok(())
}
