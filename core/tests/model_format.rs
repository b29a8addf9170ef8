//! Model file format tests (see below).
