//! hostwarden: the node agent for AI/LLM hosts. Everything lives in this library so tests can
//! drive it; `main.rs` only parses the command line and calls in.

// Unit tests live in `mod tests`; integration tests (the tests crate) are exempt.
#![deny(clippy::tests_outside_test_module)]

pub mod assets;
pub mod cli;
pub mod collectors;
pub mod config;
pub mod exporters;
pub mod fields;
pub mod logging;
pub mod model;
pub mod rules;
pub mod runtime;
pub mod status;
pub mod sys;
pub mod tuner;
pub mod view;

#[cfg(test)]
mod tests;
