//! The Ollama unit's resource limits (`[tuner.resources]`): the parsed settings (`config`), the
//! property values, drop-in lines and comparisons (`limits`, pure), and the live change through
//! systemd with verification and rollback (`apply`).

pub mod apply;
pub mod config;
pub mod limits;
