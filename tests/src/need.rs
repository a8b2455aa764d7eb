//! What an end-to-end test needs from the host beyond a Rust toolchain, declared beside the
//! test in its file's `main` and checked when the test runs (see `harness`).

use std::path::{Path, PathBuf};
use std::process::Command;

/// One prerequisite. Each knows how to check itself and how to say what is missing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// Running as root: mount namespaces, cgroups, chroot, debootstrap.
    Root,
    /// An executable of this name on PATH.
    Tool(&'static str),
    /// A file installed outside PATH (a systemd unit, a tool in its own virtualenv).
    File(&'static str),
    /// The OTLP receiver `rotel-agent`, found as `rotel::rotel_agent` finds it.
    RotelAgent,
    /// A C compiler (`$CC`, else `cc`) to build the NVML stand-in.
    CCompiler,
    /// A host without a libnvidia-ml.so.1 of its own, so that the default library search
    /// finds nothing (a GPU host answers it with its real driver instead).
    NoSystemNvml,
}

impl Need {
    /// What is missing, in words, or `None` when the host has it.
    pub fn missing(self) -> Option<String> {
        let present = match self {
            Need::Root => is_root(),
            Need::Tool(tool) => which(tool).is_some(),
            Need::File(path) => Path::new(path).is_file(),
            Need::RotelAgent => crate::rotel::rotel_agent().is_some_and(|p| p.is_file()),
            Need::CCompiler => crate::nvml_shim::have_cc(),
            Need::NoSystemNvml => !has_system_nvml(),
        };
        (!present).then(|| self.missing_text())
    }

    /// How `missing` says that this need is not met.
    pub fn missing_text(self) -> String {
        match self {
            Need::Root => "not running as root".to_owned(),
            Need::Tool(tool) => format!("no `{tool}` on PATH"),
            Need::File(path) => format!("no {path}"),
            Need::RotelAgent => {
                "no rotel-agent at $ROTEL_AGENT, on PATH or in the rotel pip package".to_owned()
            }
            Need::CCompiler => "no C compiler at $CC or cc".to_owned(),
            Need::NoSystemNvml => "this host has a libnvidia-ml.so.1 of its own".to_owned(),
        }
    }

    /// The short name the closing summary lists.
    pub fn name(self) -> String {
        match self {
            Need::Root => "root".to_owned(),
            Need::Tool(name) | Need::File(name) => name.to_owned(),
            Need::RotelAgent => "rotel-agent".to_owned(),
            Need::CCompiler => "a C compiler".to_owned(),
            Need::NoSystemNvml => "a host without libnvidia-ml.so.1".to_owned(),
        }
    }
}

/// True when running as root.
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// The first file named `tool` in a PATH directory.
pub fn which(tool: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|p| {
        std::env::split_paths(&p)
            .map(|d| d.join(tool))
            .find(|f| f.is_file())
    })
}

/// Whether the dynamic loader would find a real NVML here: WSL2's driver path, or ldconfig's cache
/// (ldconfig is in /sbin, which a user's PATH often lacks).
fn has_system_nvml() -> bool {
    Path::new("/usr/lib/wsl/lib/libnvidia-ml.so.1").exists()
        || ["ldconfig", "/sbin/ldconfig"].iter().any(|ldconfig| {
            Command::new(ldconfig)
                .arg("-p")
                .output()
                .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("libnvidia-ml.so.1"))
        })
}
