//! Training with burn, laid out like burn's examples: [`model`] (module + config), [`data`]
//! (dataset, balancing, augmentation, batches), [`training`] (the loop and its artifacts),
//! [`inference`] (a trained model rebuilt from its run folder alone) and [`teacher`] (the
//! teacher-logits file distillation reads).

pub mod data;
pub mod inference;
pub mod model;
pub mod teacher;
pub mod training;
