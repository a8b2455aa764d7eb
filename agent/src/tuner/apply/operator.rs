//! Operator drop-ins that sort after ours. systemd applies a unit's drop-ins in the order of
//! their file names (`DropInPaths` lists them in that order), so an operator's
//! `90-operator.conf` setting `OLLAMA_NUM_PARALLEL` wins over `60-hostwarden.conf`, and one
//! setting `MemoryMax=` wins over `60-hostwarden-resources.conf` at every daemon-reload. The
//! tuner must then leave that key alone: writing it again would only fail verification and roll
//! back, or set the limit live again after each reload, forever. This module finds such keys
//! for both families (environment keys by name, limits by directive: `MemoryMax`, `CPUQuota`…):
//! which file sets which of our keys, and a stamp of the file (size, mtime, content hash) so a
//! report is made once per version of the file.
//!
//! Only the file name counts, whatever the directory: systemd's runtime property files
//! (`50-MemoryMax.conf` in `system.control`/`user.control`, written by `SetUnitProperties`,
//! ours included, and by `systemctl set-property`) sort before our files and lose to them at a
//! reload, so they are not overrides.
//!
//! Reads are bounded: at most [`MAX_DROPINS`] files, [`MAX_DROPIN_BYTES`] of each, opened
//! without blocking and only when they are regular files (a drop-in masked by a symlink to
//! /dev/null holds nothing).

use std::collections::BTreeMap;
use std::io::Read;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::Path;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::dropin::{ALLOWED_KEYS, DROPIN_NAME};
use crate::tuner::resources::limits::{DIRECTIVES, RESOURCES_DROPIN};

/// More drop-ins than this on one unit are not read (the rest are named in a problem).
pub const MAX_DROPINS: usize = 64;
/// Bytes read of one drop-in; a longer file is judged on its first 64 KiB.
pub const MAX_DROPIN_BYTES: u64 = 64 * 1024;

/// One version of a file: a report is made again only when this changes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileStamp {
    pub size: u64,
    /// Modification time, nanoseconds since the epoch.
    pub mtime_ns: i64,
    /// The first 16 hex digits of the SHA-256 of the bytes read.
    pub sha256: String,
}

/// One of our keys that a later drop-in sets (or unsets).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Override {
    pub path: String,
    /// The value the file gives; `None` when it unsets the key or clears `Environment=`.
    pub value: Option<String>,
    pub file: FileStamp,
}

/// Key -> the last file that overrides it (the one systemd applies last).
pub type Overrides = BTreeMap<String, Override>;

/// What a scan of the unit's drop-ins found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Scan {
    pub overrides: Overrides,
    /// Files that could not be read, or were too many or too long: the keys they may set are
    /// not known.
    pub problems: Vec<String>,
}

/// One assignment in a drop-in's `[Service]` section that touches the environment.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Assign {
    Set(String, String),
    Unset(String),
    /// An empty `Environment=`: every earlier assignment, ours included, is dropped.
    Clear,
    /// A resource-limit directive (`MemoryMax=2G`); an empty value resets it.
    Limit(String, String),
}

/// The drop-ins in `drop_in_paths` (systemd's order) whose file names sort after ours (after
/// `60-hostwarden.conf` for environment keys, after `60-hostwarden-resources.conf` for limits),
/// and the allowlisted keys and limit directives they set.
pub fn scan(drop_in_paths: &[String]) -> Scan {
    let mut out = Scan::default();
    if drop_in_paths.len() > MAX_DROPINS {
        out.problems.push(format!(
            "the unit has {} drop-ins; only the first {MAX_DROPINS} were read",
            drop_in_paths.len()
        ));
    }
    for path in drop_in_paths.iter().take(MAX_DROPINS) {
        let name = Path::new(path).file_name().unwrap_or_default();
        // systemd orders drop-ins by file name alone, whatever their directory. Our resources
        // file sorts before our environment file, so files between the two can only override
        // limits.
        let name = name.as_encoded_bytes();
        if name <= RESOURCES_DROPIN.as_bytes() || name == DROPIN_NAME.as_bytes() {
            continue;
        }
        let after_env = name > DROPIN_NAME.as_bytes();
        let (text, file) = match read_bounded(Path::new(path)) {
            Ok(Some(r)) => r,
            Ok(None) => continue,
            Err(e) => {
                out.problems.push(format!("cannot read {path}: {e}"));
                continue;
            }
        };
        if file.size > MAX_DROPIN_BYTES {
            out.problems.push(format!(
                "{path} is {} bytes; only its first {MAX_DROPIN_BYTES} were read",
                file.size
            ));
        }
        for a in assignments(&text) {
            let mut note = |key: &str, value: Option<String>| {
                if after_env && ALLOWED_KEYS.contains(&key) || DIRECTIVES.contains(&key) {
                    out.overrides.insert(
                        key.to_owned(),
                        Override {
                            path: path.clone(),
                            value,
                            file: file.clone(),
                        },
                    );
                }
            };
            match a {
                Assign::Set(k, v) => note(&k, Some(v)),
                Assign::Unset(k) => note(&k, None),
                Assign::Clear => ALLOWED_KEYS.iter().for_each(|k| note(k, None)),
                Assign::Limit(k, v) => note(&k, (!v.is_empty()).then_some(v)),
            }
        }
    }
    out
}

/// The file's text (its first [`MAX_DROPIN_BYTES`]) and stamp; `None` when it is not a
/// regular file.
fn read_bounded(path: &Path) -> std::io::Result<Option<(String, FileStamp)>> {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)?;
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Ok(None);
    }
    let mut bytes = Vec::new();
    file.take(MAX_DROPIN_BYTES).read_to_end(&mut bytes)?;
    let digest = Sha256::digest(&bytes);
    let sha256 = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
    let stamp = FileStamp {
        size: meta.len(),
        mtime_ns: meta.mtime().saturating_mul(1_000_000_000) + meta.mtime_nsec(),
        sha256,
    };
    Ok(Some((String::from_utf8_lossy(&bytes).into_owned(), stamp)))
}

/// The `Environment=`, `UnsetEnvironment=` and limit assignments of the `[Service]` sections,
/// in order.
/// Continuation lines (a trailing `\`) are joined as systemd joins them.
fn assignments(text: &str) -> Vec<Assign> {
    let mut out = Vec::new();
    let mut in_service = false;
    let mut joined = String::new();
    for raw in text.lines() {
        let line = raw.trim();
        if joined.is_empty() && (line.starts_with('#') || line.starts_with(';')) {
            continue;
        }
        if let Some(head) = line.strip_suffix('\\') {
            joined.push_str(head);
            joined.push(' ');
            continue;
        }
        joined.push_str(line);
        let logical = std::mem::take(&mut joined);
        let logical = logical.trim();
        if logical.starts_with('[') {
            in_service = logical == "[Service]";
            continue;
        }
        let Some((key, value)) = logical.split_once('=') else {
            continue;
        };
        if !in_service {
            continue;
        }
        let value = value.trim();
        match key.trim() {
            "Environment" if value.is_empty() => out.push(Assign::Clear),
            "Environment" => out.extend(
                words(value)
                    .into_iter()
                    .filter_map(|w| w.split_once('=').map(|(k, v)| (k.to_owned(), v.to_owned())))
                    .map(|(k, v)| Assign::Set(k, v)),
            ),
            // Each word is a name, or NAME=VALUE (unset only if it has that value: still ours
            // no longer).
            "UnsetEnvironment" => out.extend(words(value).into_iter().map(|w| {
                Assign::Unset(w.split_once('=').map_or(w.clone(), |(k, _)| k.to_owned()))
            })),
            k if DIRECTIVES.contains(&k) => out.push(Assign::Limit(k.to_owned(), value.to_owned())),
            _ => {}
        }
    }
    out
}

/// Splits a value into words as systemd does for `Environment=`: blanks separate, double or
/// single quotes group, a backslash escapes the next character, `%%` is a `%`.
fn words(value: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut quote: Option<char> = None;
    let mut chars = value.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                if let Some(e) = chars.next() {
                    word.push(match e {
                        'n' => '\n',
                        't' => '\t',
                        e => e,
                    });
                }
                in_word = true;
            }
            '%' => {
                if let Some(e) = chars.next() {
                    word.push('%');
                    if e != '%' {
                        word.push(e);
                    }
                }
                in_word = true;
            }
            q @ ('"' | '\'') if quote.is_none() => {
                quote = Some(q);
                in_word = true;
            }
            q if Some(q) == quote => quote = None,
            c if c.is_whitespace() && quote.is_none() => {
                if in_word {
                    out.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            c => {
                word.push(c);
                in_word = true;
            }
        }
    }
    if in_word {
        out.push(word);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(k: &str, v: &str) -> Assign {
        Assign::Set(k.to_owned(), v.to_owned())
    }

    #[test]
    fn reads_quoted_words_continuations_and_resets() {
        let text = "# mine\n[Unit]\nEnvironment=OLLAMA_KEEP_ALIVE=1h\n[Service]\n\
            Environment=\"OLLAMA_NUM_PARALLEL=3\" OLLAMA_MAX_QUEUE='a b' \\\n  OTHER=1\n\
            Environment=\nUnsetEnvironment=OLLAMA_FLASH_ATTENTION OLLAMA_KEEP_ALIVE=5m\n\
            ;Environment=OLLAMA_NUM_PARALLEL=9\n";
        assert_eq!(
            assignments(text),
            [
                set("OLLAMA_NUM_PARALLEL", "3"),
                set("OLLAMA_MAX_QUEUE", "a b"),
                set("OTHER", "1"),
                Assign::Clear,
                Assign::Unset("OLLAMA_FLASH_ATTENTION".into()),
                Assign::Unset("OLLAMA_KEEP_ALIVE".into()),
            ]
        );
        assert_eq!(words(r#"A=1\ 2 "B=x%%y""#), ["A=1 2", "B=x%y"]);
    }

    #[test]
    fn only_files_sorting_after_ours_count_and_the_last_one_wins() {
        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, body: &str| {
            let p = dir.path().join(name);
            std::fs::write(&p, body).unwrap();
            p.display().to_string()
        };
        let early = write(
            "10-early.conf",
            "[Service]\nEnvironment=OLLAMA_KEEP_ALIVE=1h\n",
        );
        let ours = write(
            DROPIN_NAME,
            "[Service]\nEnvironment=\"OLLAMA_NUM_PARALLEL=2\"\n",
        );
        let a = write(
            "80-a.conf",
            "[Service]\nEnvironment=OLLAMA_NUM_PARALLEL=3 PATH=/x\n",
        );
        let b = write(
            "90-operator.conf",
            "[Service]\nEnvironment=OLLAMA_NUM_PARALLEL=4\n",
        );
        let s = scan(&[early, ours, a, b.clone(), "/nonexistent/95-x.conf".into()]);
        assert_eq!(s.overrides.len(), 1, "{s:?}");
        let o = &s.overrides["OLLAMA_NUM_PARALLEL"];
        assert_eq!(
            (o.path.as_str(), o.value.as_deref()),
            (b.as_str(), Some("4"))
        );
        assert_eq!(o.file.sha256.len(), 16);
        assert_eq!(s.problems.len(), 1);
        assert!(s.problems[0].contains("95-x.conf"), "{:?}", s.problems);
    }

    #[test]
    fn limit_directives_after_our_resources_file_are_the_operators() {
        let dir = tempfile::tempdir().unwrap();
        let control = dir.path().join("user.control/ollama.service.d");
        let etc = dir.path().join("etc/ollama.service.d");
        std::fs::create_dir_all(&control).unwrap();
        std::fs::create_dir_all(&etc).unwrap();
        let write = |d: &Path, name: &str, body: &str| {
            let p = d.join(name);
            std::fs::write(&p, body).unwrap();
            p.display().to_string()
        };
        // What systemd lists for a unit the tuner set live and an operator overrode.
        let paths = [
            write(
                &control,
                "50-MemoryMax.conf",
                "# This is a drop-in unit file extension, created via \"systemctl set-property\"\n\
                 # or an equivalent operation. Do not edit.\n[Service]\nMemoryMax=536870912\n",
            ),
            write(
                &etc,
                RESOURCES_DROPIN,
                "[Service]\nMemoryMax=512M\nCPUQuota=150%\nTasksMax=64\n",
            ),
            write(
                &etc,
                "60-hostwarden-z.conf",
                "[Service]\nCPUWeight=50\nEnvironment=OLLAMA_NUM_PARALLEL=7\n",
            ),
            write(
                &etc,
                DROPIN_NAME,
                "[Service]\nMemoryMax=1G\nEnvironment=\"OLLAMA_NUM_PARALLEL=2\"\n",
            ),
            write(
                &etc,
                "90-operator.conf",
                "[Unit]\nTasksMax=9\n[Service]\nMemoryMax=2G\nCPUQuota=\n",
            ),
        ];
        let s = scan(&paths);
        let found: Vec<(&str, Option<&str>, &str)> = s
            .overrides
            .iter()
            .map(|(k, o)| {
                let file = Path::new(&o.path).file_name().unwrap().to_str().unwrap();
                (k.as_str(), o.value.as_deref(), file)
            })
            .collect();
        assert_eq!(
            found,
            [
                ("CPUQuota", None, "90-operator.conf"),
                ("CPUWeight", Some("50"), "60-hostwarden-z.conf"),
                ("MemoryMax", Some("2G"), "90-operator.conf"),
            ],
            "{s:?}"
        );
        assert!(s.problems.is_empty(), "{:?}", s.problems);
    }

    #[test]
    fn reads_are_bounded_and_special_files_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let big = dir.path().join("90-big.conf");
        let mut body = String::from("[Service]\nEnvironment=OLLAMA_NUM_PARALLEL=5\n");
        body.push_str(&"#".repeat(2 * MAX_DROPIN_BYTES as usize));
        body.push_str("\nEnvironment=OLLAMA_KEEP_ALIVE=9h\n");
        std::fs::write(&big, body).unwrap();
        let null = dir.path().join("91-masked.conf");
        std::os::unix::fs::symlink("/dev/zero", &null).unwrap();
        let mut paths = vec![big.display().to_string(), null.display().to_string()];
        let s = scan(&paths);
        assert_eq!(
            s.overrides.keys().collect::<Vec<_>>(),
            ["OLLAMA_NUM_PARALLEL"]
        );
        assert!(s.problems[0].contains("only its first"), "{:?}", s.problems);
        paths.extend((0..MAX_DROPINS).map(|i| format!("/nonexistent/{i}.conf")));
        assert!(scan(&paths).problems[0].contains("only the first 64"));
    }
}
