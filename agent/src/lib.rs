//! hostwarden: the node agent for AI/LLM hosts. Everything lives in this library so tests can
//! drive it; `main.rs` only parses the command line and calls in.
//!
//! # Layout
//!
//! The modules form layers; a lower one never imports a higher one (a test in `tests.rs`
//! checks that the top-level modules import each other without a cycle).
//!
//! - [`fields`]: the config types every section shares (`FieldError`, `Ratio`,
//!   `NonEmptyString`). A leaf: it imports nothing of the agent.
//! - [`model`]: typed samples: `MetricName` (the one registry of metric names), attributes,
//!   points, the per-tick `Snapshot`. No I/O.
//! - [`sys`]: the outside systems, each behind one module: `systemd` (one D-Bus client, one
//!   trait), `ollama` (one HTTP API client), `proc` (one reader owning the proc root), `fs`
//!   (atomic writes) and `time`.
//! - [`collectors`]: one collector per part of the host (host, GPU, ZFS, Ollama), each with
//!   its own config section; `from_config` is the one list of them.
//! - [`rules`]: alert rules over the snapshot (pure, `now` passed in) and the alerting around
//!   them (saved state, outbox).
//! - [`tuner`]: the Ollama tuner: `policy/` (pure), `gate/` (pure), `apply/` (effects).
//! - [`status`]: the status socket's report, server and client.
//! - [`exporters`]: OTLP metrics and logs, resource attributes, self-metrics.
//! - [`view`]: the terminal view of a snapshot.
//! - [`config`]: composes every section into one `Config` (load, validate, reload); each
//!   section's type and checks live with its component.
//! - [`runtime`]: the daemon: one tick is collect → snapshot → rules → exporters →
//!   status/view; reloads and signals.
//! - [`cli`], [`logging`]: the command line (man pages and completions are generated from it
//!   by `cargo xtask assets`, outside the binary) and tracing setup.
//!
//! docs/architecture.md walks through one tick and where each outside system is spoken to.
//!
//! Visibility: a module is `pub` only where the binary (`main.rs`), the integration tests, the
//! benchmarks or `cargo xtask` use it; every other module is `pub(crate)`, so the compiler
//! reports what nothing uses.

// Unit tests live in `mod tests`; integration tests (the tests crate) are exempt.
#![deny(clippy::tests_outside_test_module)]

pub mod cli;
pub mod collectors;
pub mod config;
pub mod exporters;
pub(crate) mod fields;
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
