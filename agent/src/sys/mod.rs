//! The outside systems, each spoken to through one module: systemd over D-Bus, Ollama's HTTP
//! API, the proc filesystem, files written atomically, the clock, the TLS provider, the
//! HTTP client and the kernel's mappings of the agent's own code. Collectors, rules, the tuner and the exporters reach these only through here;
//! nothing here knows about them.

pub mod cgroup;
pub(crate) mod fs;
pub(crate) mod heap;
pub(crate) mod http;
pub mod ollama;
pub(crate) mod ownusage;
pub(crate) mod proc;
pub(crate) mod procfile;
pub(crate) mod residency;
pub mod systemd;
pub(crate) mod time;
pub(crate) mod tls;
