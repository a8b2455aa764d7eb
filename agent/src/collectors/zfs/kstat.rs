//! A pool's state from the kernel: `<proc_root>/spl/kstat/zfs/<pool>/state` holds one word
//! (`ONLINE\n`, `DEGRADED\n`). Read every tick without a fork, so a pool that degrades shows on
//! the next tick instead of after `pool_interval`; where the kstat is missing (older modules, a
//! container without the host's /proc) `zpool list`'s answer stands.

use std::io::Read;
use std::path::Path;

/// More than any state word (`SUSPENDED` is the longest); a longer file is not a state.
const MAX_STATE: u64 = 64;

/// The state the kernel reports for `pool`, or `None` when the kstat is absent, unreadable or
/// not one upper-case word.
pub fn pool_state(proc_root: &Path, pool: &str) -> Option<String> {
    // Pool names never hold '/', but they come from a child's output: never leave the kstat dir.
    if pool.is_empty() || pool.contains('/') || pool == "." || pool == ".." {
        return None;
    }
    let path = proc_root.join("spl/kstat/zfs").join(pool).join("state");
    let mut text = String::new();
    std::fs::File::open(path)
        .ok()?
        .take(MAX_STATE + 1)
        .read_to_string(&mut text)
        .ok()?;
    let word = text.trim();
    let is_word = !word.is_empty()
        && text.len() as u64 <= MAX_STATE
        && word.bytes().all(|b| b.is_ascii_uppercase());
    is_word.then(|| word.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> Vec<u8> {
        let dir =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/zfs/openzfs-2.3.2-qemu");
        std::fs::read(dir.join(name)).unwrap()
    }

    fn root_with(pool: &str, bytes: &[u8]) -> tempfile::TempDir {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("spl/kstat/zfs").join(pool);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("state"), bytes).unwrap();
        root
    }

    #[test]
    fn genuine_online_and_degraded_states_are_read() {
        let root = root_with("tank", &fixture("kstat-tank-state.txt"));
        assert_eq!(pool_state(root.path(), "tank").as_deref(), Some("ONLINE"));
        let root = root_with("tank", &fixture("degraded-kstat-tank-state.txt"));
        assert_eq!(pool_state(root.path(), "tank").as_deref(), Some("DEGRADED"));
    }

    #[test]
    fn missing_malformed_or_oversized_kstats_leave_zpool_the_answer() {
        let root = root_with("tank", b"ONLINE\n");
        assert_eq!(pool_state(root.path(), "scratch"), None);
        assert_eq!(pool_state(root.path(), "../zfs/tank"), None);
        assert_eq!(pool_state(root_with("tank", b"").path(), "tank"), None);
        assert_eq!(
            pool_state(root_with("tank", b"online\n").path(), "tank"),
            None
        );
        let long = format!("{}\n", "A".repeat(100));
        assert_eq!(
            pool_state(root_with("tank", long.as_bytes()).path(), "tank"),
            None
        );
    }
}
