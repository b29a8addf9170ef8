//! Writes a random int8 model file (for trying the firmware or the parser by hand):
//! `cargo run -p facegender-core --features std --example random_model -- SEED OUT.fgi8`
fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (Some(seed), Some(out)) = (args.get(1).and_then(|s| s.parse().ok()), args.get(2)) else {
        eprintln!("usage: random_model SEED OUT.fgi8");
        std::process::exit(2);
    };
    let bytes = facegender_core::nn::random::random_model(seed)
        .and_then(|b| b.to_bytes())
        .unwrap();
    std::fs::write(out, bytes).unwrap();
}
