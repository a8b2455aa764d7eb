//! The Ollama unit's resource limits (`[tuner.resources]`): the parsed settings (`config`), what
//! `auto` derives and from which figures (`auto`, `inputs`, pure), the property values, drop-in
//! lines and comparisons (`limits`, pure), the live change through systemd with verification
//! and rollback (`apply`, `reconcile`), and the tick that drives it (`drive`).

pub mod apply;
pub mod auto;
pub mod config;
pub mod drive;
pub mod inputs;
pub mod limits;
mod reconcile;
