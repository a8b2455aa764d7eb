//! The tuner's systemd drop-in: rendering (pure), parsing back what we wrote, and the atomic
//! write/restore on disk. Only allowlisted OLLAMA_* keys reach the unit, and every value is
//! validated and escaped so no value can add a line, a key or a `%` specifier.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use crate::sys::fs::{FileError, PUBLIC, fsync_dir, write_atomic_with};

/// The file name of our drop-in. 60 sorts after the packaged `override.conf`-style files
/// operators usually number lower, so the tuner's values win, and before 90-* local overrides.
pub const DROPIN_NAME: &str = "60-hostwarden.conf";

/// The only keys the tuner may set (the policy's allowlist, one list for both).
pub const ALLOWED_KEYS: &[&str] = &crate::tuner::policy::bounds::KEYS;

/// Longest value accepted (Ollama's values are a few characters; this only bounds garbage).
const MAX_VALUE_LEN: usize = 256;

const HEADER: &str = "# Written by hostwarden's Ollama tuner. Do not edit: it rewrites or removes this file.\n\
# The audit journal in hostwarden's state_dir says why each value was chosen.\n";

/// The environment the tuner manages: allowlisted key -> value.
pub type Env = BTreeMap<String, String>;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DropinError {
    #[error("key {0:?} is not on the tuner's allowlist")]
    KeyNotAllowed(String),
    #[error("value of {key} is not allowed: {why}")]
    BadValue { key: String, why: String },
    #[error("drop-in line {line} is not one hostwarden writes: {text:?}")]
    Unparsable { line: usize, text: String },
}

fn validate(key: &str, value: &str) -> Result<(), DropinError> {
    if !ALLOWED_KEYS.contains(&key) {
        return Err(DropinError::KeyNotAllowed(key.to_owned()));
    }
    let bad = |why: &str| DropinError::BadValue {
        key: key.to_owned(),
        why: why.to_owned(),
    };
    if value.len() > MAX_VALUE_LEN {
        return Err(bad("longer than 256 bytes"));
    }
    // Printable ASCII only: rules out newline, NUL and every other control character, and the
    // Unicode line separators some parsers honour.
    if let Some(c) = value.chars().find(|c| !(' '..='~').contains(c)) {
        return Err(bad(&format!(
            "contains {c:?}; only printable ASCII is written"
        )));
    }
    Ok(())
}

/// Escapes a `KEY=value` assignment for a double-quoted `Environment=` word. systemd first
/// expands `%` specifiers over the whole line, then unquotes with C escapes, so `%` doubles and
/// `\` and `"` take a backslash.
fn escape(assignment: &str) -> String {
    let mut out = String::with_capacity(assignment.len() + 2);
    for c in assignment.chars() {
        match c {
            '%' => out.push_str("%%"),
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            c => out.push(c),
        }
    }
    out
}

fn unescape(word: &str) -> Option<String> {
    let mut out = String::with_capacity(word.len());
    let mut chars = word.chars();
    while let Some(c) = chars.next() {
        match c {
            '%' => match chars.next() {
                Some('%') => out.push('%'),
                _ => return None,
            },
            '\\' => match chars.next() {
                Some(e @ ('\\' | '"')) => out.push(e),
                _ => return None,
            },
            '"' => return None,
            c => out.push(c),
        }
    }
    Some(out)
}

/// Renders the drop-in for `env`. Rejects keys off the allowlist and values that are not
/// printable ASCII.
pub fn render(env: &Env) -> Result<String, DropinError> {
    let mut out = String::from(HEADER);
    out.push_str("[Service]\n");
    for (k, v) in env {
        validate(k, v)?;
        out.push_str("Environment=\"");
        out.push_str(&escape(&format!("{k}={v}")));
        out.push_str("\"\n");
    }
    Ok(out)
}

/// Parses a drop-in `render` wrote. Anything else (a hand edit) is an error, so the tuner never
/// mistakes a foreign file for its own state.
pub fn parse(text: &str) -> Result<Env, DropinError> {
    let mut env = Env::new();
    let mut in_service = false;
    for (i, line) in text.lines().enumerate() {
        let unparsable = || DropinError::Unparsable {
            line: i + 1,
            text: line.to_owned(),
        };
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if line == "[Service]" {
            in_service = true;
            continue;
        }
        let word = line
            .strip_prefix("Environment=\"")
            .and_then(|r| r.strip_suffix('"'))
            .filter(|_| in_service)
            .ok_or_else(unparsable)?;
        let assignment = unescape(word).ok_or_else(unparsable)?;
        let (k, v) = assignment.split_once('=').ok_or_else(unparsable)?;
        validate(k, v)?;
        env.insert(k.to_owned(), v.to_owned());
    }
    Ok(env)
}

/// Where the drop-in of one unit lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DropinPath {
    pub dir: PathBuf,
    pub file: PathBuf,
}

impl DropinPath {
    pub fn new(dropin_dir: &Path, unit: &str) -> Self {
        let dir = dropin_dir.join(format!("{unit}.d"));
        let file = dir.join(DROPIN_NAME);
        DropinPath { dir, file }
    }

    /// The drop-in's current text, `None` when there is none.
    pub fn read(&self) -> Result<Option<String>, FileError> {
        match fs::read_to_string(&self.file) {
            Ok(t) => Ok(Some(t)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(FileError::new("read", &self.file, source)),
        }
    }

    /// Writes `body` atomically (`sys::fs::write_atomic`): a reader (systemd's reload) sees the
    /// old or the new file, never half of one, even if the agent dies in between.
    pub fn write(&self, body: &str) -> Result<(), FileError> {
        write_atomic_with(&self.file, body.as_bytes(), PUBLIC)
    }

    /// Puts back what was there before: the old text, or no file at all.
    pub fn restore(&self, previous: Option<&str>) -> Result<(), FileError> {
        match previous {
            Some(body) => self.write(body),
            None => match fs::remove_file(&self.file) {
                Ok(()) => fsync_dir(&self.dir),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                Err(e) => Err(FileError::new("remove", &self.file, e)),
            },
        }
    }
}

#[cfg(test)]
mod tests;
