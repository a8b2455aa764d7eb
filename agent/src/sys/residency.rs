//! The agent's own code pages: resident for what the tick runs, not for what start-up ran.
//!
//! Most of the agent's resident memory is its executable mapped from the page cache (issue 20:
//! 5.4 of 9.2 MiB VmRSS was the text segment, host collectors only). Start-up (argument and
//! config parsing, building every collector, TLS set-up) touches most of the code once; each
//! page fault maps its 64 KiB neighbourhood too (the kernel's fault-around), so the text stays
//! almost wholly mapped although a steady tick references under 1 MiB of it. Dropping the
//! mappings once start-up is over leaves the process to fault back in only what it runs again;
//! the pages themselves stay in the page cache, now unmapped, the first the kernel reclaims
//! under memory pressure.

use std::io;

/// One read-only segment of the executable: where it is mapped, page-aligned inwards.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Segment {
    start: usize,
    len: usize,
}

/// The executable's loaded segments that the process never writes to (code, read-only data):
/// their pages always equal the file's, so dropping a mapping loses nothing. Writable segments,
/// RELRO included (relocated at start, then made read-only), hold private copies and are never
/// touched here.
fn read_only_segments() -> Vec<Segment> {
    // SAFETY: sysconf only reads a constant of the system.
    let page = usize::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) }).unwrap_or(4096);
    let mut found: Vec<Segment> = Vec::new();
    // SAFETY: the callback only reads the program headers the loader hands it, for the call's
    // duration, and writes to the Vec passed as `data`, which outlives the call.
    unsafe { libc::dl_iterate_phdr(Some(first_object), (&raw mut found).cast::<libc::c_void>()) };
    found
        .into_iter()
        .filter_map(|s| {
            // Inwards to whole pages: an edge page may be shared with a neighbouring segment.
            let start = s.start.div_ceil(page) * page;
            let end = (s.start + s.len) / page * page;
            (end > start).then(|| Segment {
                start,
                len: end - start,
            })
        })
        .collect()
}

/// dl_iterate_phdr's callback: the first object it reports is the executable itself; its
/// read-only loadable segments go into the Vec behind `data`, then the walk stops.
unsafe extern "C" fn first_object(
    info: *mut libc::dl_phdr_info,
    _size: libc::size_t,
    data: *mut libc::c_void,
) -> libc::c_int {
    // SAFETY: the loader passes a valid `dl_phdr_info` for the call's duration.
    let info = unsafe { &*info };
    // SAFETY: `data` is the `&mut Vec<Segment>` read_only_segments passed.
    let found = unsafe { &mut *data.cast::<Vec<Segment>>() };
    if info.dlpi_phdr.is_null() {
        return 1;
    }
    // SAFETY: `dlpi_phdr` points at `dlpi_phnum` program headers.
    let headers =
        unsafe { std::slice::from_raw_parts(info.dlpi_phdr, usize::from(info.dlpi_phnum)) };
    for h in headers {
        if h.p_type == libc::PT_LOAD && h.p_flags & libc::PF_W == 0 {
            found.push(Segment {
                start: (info.dlpi_addr + h.p_vaddr) as usize,
                len: h.p_memsz as usize,
            });
        }
    }
    1
}

/// Drops the process's mappings of its own code and read-only data: what runs again faults back
/// in from the page cache (a minor fault per 64 KiB), the rest stops counting as resident.
/// Returns the bytes advised.
pub(crate) fn drop_code_mappings() -> io::Result<usize> {
    let mut advised = 0;
    for s in read_only_segments() {
        // SAFETY: the range lies within a read-only file mapping of the executable, whose pages
        // are never modified: MADV_DONTNEED only removes the mappings, and the next access maps
        // the same file pages again.
        let rc = unsafe { libc::madvise(s.start as *mut libc::c_void, s.len, libc::MADV_DONTNEED) };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
        advised += s.len;
    }
    Ok(advised)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Resident KiB of this process's mappings of `segments`, from /proc/self/smaps.
    fn resident_kib(segments: &[Segment]) -> u64 {
        let smaps = std::fs::read_to_string("/proc/self/smaps").unwrap();
        let mut total = 0;
        let mut inside = false;
        for line in smaps.lines() {
            let range = line.split_whitespace().next().unwrap_or("");
            if let Some((a, b)) = range.split_once('-')
                && let (Ok(a), Ok(b)) = (usize::from_str_radix(a, 16), usize::from_str_radix(b, 16))
            {
                inside = segments.iter().any(|s| a < s.start + s.len && s.start < b);
            } else if inside && let Some(kib) = line.strip_prefix("Rss:") {
                total += kib
                    .trim()
                    .trim_end_matches(" kB")
                    .trim()
                    .parse::<u64>()
                    .unwrap();
            }
        }
        total
    }

    #[test]
    fn finds_the_code_segment() {
        let segments = read_only_segments();
        let here = finds_the_code_segment as *const () as usize;
        assert!(
            segments
                .iter()
                .any(|s| s.start <= here && here < s.start + s.len),
            "this function at {here:#x} lies in none of {segments:x?}"
        );
    }

    #[test]
    fn dropped_code_is_no_longer_resident_and_still_runs() {
        let segments = read_only_segments();
        let before = resident_kib(&segments);
        let advised = drop_code_mappings().unwrap();
        let after = resident_kib(&segments);
        assert!(advised > 0);
        // The test harness's other threads may fault a few pages back in meanwhile; most of
        // what start-up and the other tests mapped is gone.
        assert!(
            after * 2 < before,
            "resident {before} KiB before, {after} KiB after"
        );
        // The code runs on: it is mapped again from the page cache on first use.
        assert_eq!(format!("{}", 6 * 7), "42");
        assert!(!read_only_segments().is_empty());
    }
}
