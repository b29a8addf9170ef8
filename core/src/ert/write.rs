//! Writing the landmark model file (std), from a tree ensemble already loaded in memory.

use std::vec::Vec;

use super::format::{Dims, ErtError, MAGIC, ShapePredictor, VERSION};
use crate::container;

/// One regression tree: `splits` in breadth-first order (`(idx1, idx2, threshold)`), then the
/// leaf deltas (`2^depth` vectors of `2 * landmarks` values).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Tree {
    pub splits: Vec<(u16, u16, f32)>,
    pub leaves: Vec<Vec<f32>>,
}

/// One cascade level: its feature pixels (anchor landmark + offset) and its trees.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct CascadeSpec {
    pub anchors: Vec<u16>,
    pub deltas: Vec<(f32, f32)>,
    pub trees: Vec<Tree>,
}

/// A whole shape predictor.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PredictorSpec {
    pub initial_shape: Vec<f32>,
    pub cascades: Vec<CascadeSpec>,
}

impl PredictorSpec {
    /// Writes the model file and checks that it parses back. `Err` carries a message for
    /// ensembles whose trees or cascades do not all have the same shape.
    pub fn to_bytes(&self) -> Result<Vec<u8>, std::string::String> {
        let first = self.cascades.first().ok_or("no cascades")?;
        let tree = first.trees.first().ok_or("no trees")?;
        let splits = tree.splits.len();
        let depth = (splits + 1).trailing_zeros();
        if (1usize << depth) != splits + 1 {
            return Err(std::format!(
                "{splits} splits is not a complete binary tree"
            ));
        }
        let dims = Dims {
            landmarks: self.initial_shape.len() / 2,
            cascades: self.cascades.len(),
            trees: first.trees.len(),
            depth: depth as u8,
            features: first.anchors.len(),
        };
        let mut p = Vec::with_capacity(dims.payload_len() as usize);
        let put = |p: &mut Vec<u8>, v: f32| p.extend_from_slice(&v.to_le_bytes());
        for &v in &self.initial_shape {
            put(&mut p, v);
        }
        for (ci, c) in self.cascades.iter().enumerate() {
            if c.anchors.len() != dims.features
                || c.deltas.len() != dims.features
                || c.trees.len() != dims.trees
            {
                return Err(std::format!("cascade {ci} differs in size from the first"));
            }
            for &a in &c.anchors {
                p.extend_from_slice(&a.to_le_bytes());
            }
            p.resize(p.len() + dims.anchors_len() - 2 * dims.features, 0);
            for &(dx, dy) in &c.deltas {
                put(&mut p, dx);
                put(&mut p, dy);
            }
            for (ti, t) in c.trees.iter().enumerate() {
                if t.splits.len() != dims.splits() || t.leaves.len() != dims.leaves() {
                    return Err(std::format!("cascade {ci} tree {ti} has another depth"));
                }
                for &(i1, i2, th) in &t.splits {
                    p.extend_from_slice(&i1.to_le_bytes());
                    p.extend_from_slice(&i2.to_le_bytes());
                    put(&mut p, th);
                }
            }
            for (ti, t) in c.trees.iter().enumerate() {
                for leaf in &t.leaves {
                    if leaf.len() != 2 * dims.landmarks {
                        return Err(std::format!("cascade {ci} tree {ti}: leaf of wrong length"));
                    }
                    for &v in leaf {
                        put(&mut p, v);
                    }
                }
            }
        }
        let count =
            |v: usize, what: &str| u16::try_from(v).map_err(|_| std::format!("too many {what}"));
        let mut fields = [0u8; 16];
        fields[0..2].copy_from_slice(&count(dims.landmarks, "landmarks")?.to_le_bytes());
        fields[2..4].copy_from_slice(&count(dims.cascades, "cascades")?.to_le_bytes());
        fields[4..6].copy_from_slice(&count(dims.trees, "trees")?.to_le_bytes());
        fields[6] = dims.depth;
        fields[8..10].copy_from_slice(&count(dims.features, "features")?.to_le_bytes());
        let bytes =
            container::seal(MAGIC, VERSION, &fields, &p).map_err(|_| "model larger than 4 GiB")?;
        ShapePredictor::parse(&bytes)
            .map_err(|e: ErtError| std::format!("written model does not parse back: {e}"))?;
        Ok(bytes)
    }
}
