use super::*;

fn rchar(text: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix("rchar: "))
        .and_then(|v| v.parse().ok())
        .unwrap()
}

#[test]
fn a_proc_file_is_kept_open_and_rendered_afresh_on_each_read() {
    let mut f = ProcFile::new(Path::new("/proc"), "self/io", 1 << 20);
    let mut buf = Vec::new();
    let first = rchar(f.read(&mut buf).unwrap().unwrap());
    assert!(f.kept().is_some(), "/proc/self/io is on procfs");
    // Reading the file counts towards rchar, so a fresh rendering shows more.
    let second = rchar(f.read(&mut buf).unwrap().unwrap());
    assert!(
        second > first,
        "{first} then {second}: the kept file was not rendered again"
    );
}

#[test]
fn a_regular_file_is_opened_each_time_so_a_replaced_file_is_seen() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("stat"), "one\n").unwrap();
    let mut f = ProcFile::new(dir.path(), "stat", 1024);
    let mut buf = Vec::new();
    assert_eq!(f.read(&mut buf).unwrap(), Some("one\n"));
    assert!(f.kept().is_none());
    // As the tests replace files between ticks: a new file renamed over the old one.
    std::fs::write(dir.path().join("stat.new"), "two, longer\n").unwrap();
    std::fs::rename(dir.path().join("stat.new"), dir.path().join("stat")).unwrap();
    assert_eq!(f.read(&mut buf).unwrap(), Some("two, longer\n"));
    std::fs::remove_file(dir.path().join("stat")).unwrap();
    assert_eq!(f.read(&mut buf).unwrap(), None);
}

#[test]
fn a_file_past_the_first_chunk_is_read_whole() {
    let dir = tempfile::tempdir().unwrap();
    let text = "cpu0 1 2 3 4 5 6 7 8 9 10\n".repeat(10_000);
    std::fs::write(dir.path().join("stat"), &text).unwrap();
    let mut f = ProcFile::new(dir.path(), "stat", 1 << 20);
    let mut buf = Vec::new();
    assert_eq!(f.read(&mut buf).unwrap(), Some(text.as_str()));
    // A short file after a long one: only its own bytes.
    std::fs::write(dir.path().join("stat"), "short\n").unwrap();
    assert_eq!(f.read(&mut buf).unwrap(), Some("short\n"));
}

#[test]
fn reads_are_bounded_by_the_cap() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("big"), vec![b'x'; 101]).unwrap();
    std::fs::write(dir.path().join("exact"), vec![b'x'; 100]).unwrap();
    std::os::unix::fs::symlink("/dev/zero", dir.path().join("zero")).unwrap();
    let mut buf = Vec::new();
    let e = ProcFile::new(dir.path(), "big", 100)
        .read(&mut buf)
        .unwrap_err();
    assert!(e.ends_with("big: over the 100-byte limit"), "{e}");
    let exact = ProcFile::new(dir.path(), "exact", 100).read(&mut buf);
    assert_eq!(exact.unwrap().map(str::len), Some(100));
    let e = ProcFile::new(dir.path(), "zero", 1 << 20)
        .read(&mut buf)
        .unwrap_err();
    assert!(e.contains("over the 1048576-byte limit"), "{e}");
}

#[test]
fn errors_name_the_path() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("stat")).unwrap();
    std::fs::write(dir.path().join("bin"), [0xff, 0xfe]).unwrap();
    let mut buf = Vec::new();
    let e = ProcFile::new(dir.path(), "stat", 100)
        .read(&mut buf)
        .unwrap_err();
    assert!(
        e.starts_with("failed to read ") && e.contains("/stat: "),
        "{e}"
    );
    let e = ProcFile::new(dir.path(), "bin", 100)
        .read(&mut buf)
        .unwrap_err();
    assert!(e.ends_with("/bin is not UTF-8"), "{e}");
}

fn syscr(io: &mut ProcFile, buf: &mut Vec<u8>) -> u64 {
    let text = io.read(buf).unwrap().unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix("syscr: "))
        .and_then(|v| v.parse().ok())
        .unwrap()
}

/// The read system calls one `read` of `f` makes, counted by the kernel for this thread alone
/// (other tests run on other threads).
fn reads_of(f: &mut ProcFile) -> u64 {
    let mut io = ProcFile::new(Path::new("/proc"), "thread-self/io", 1 << 20);
    let (mut buf, mut scratch) = (Vec::new(), Vec::new());
    syscr(&mut io, &mut buf);
    // What reading io itself adds between two of its renderings (kernels differ in whether a
    // read counts itself before rendering), measured rather than assumed.
    let (a, b) = (syscr(&mut io, &mut buf), syscr(&mut io, &mut buf));
    f.read(&mut scratch).unwrap().unwrap();
    let c = syscr(&mut io, &mut buf);
    (c - b) - (b - a)
}

#[test]
fn a_one_record_file_is_read_whole_in_one_call() {
    let mut whole = ProcFile::one_record(Path::new("/proc"), "version", 1 << 20);
    let mut buf = Vec::new();
    let expected = std::fs::read_to_string("/proc/version").unwrap();
    assert_eq!(whole.read(&mut buf).unwrap(), Some(expected.as_str()));
    assert!(whole.kept().is_some());
    assert_eq!(reads_of(&mut whole), 1, "the short read is the end");
    assert_eq!(whole.read(&mut buf).unwrap(), Some(expected.as_str()));
    // Without the flag the end is a read of 0 bytes: two calls.
    let mut plain = ProcFile::new(Path::new("/proc"), "version", 1 << 20);
    plain.read(&mut buf).unwrap();
    assert_eq!(reads_of(&mut plain), 2);
}

#[test]
fn a_short_read_ends_a_one_record_file_and_a_full_chunk_does_not() {
    // As a seq_file serves one long record: full chunks, then the rest, then nothing.
    let text = "x".repeat(40_000);
    let mut calls = 0;
    let read = |chunk: &mut [u8], at: u64, calls: &mut usize| {
        *calls += 1;
        let rest = text.as_bytes().get(at as usize..).unwrap_or_default();
        let n = rest.len().min(chunk.len());
        chunk[..n].copy_from_slice(&rest[..n]);
        Ok(n)
    };
    let len = read_capped(&mut Vec::new(), 1 << 20, true, |c, at| {
        read(c, at, &mut calls)
    });
    assert_eq!(len.unwrap(), Some(text.len()));
    // 16 KiB, 16 KiB more into the doubled buffer, then the short tail ends it.
    assert_eq!(calls, 3);
    let short_end = calls;
    calls = 0;
    let len = read_capped(&mut Vec::new(), 1 << 20, false, |c, at| {
        read(c, at, &mut calls)
    });
    assert_eq!(len.unwrap(), Some(text.len()));
    assert_eq!(
        calls,
        short_end + 1,
        "without the flag, one more read returns 0"
    );
}
