//! Training with burn, laid out like burn's examples: [`model`] (module + config), [`data`]
//! (dataset, balancing, augmentation, batches), [`training`] (the loop and its artifacts) and
//! [`inference`] (a trained model rebuilt from its run folder alone).

pub mod data;
pub mod inference;
pub mod model;
pub mod training;
