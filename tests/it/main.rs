//! One integration-test binary; each module guards one part of the product.

mod cli;
mod demo;
mod descriptor;
mod detector;
mod firmware;
mod host;
mod landmarks;
mod no_std;
mod predict;
mod preprocess;
mod samples;
mod split;
mod support;
mod training;
