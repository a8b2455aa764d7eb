//! Finding and initialising libnvidia-ml: the configured path, or the usual soname and then the
//! WSL2 location. Failures become reasons an operator can act on.

use std::path::{Path, PathBuf};

use nvml_wrapper::Nvml;
use nvml_wrapper::error::NvmlError;

/// The soname a driver install provides.
pub const DEFAULT_LIBRARY: &str = "libnvidia-ml.so.1";
/// Where WSL2 mounts the Windows driver's NVML.
pub const WSL_LIBRARY: &str = "/usr/lib/wsl/lib/libnvidia-ml.so.1";

/// The libraries to try, in order.
pub fn candidates(configured: Option<&Path>) -> Vec<PathBuf> {
    match configured {
        Some(p) => vec![p.to_path_buf()],
        None => vec![PathBuf::from(DEFAULT_LIBRARY), PathBuf::from(WSL_LIBRARY)],
    }
}

/// An initialised NVML and what it said about itself.
pub struct Loaded {
    pub nvml: Nvml,
    pub library: PathBuf,
    pub driver_version: Option<String>,
    pub devices: Option<u32>,
}

/// Loads the first candidate that initialises. Blocking: dlopen and nvmlInit can take seconds.
pub fn load(candidates: &[PathBuf]) -> Result<Loaded, String> {
    let mut not_found: Vec<String> = Vec::new();
    let mut failure: Option<String> = None;
    for path in candidates {
        match Nvml::builder().lib_path(path.as_os_str()).init() {
            Ok(nvml) => {
                return Ok(Loaded {
                    driver_version: nvml.sys_driver_version().ok(),
                    devices: nvml.device_count().ok(),
                    nvml,
                    library: path.clone(),
                });
            }
            Err(NvmlError::LibloadingError(e)) if is_not_found(&e.to_string()) => {
                not_found.push(path.display().to_string());
            }
            Err(e) => {
                // A library that exists but fails says more than the ones that do not exist.
                failure.get_or_insert_with(|| init_reason(path, &e));
            }
        }
    }
    Err(failure.unwrap_or_else(|| not_found_reason(&not_found)))
}

fn is_not_found(dlerror: &str) -> bool {
    dlerror.contains("No such file or directory")
}

fn not_found_reason(tried: &[String]) -> String {
    match tried {
        [] => "no NVML library to try".to_owned(),
        [one] => format!("{one} not found"),
        [first, rest @ ..] => format!("{first} not found (also tried {})", rest.join(", ")),
    }
}

/// Why a library that was found could not be used.
pub fn init_reason(path: &Path, e: &NvmlError) -> String {
    let lib = path.display();
    match e {
        NvmlError::DriverNotLoaded => {
            format!("NVIDIA driver not loaded ({lib} found, but nvmlInit failed)")
        }
        NvmlError::NoPermission => format!(
            "no permission to use the NVIDIA driver through {lib} (check access to /dev/nvidiactl and /dev/nvidia*)"
        ),
        NvmlError::LibloadingError(e) => format!("cannot load {lib}: {e}"),
        NvmlError::FailedToLoadSymbol(s) => format!("{lib} is not a usable NVML library: {s}"),
        other => format!("nvmlInit through {lib} failed: {other}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_configured_library_is_the_only_candidate() {
        let p = Path::new("/opt/nvml.so");
        assert_eq!(candidates(Some(p)), vec![PathBuf::from("/opt/nvml.so")]);
        assert_eq!(
            candidates(None),
            vec![PathBuf::from(DEFAULT_LIBRARY), PathBuf::from(WSL_LIBRARY)]
        );
    }

    #[test]
    fn reasons_name_the_library() {
        assert_eq!(
            not_found_reason(&["libnvidia-ml.so.1".into(), WSL_LIBRARY.into()]),
            "libnvidia-ml.so.1 not found (also tried /usr/lib/wsl/lib/libnvidia-ml.so.1)"
        );
        assert_eq!(not_found_reason(&["/x.so".into()]), "/x.so not found");
        assert!(
            init_reason(Path::new("/x.so"), &NvmlError::NoPermission).contains("/dev/nvidiactl")
        );
        assert!(is_not_found(
            "libnvidia-ml.so.1: cannot open shared object file: No such file or directory"
        ));
    }

    #[test]
    fn absent_libraries_fail_with_not_found() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a.so");
        let b = dir.path().join("b.so");
        let err = load(&[a.clone(), b.clone()]).err().unwrap();
        assert_eq!(
            err,
            format!("{} not found (also tried {})", a.display(), b.display())
        );
    }
}
