//! The int8 model file: round trips, the buffer plan, and hostile bytes.

use facegender_core::nn::OpKind::Conv2d;
use facegender_core::nn::format::{FormatError, HEADER_LEN, arena_len_of};
use facegender_core::nn::kernels::Reference;
use facegender_core::nn::model::{Model, RunError};
use facegender_core::nn::random::{Rng, random_model};
use facegender_core::nn::write::{ModelBuilder, Params};
use facegender_core::nn::{Clamp, QParams, Shape, Window};

fn model_bytes(seed: u64) -> Vec<u8> {
    random_model(seed).unwrap().to_bytes().unwrap()
}

#[test]
fn write_parse_write_gives_identical_bytes() {
    for seed in 0..300 {
        let bytes = model_bytes(seed);
        let model = Model::parse(&bytes).unwrap();
        let again = ModelBuilder::from_model(&model).to_bytes().unwrap();
        assert_eq!(bytes, again, "seed {seed}");
    }
}

#[test]
fn fast_and_reference_kernels_agree_on_whole_models() {
    for seed in 0..300 {
        let bytes = model_bytes(seed);
        let m = Model::parse(&bytes).unwrap();
        let input = Rng(seed ^ 0xabc).i8s(m.input().shape.len());
        let mut a1 = vec![0u8; m.arena_len()];
        let mut a2 = vec![0u8; m.arena_len()];
        let fast = m.run(&mut a1, &input).unwrap();
        let slow = m.run_with::<Reference>(&mut a2, &input).unwrap();
        for k in 0..fast.len() {
            assert_eq!(fast.get(k), slow.get(k), "seed {seed} output {k}");
        }
    }
}

#[test]
fn the_plan_reuses_memory_and_the_header_gives_it_at_compile_time() {
    let mut reused = 0;
    for seed in 0..100 {
        let bytes = model_bytes(seed);
        let m = Model::parse(&bytes).unwrap();
        let total: usize = (0..m.tensor_count()).map(|t| m.tensor(t).shape.len()).sum();
        assert!(m.arena_len() <= total.next_multiple_of(4) + 4 * m.tensor_count() as usize);
        reused += (m.arena_len() < total) as usize;
        assert_eq!(arena_len_of(&bytes), m.arena_len());
    }
    assert!(
        reused > 30,
        "the planner should share memory between tensors ({reused}/100)"
    );
}

/// The classifier's shape in small: a strided stem to many channels, then 1x1 convs. In a chain
/// only neighbours are alive together, so the arena is the largest neighbouring pair (here the
/// two 16x16x32 maps), not the input plus both maps.
#[test]
fn a_chain_needs_only_its_largest_neighbouring_pair() {
    let q = QParams {
        scale: 1.0 / 16.0,
        zero_point: 0,
    };
    let mut b = ModelBuilder::new(Shape::new(32, 32, 3), q);
    let conv = |b: &mut ModelBuilder, x: u16, k: u8, s: u8, out_c: usize| {
        let in_c = b.shape(x).c as usize;
        let w = vec![1i8; out_c * k as usize * k as usize * in_c];
        let window = Window::same(k, k, s, s, b.shape(x).h, b.shape(x).w).unwrap();
        let p = Params::new(w, vec![0; out_c], vec![1e-3; out_c]);
        b.conv(Conv2d, x, window, q, Clamp::NONE, p).unwrap()
    };
    let stem = conv(&mut b, 0, 3, 2, 32); // 16x16x32 = 8192 bytes
    let c1 = conv(&mut b, stem, 1, 1, 32); // 8192
    let c2 = conv(&mut b, c1, 1, 1, 8); // 2048
    b.output(c2);
    let (offsets, arena) = b.plan().unwrap();
    assert_eq!(arena, 2 * 8192);
    assert_eq!(b.live_peak().unwrap(), 2 * 8192);
    // the input (3072 bytes) sits where the second map goes later, not below both maps
    assert!(offsets[0] as usize + 3072 <= 16384);
    let bytes = b.to_bytes().unwrap();
    let m = Model::parse(&bytes).unwrap();
    let x = Rng(1).i8s(32 * 32 * 3);
    let mut arena = vec![0u8; m.arena_len()];
    let got = m.run(&mut arena, &x).unwrap().get(0).unwrap().to_vec();
    let mut arena2 = vec![0u8; m.arena_len()];
    let slow = m.run_with::<Reference>(&mut arena2, &x).unwrap();
    assert_eq!(slow.get(0).unwrap(), &got[..]);
}

/// No plan can hold less than the bytes alive at once; the shipped models' plans hold exactly
/// that, and the writer reproduces their files, so a planner change that wastes memory on them
/// fails here.
#[test]
fn arenas_are_at_least_the_live_peak_and_the_shipped_models_meet_it() {
    for seed in 0..100 {
        let b = random_model(seed).unwrap();
        let (_, arena) = b.plan().unwrap();
        assert!(arena as u64 >= b.live_peak().unwrap(), "seed {seed}");
    }
    let models = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../models");
    for name in ["gender", "blazeface-int8"] {
        let bytes = std::fs::read(models.join(name).join("model.fgi8")).unwrap();
        let m = Model::parse(&bytes).unwrap();
        let b = ModelBuilder::from_model(&m);
        assert_eq!(m.arena_len() as u64, b.live_peak().unwrap(), "{name}");
        assert!(
            b.to_bytes().unwrap() == bytes,
            "{name}: the writer now plans it differently"
        );
    }
}

#[test]
fn run_rejects_small_arenas_and_wrong_inputs() {
    let bytes = model_bytes(7);
    let m = Model::parse(&bytes).unwrap();
    let input = vec![0i8; m.input().shape.len()];
    let mut small = vec![0u8; m.arena_len() - 1];
    assert_eq!(
        m.run(&mut small, &input).err(),
        Some(RunError::ArenaTooSmall {
            needed: m.arena_len(),
            given: m.arena_len() - 1
        })
    );
    let mut arena = vec![0u8; m.arena_len()];
    assert!(matches!(
        m.run(&mut arena, &input[1..]),
        Err(RunError::InputLength { .. })
    ));
}

#[test]
fn header_damage_gives_typed_errors() {
    let bytes = model_bytes(3);
    assert_eq!(
        Model::parse(&bytes[..10]).err(),
        Some(FormatError::TooShort)
    );
    let mut b = bytes.clone();
    b[0] = b'X';
    assert_eq!(Model::parse(&b).err(), Some(FormatError::BadMagic));
    let mut b = bytes.clone();
    b[4] = 9;
    assert_eq!(
        Model::parse(&b).err(),
        Some(FormatError::UnsupportedVersion(9))
    );
    assert!(matches!(
        Model::parse(&bytes[..bytes.len() - 1]),
        Err(FormatError::LengthMismatch { .. })
    ));
    let mut b = bytes.clone();
    *b.last_mut().unwrap() ^= 1;
    assert!(matches!(
        Model::parse(&b),
        Err(FormatError::ChecksumMismatch { .. })
    ));
}

/// Recomputes the checksum so a mutation reaches the structural checks.
fn reseal(b: &mut [u8]) {
    if b.len() >= HEADER_LEN {
        let len = (b.len() - HEADER_LEN) as u32;
        b[8..12].copy_from_slice(&len.to_le_bytes());
        let crc = crc32fast::hash(&b[HEADER_LEN..]);
        b[12..16].copy_from_slice(&crc.to_le_bytes());
    }
}

/// Thousands of damaged files (truncations, bit flips, huge counts, random fields), resealed so
/// they pass the checksum: parsing never panics, and any model that parses also runs.
#[test]
fn mutated_files_never_panic() {
    let mut rng = Rng(42);
    let (mut parsed, mut total) = (0, 0);
    for seed in 0..60 {
        let original = model_bytes(seed);
        for _ in 0..100 {
            let mut b = original.clone();
            match rng.range(0, 5) {
                0 => b.truncate(rng.range(0, b.len() as u64) as usize),
                1 => {
                    for _ in 0..rng.range(1, 4) {
                        let i = rng.range(0, b.len() as u64) as usize;
                        b[i] ^= 1 << rng.range(0, 8);
                    }
                }
                2 => {
                    // huge or zero counts and sizes in the header
                    let at = [16usize, 18, 20, 22, 24, 28][rng.range(0, 6) as usize];
                    let v = [0u8, 0xff][rng.range(0, 2) as usize];
                    b[at] = v;
                    b[at + 1] = v;
                }
                3 => {
                    // a random field in a tensor or layer record
                    let i = rng.range(HEADER_LEN as u64, b.len() as u64) as usize;
                    b[i] = rng.next_u64() as u8;
                }
                _ => b.extend((0..rng.range(1, 64)).map(|_| rng.next_u64() as u8)),
            }
            if rng.chance(0.9) {
                reseal(&mut b);
            }
            total += 1;
            if let Ok(m) = Model::parse(&b) {
                parsed += 1;
                let mut arena = vec![0u8; m.arena_len()];
                let input = vec![1i8; m.input().shape.len()];
                m.run(&mut arena, &input).expect("a parsed model runs");
            }
        }
    }
    assert_eq!(total, 6000);
    eprintln!("{parsed}/{total} mutated files still parsed (and ran)");
}
