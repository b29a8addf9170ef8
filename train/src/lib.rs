//! Training the facegender classifier with burn on the CPU, laid out like burn's examples:
//! [`model`] (module + config), [`data`] (balancing, augmentation, batches), [`training`] (the
//! loop and its artifacts), [`history`] (per-epoch figures, `history.csv` and its chart),
//! [`inference`] (a trained model rebuilt from its run folder alone) and [`teacher`] (the
//! teacher-logits file distillation reads); [`head`] and [`host`] train the host-grade
//! classifier's head on cached face descriptors. The labelled crops themselves are
//! `facegender_pipeline::dataset::crops`, shared with evaluation and export.

pub mod data;
pub mod head;
pub mod history;
pub mod host;
pub mod inference;
pub mod model;
pub mod teacher;
pub mod training;
