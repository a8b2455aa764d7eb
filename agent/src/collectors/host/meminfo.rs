//! /proc/meminfo, the fields the host collector reports. procfs' parser fills a map of every
//! line (~55 keys allocated as strings each tick) to hand back a struct of which eight fields
//! are used; this reads those eight in one pass with no allocation. Values are as procfs gives
//! them: bytes for `kB` lines. Like procfs, a line that is not `Key: number [kB]` fails the
//! whole file, and so does a missing required field.

/// The meminfo fields hostwarden reports, in bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MemInfo {
    pub mem_total: u64,
    pub mem_free: u64,
    /// Linux 3.14+.
    pub mem_available: Option<u64>,
    pub buffers: u64,
    pub cached: u64,
    /// Linux 2.6.19+.
    pub s_reclaimable: Option<u64>,
    pub swap_total: u64,
    pub swap_free: u64,
}

/// Parses meminfo; the error says which line or field is wrong.
pub fn parse_meminfo(text: &str) -> Result<MemInfo, String> {
    let mut found = [None; 8];
    for (n, line) in text.lines().enumerate() {
        if line.is_empty() {
            continue;
        }
        let mut it = line.split_ascii_whitespace();
        let (Some(key), Some(value)) = (it.next(), it.next()) else {
            return Err(format!("line {} has no value", n + 1));
        };
        let value: u64 = value
            .parse()
            .map_err(|_| format!("line {}: {value:?} is not a number", n + 1))?;
        let value = match it.next() {
            None => value,
            Some("kB") => value.saturating_mul(1024),
            Some(unit) => return Err(format!("line {}: unknown unit {unit:?}", n + 1)),
        };
        let slot = match key {
            "MemTotal:" => 0,
            "MemFree:" => 1,
            "MemAvailable:" => 2,
            "Buffers:" => 3,
            "Cached:" => 4,
            "SReclaimable:" => 5,
            "SwapTotal:" => 6,
            "SwapFree:" => 7,
            _ => continue,
        };
        if let Some(s) = found.get_mut(slot) {
            *s = Some(value);
        }
    }
    let [
        total,
        free,
        available,
        buffers,
        cached,
        reclaimable,
        swap_total,
        swap_free,
    ] = found;
    let need = |v: Option<u64>, name: &str| v.ok_or_else(|| format!("no {name}"));
    Ok(MemInfo {
        mem_total: need(total, "MemTotal")?,
        mem_free: need(free, "MemFree")?,
        mem_available: available,
        buffers: need(buffers, "Buffers")?,
        cached: need(cached, "Cached")?,
        s_reclaimable: reclaimable,
        swap_total: need(swap_total, "SwapTotal")?,
        swap_free: need(swap_free, "SwapFree")?,
    })
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use procfs::{FromBufRead, Meminfo};

    use super::*;

    /// Every captured tree and this host: the same eight values as procfs' parser.
    #[test]
    fn agrees_with_procfs_on_every_captured_tree_and_this_host() {
        let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/proc");
        let mut files: Vec<_> = std::fs::read_dir(fixtures)
            .unwrap()
            .map(|e| e.unwrap().path().join("meminfo"))
            .filter(|p| p.is_file())
            .collect();
        assert!(!files.is_empty());
        files.push("/proc/meminfo".into());
        for path in files {
            let text = std::fs::read_to_string(&path).unwrap();
            let ours = parse_meminfo(&text).unwrap();
            let theirs = Meminfo::from_buf_read(text.as_bytes()).unwrap();
            let expected = MemInfo {
                mem_total: theirs.mem_total,
                mem_free: theirs.mem_free,
                mem_available: theirs.mem_available,
                buffers: theirs.buffers,
                cached: theirs.cached,
                s_reclaimable: theirs.s_reclaimable,
                swap_total: theirs.swap_total,
                swap_free: theirs.swap_free,
            };
            assert_eq!(ours, expected, "{}", path.display());
        }
    }

    #[test]
    fn malformed_or_incomplete_files_are_errors() {
        assert_eq!(
            parse_meminfo("garbage\n").unwrap_err(),
            "line 1 has no value"
        );
        assert!(
            parse_meminfo("MemTotal: x kB\n")
                .unwrap_err()
                .contains("not a number")
        );
        assert!(
            parse_meminfo("MemTotal: 1 MB\n")
                .unwrap_err()
                .contains("unit")
        );
        assert_eq!(parse_meminfo("MemTotal: 1 kB\n").unwrap_err(), "no MemFree");
        assert_eq!(parse_meminfo("").unwrap_err(), "no MemTotal");
    }
}
