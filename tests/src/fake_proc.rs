//! A copy of this host's /proc files for the host collector (`[host] proc_root`), whose meminfo
//! a test rewrites to move system.memory.utilization while everything else stays real.

use std::path::Path;

/// The config sections of an agent that reads only the host collector, from `proc_root`: GPU,
/// ZFS and Ollama off, so nothing but the rewritten files moves.
pub fn host_only_sections(proc_root: &Path) -> String {
    format!(
        "[host]\nproc_root = \"{}\"\nper_cpu = false\n\n[gpu]\nenabled = false\n\n\
         [zfs]\nenabled = false\n\n[ollama]\nenabled = false\n",
        proc_root.display()
    )
}

/// A rule that warns while more than half the memory is used, once it has been for `for_`.
pub fn memory_rule(name: &str, for_: &str, summary: &str) -> String {
    format!(
        "[[rules]]\nname = \"{name}\"\nmetric = \"system.memory.utilization\"\n\
         match = {{ \"system.memory.state\" = \"used\" }}\nop = \">\"\n\
         warning = 0.5\nfor = \"{for_}\"\nsummary = \"{summary}\"\n"
    )
}

/// Copies the /proc files the host collector reads into `dst`.
pub fn copy_proc(dst: &Path) {
    std::fs::create_dir_all(dst.join("pressure")).expect("create proc copy");
    for f in [
        "stat",
        "meminfo",
        "loadavg",
        "vmstat",
        "pressure/cpu",
        "pressure/memory",
        "pressure/io",
    ] {
        // PSI may be missing (kernel without CONFIG_PSI); the collector copes, so do we.
        if let Ok(text) = std::fs::read(Path::new("/proc").join(f)) {
            std::fs::write(dst.join(f), text).expect("write proc copy");
        }
    }
}

/// Rewrites meminfo so that used memory (total − free − buffers − cached) is `used_share` of
/// the total, with MemAvailable equal to MemFree so the file stays consistent; atomically, so
/// the agent never reads half a file.
pub fn set_memory_use(proc_root: &Path, used_share: f64) {
    let path = proc_root.join("meminfo");
    let text = std::fs::read_to_string(&path).expect("read meminfo copy");
    let total: u64 = text
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .expect("MemTotal in meminfo");
    let free = ((1.0 - used_share) * total as f64) as u64;
    let out: Vec<String> = text
        .lines()
        .map(|l| match l.split(':').next().unwrap_or("") {
            "MemFree" => format!("MemFree:        {free} kB"),
            "MemAvailable" => format!("MemAvailable:        {free} kB"),
            k @ ("Buffers" | "Cached" | "SReclaimable") => format!("{k}:        0 kB"),
            _ => l.to_owned(),
        })
        .collect();
    let tmp = proc_root.join("meminfo.tmp");
    std::fs::write(&tmp, out.join("\n") + "\n").expect("write meminfo");
    std::fs::rename(&tmp, &path).expect("replace meminfo");
}
