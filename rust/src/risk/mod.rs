//! Risk scoring (BRIEF §8): per-account velocity state, the feature function, the model
//! evaluator, the rules language and the decision. Plain Rust; `lib.rs` wires it to Python.

pub mod bench;
pub mod decide;
pub mod features;
pub mod input;
pub mod model;
pub mod rules;
pub mod state;
