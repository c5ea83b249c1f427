//! The fuzz harnesses as a library for the targets in `fuzz_targets/`. The harness file is
//! also included by the main crate's regression tests and seed writer (see its docs).

pub mod harness;
