//! The agent's own code pages: resident for what the tick runs, not for what start-up ran.
//!
//! Most of the agent's resident memory is code mapped from the page cache (issue 20: 5.4 of
//! 9.2 MiB VmRSS was the executable's text segment, host collectors only; libc's code and
//! read-only data another 1.3 MiB). Start-up (argument and config parsing, building every
//! collector, TLS set-up, the loader resolving symbols) touches most of the code once; each
//! page fault maps its 64 KiB neighbourhood too (the kernel's fault-around), so the code stays
//! almost wholly mapped although a steady tick references a fraction of it. Dropping the
//! mappings once start-up is over leaves the process to fault back in only what it runs again;
//! the pages themselves stay in the page cache, now unmapped, the first the kernel reclaims
//! under memory pressure. This holds for every object the loader mapped (the executable, libc,
//! the loader itself, the NVML library loaded at start-up), and a library's pages shared with
//! other processes stay resident for them: only this process's count falls.

use std::io;

/// One read-only segment of a loaded object: where it is mapped, page-aligned inwards.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Segment {
    start: usize,
    len: usize,
}

/// Calls `visit` with every loaded object's segments that the process never writes to (code,
/// read-only data), page-aligned inwards: their pages always equal the file's, so dropping a
/// mapping loses nothing. Writable segments, RELRO included (relocated at start, then made
/// read-only), hold private copies and are never visited; neither is the vDSO, which the
/// kernel maps from no file.
///
/// `visit` runs inside the loader's walk, which holds the lock `dlclose` takes around
/// unmapping an object (glibc's dl_load_write_lock): a segment cannot be unmapped, and its
/// range reused by another mapping, while `visit` acts on it. (The NVML library is opened and
/// closed again on a blocking thread while a driver is missing.)
fn for_each_read_only_segment(mut visit: impl FnMut(Segment)) {
    // SAFETY: sysconf only reads a constant of the system.
    let page = usize::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) }).unwrap_or(4096);
    let mut aligned = |s: Segment| {
        // Inwards to whole pages: an edge page may be shared with a neighbouring segment.
        let start = s.start.div_ceil(page) * page;
        let end = (s.start + s.len) / page * page;
        if end > start {
            visit(Segment {
                start,
                len: end - start,
            });
        }
    };
    let mut visit: &mut dyn FnMut(Segment) = &mut aligned;
    // SAFETY: the callback only reads the program headers the loader hands it, for the call's
    // duration, and calls the closure passed as `data`, which outlives the call.
    unsafe { libc::dl_iterate_phdr(Some(each_object), (&raw mut visit).cast::<libc::c_void>()) };
}

/// dl_iterate_phdr's callback, once per loaded object: its read-only loadable segments go to
/// the closure behind `data`. Skipped: the vDSO (its pages are the kernel's, not a file's) and
/// an object with text relocations, whose "read-only" pages the loader patched into private
/// copies that dropping would lose.
unsafe extern "C" fn each_object(
    info: *mut libc::dl_phdr_info,
    _size: libc::size_t,
    data: *mut libc::c_void,
) -> libc::c_int {
    // SAFETY: the loader passes a valid `dl_phdr_info` for the call's duration.
    let info = unsafe { &*info };
    // SAFETY: `data` is the `&mut &mut dyn FnMut(Segment)` for_each_read_only_segment passed.
    let visit = unsafe { &mut *data.cast::<&mut dyn FnMut(Segment)>() };
    if info.dlpi_phdr.is_null() || is_vdso(info.dlpi_name) {
        return 0;
    }
    // SAFETY: `dlpi_phdr` points at `dlpi_phnum` program headers.
    let headers =
        unsafe { std::slice::from_raw_parts(info.dlpi_phdr, usize::from(info.dlpi_phnum)) };
    let dynamic = headers.iter().find(|h| h.p_type == libc::PT_DYNAMIC);
    // SAFETY: a PT_DYNAMIC header of a loaded object locates its mapped dynamic section.
    if dynamic.is_some_and(|h| unsafe { has_text_relocations(info.dlpi_addr + h.p_vaddr) }) {
        return 0;
    }
    for h in headers {
        if h.p_type == libc::PT_LOAD && h.p_flags & libc::PF_W == 0 {
            visit(Segment {
                start: (info.dlpi_addr + h.p_vaddr) as usize,
                len: h.p_memsz as usize,
            });
        }
    }
    0
}

/// One entry of an ELF64 dynamic section (`Elf64_Dyn`).
#[repr(C)]
struct DynEntry {
    tag: i64,
    value: u64,
}

const DT_NULL: i64 = 0;
const DT_TEXTREL: i64 = 22;
const DT_FLAGS: i64 = 30;
const DF_TEXTREL: u64 = 0x4;

/// Whether the dynamic section mapped at `addr` marks text relocations (DT_TEXTREL, or
/// DF_TEXTREL in DT_FLAGS).
///
/// # Safety
/// `addr` must be the address of a loaded object's dynamic section, which ends with DT_NULL.
unsafe fn has_text_relocations(addr: u64) -> bool {
    let mut entry = addr as *const DynEntry;
    loop {
        // SAFETY: the caller's section is a DT_NULL-terminated array of entries: every entry
        // up to the terminator is mapped and readable.
        let e = unsafe { &*entry };
        match e.tag {
            DT_NULL => return false,
            DT_TEXTREL => return true,
            DT_FLAGS if e.value & DF_TEXTREL != 0 => return true,
            _ => {}
        }
        // SAFETY: not the terminator yet, so the next entry is still within the section.
        entry = unsafe { entry.add(1) };
    }
}

/// Whether the object named `name` is the kernel's vDSO ("linux-vdso.so.1" on x86-64).
fn is_vdso(name: *const libc::c_char) -> bool {
    if name.is_null() {
        return false;
    }
    // SAFETY: the loader's object names are NUL-terminated strings valid during the callback.
    let name = unsafe { std::ffi::CStr::from_ptr(name) }.to_bytes();
    name.starts_with(b"linux-vdso") || name.starts_with(b"linux-gate")
}

/// Drops the process's mappings of the code and read-only data of every loaded object: what
/// runs again faults back in from the page cache (a minor fault per 64 KiB), the rest stops
/// counting as resident. Returns the bytes advised; the first refusal ends it.
pub(crate) fn drop_code_mappings() -> io::Result<usize> {
    let mut advised = 0;
    let mut refused = None;
    for_each_read_only_segment(|s| {
        if refused.is_some() {
            return;
        }
        // SAFETY: the range lies within a read-only file mapping of a loaded object, whose
        // pages are never modified, and stays mapped for the call (see
        // for_each_read_only_segment): MADV_DONTNEED only removes the mappings, and the next
        // access maps the same file pages again.
        let rc = unsafe { libc::madvise(s.start as *mut libc::c_void, s.len, libc::MADV_DONTNEED) };
        if rc == 0 {
            advised += s.len;
        } else {
            refused = Some(io::Error::last_os_error());
        }
    });
    refused.map_or(Ok(advised), Err)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_only_segments() -> Vec<Segment> {
        let mut found = Vec::new();
        for_each_read_only_segment(|s| found.push(s));
        found
    }

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
    fn finds_the_executables_code_and_libcs() {
        let segments = read_only_segments();
        let here = finds_the_executables_code_and_libcs as *const () as usize;
        let getpid = libc::getpid as *const () as usize;
        for (what, addr) in [("this test", here), ("libc's getpid", getpid)] {
            assert!(
                segments
                    .iter()
                    .any(|s| s.start <= addr && addr < s.start + s.len),
                "{what} at {addr:#x} lies in none of {segments:x?}"
            );
        }
    }

    #[test]
    fn text_relocations_are_read_from_the_dynamic_section() {
        const DT_NEEDED: i64 = 1;
        // One entry, then the terminator every dynamic section ends with.
        let section = |tag, value| {
            [
                DynEntry { tag, value },
                DynEntry {
                    tag: DT_NULL,
                    value: 0,
                },
            ]
        };
        for (entries, expected) in [
            (section(DT_NEEDED, 1), false),
            (section(DT_TEXTREL, 0), true),
            (section(DT_FLAGS, DF_TEXTREL | 0x8), true),
            (section(DT_FLAGS, 0x8), false),
        ] {
            // SAFETY: each array ends with DT_NULL.
            let got = unsafe { has_text_relocations(entries.as_ptr() as u64) };
            assert_eq!(got, expected, "first tag {}", entries[0].tag);
        }
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
