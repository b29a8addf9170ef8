//! One integration-test binary; each module guards one part of the product.

mod no_std;
mod support;
