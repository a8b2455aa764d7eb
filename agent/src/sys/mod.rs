//! The outside systems, each spoken to through one module: systemd over D-Bus, Ollama's HTTP
//! API, the proc filesystem, files written atomically, and the clock. Collectors, rules, the
//! tuner and the exporters reach these only through here; nothing here knows about them.

pub mod fs;
pub mod ollama;
pub mod proc;
pub mod systemd;
pub mod time;
