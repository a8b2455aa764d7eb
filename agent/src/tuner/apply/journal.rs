//! The tuner's audit journal: one JSON object per line in `<state_dir>/tuner-journal.jsonl`,
//! every decision and action with before, after, reasons, result and timings. Each line is
//! written with one `write` and fsynced before the action it announces, so after a crash the
//! journal says what was in flight. A bounded tail stays in memory for `hostwarden status`.

use std::collections::{BTreeMap, VecDeque};
use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::tuner::apply::dropin::Env;
use crate::tuner::apply::operator::FileStamp;
use crate::tuner::resources::apply::LimitsTimings;
use crate::tuner::resources::limits::{self, Limits};

pub const JOURNAL_NAME: &str = "tuner-journal.jsonl";
/// Past this size the journal is moved to `.1` (one old generation kept).
const ROTATE_BYTES: u64 = 4 << 20;
const TAIL: usize = 200;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ActionResult {
    /// Written, restarted and verified.
    Applied,
    /// Verification failed; the previous drop-in is back and verified.
    RolledBack,
    /// Verification failed and so did the rollback's: an operator must look.
    RollbackFailed,
    /// Wanted, but not applied (observe mode).
    Skipped,
}

impl ActionResult {
    pub fn as_str(self) -> &'static str {
        match self {
            ActionResult::Applied => "applied",
            ActionResult::RolledBack => "rolled_back",
            ActionResult::RollbackFailed => "rollback_failed",
            ActionResult::Skipped => "skipped",
        }
    }
}

/// Where an apply spent its time, in milliseconds.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Timings {
    /// Render, write, fsync and rename of the drop-in.
    pub write_ms: f64,
    /// `Manager.Reload`.
    pub reload_ms: f64,
    /// From `RestartUnit` to its `JobRemoved`: systemd's own time.
    pub job_ms: f64,
    /// From the job's end until the unit was verified (includes the service's start-up).
    pub verify_ms: f64,
    /// The last, successful verification round (D-Bus reads and `HEAD /`).
    pub verify_check_ms: f64,
    pub total_ms: f64,
    /// The agent's own time: total minus systemd's (reload and job) and minus waiting for the
    /// service to start.
    pub agent_ms: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// The policy's wish and what the gate made of it (journaled when either changes).
    Decision {
        desired: Env,
        current: Env,
        reasons: BTreeMap<String, Vec<String>>,
        verdict: String,
    },
    /// A drop-in from an earlier run, taken as the current state at start.
    Adopted { env: Env },
    /// Announced before the drop-in is touched.
    ApplyStarted {
        id: u64,
        before: Env,
        after: Env,
        /// The drop-in's text before this apply (`null`: there was none); restored on rollback.
        previous_dropin: Option<String>,
        why_now: String,
    },
    ApplyFinished {
        id: u64,
        result: ActionResult,
        detail: String,
        restarts: u32,
        timings: Timings,
    },
    /// The ZFS ARC coordinator set, would set or restored `zfs_arc_max` (tuner/arc.rs).
    ZfsArc(crate::tuner::arc::ArcRecord),
    /// A drop-in sorting after ours sets `key`: the tuner leaves the key alone while it does.
    /// Journaled once per version of the file (its stamp).
    OperatorOverride {
        key: String,
        path: String,
        /// The file's value; `null` when it unsets the key or clears `Environment=`.
        value: Option<String>,
        file: FileStamp,
    },
    /// No later drop-in sets `key` any more: the tuner manages it again.
    OperatorOverrideGone { key: String, path: String },
    /// Announced before `SetUnitProperties` changes the unit's resource limits.
    LimitsStarted {
        id: u64,
        before: Limits,
        after: Limits,
        why_now: String,
        /// Our resources drop-in before this change (`null`: none); restored on rollback and by
        /// the reconcile of a change the agent died in.
        #[serde(default)]
        previous_dropin: Option<String>,
    },
    LimitsFinished {
        id: u64,
        result: ActionResult,
        detail: String,
        timings: LimitsTimings,
    },
    /// `[tuner.resources]`: the limits wanted, what systemd holds, each key's reasons and the
    /// gate's verdict (journaled when the wish or the kind of verdict changes).
    LimitsDecision {
        desired: Limits,
        current: Limits,
        reasons: BTreeMap<String, Vec<String>>,
        verdict: String,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    pub at_ms: u64,
    pub unit: String,
    #[serde(flatten)]
    pub event: Event,
}

/// Most of the journal read back at start: its last 4 MiB (about 13,000 entries of ~300
/// bytes). The agent needs only the newest ids, the recent restarts and rollbacks and an
/// unfinished apply, all at the end; the file itself grows as an audit trail.
const MAX_READ: u64 = 4 * 1024 * 1024;

/// The last [`MAX_READ`] bytes of the journal, from the first whole line. Opened without
/// blocking and refused unless a regular file: a symlink to /dev/zero was an endless read.
fn read_tail(path: &Path) -> std::io::Result<String> {
    use std::io::{Read, Seek, SeekFrom};
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)?;
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(std::io::Error::other("not a regular file; refused"));
    }
    let skip = meta.len().saturating_sub(MAX_READ);
    file.seek(SeekFrom::Start(skip))?;
    let mut bytes = Vec::new();
    file.take(MAX_READ).read_to_end(&mut bytes)?;
    if skip > 0 {
        // The cut fell inside a line: start after it.
        let start = bytes
            .iter()
            .position(|b| *b == b'\n')
            .map_or(bytes.len(), |i| i + 1);
        bytes.drain(..start);
    }
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

#[derive(Debug, thiserror::Error)]
#[error("failed to {action} the tuner journal {}: {source}", path.display())]
pub struct JournalError {
    action: &'static str,
    path: PathBuf,
    #[source]
    source: std::io::Error,
}

#[derive(Debug)]
pub struct Journal {
    path: PathBuf,
    tail: VecDeque<Entry>,
}

impl Journal {
    /// Opens and returns every entry read; the state dir and file are created on the first
    /// append. A torn last line (the agent died mid-write) is skipped.
    pub fn open(state_dir: &Path) -> Result<(Journal, Vec<Entry>), JournalError> {
        let path = state_dir.join(JOURNAL_NAME);
        let err = |action, source| JournalError {
            action,
            path: path.clone(),
            source,
        };
        let text = match read_tail(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(e) => return Err(err("read", e)),
        };
        let entries: Vec<Entry> = text
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect();
        let tail = entries.iter().rev().take(TAIL).rev().cloned().collect();
        Ok((Journal { path, tail }, entries))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends one entry and fsyncs it.
    pub fn append(&mut self, entry: Entry) -> Result<(), JournalError> {
        let err = |action, source| JournalError {
            action,
            path: self.path.clone(),
            source,
        };
        if let Some(dir) = self.path.parent() {
            crate::sys::fs::create_dir_all_with(dir, crate::sys::fs::PRIVATE.dir)
                .map_err(|e| err("create the directory of", e.source))?;
        }
        // Rotate only between actions, so an apply's start and finish share one file.
        if !matches!(entry.event, Event::ApplyFinished { .. })
            && fs::metadata(&self.path).is_ok_and(|m| m.len() > ROTATE_BYTES)
        {
            fs::rename(&self.path, self.path.with_extension("jsonl.1"))
                .map_err(|e| err("rotate", e))?;
        }
        let mut line = serde_json::to_string(&entry)
            .map_err(|e| err("encode an entry for", std::io::Error::other(e)))?;
        line.push('\n');
        // 0600 when created: the journal is the agent's own record.
        let mut f = OpenOptions::new()
            .create(true)
            .append(true)
            .mode(crate::sys::fs::PRIVATE.file)
            .open(&self.path)
            .map_err(|e| err("open", e))?;
        f.write_all(line.as_bytes())
            .map_err(|e| err("append to", e))?;
        f.sync_data().map_err(|e| err("fsync", e))?;
        if self.tail.len() == TAIL {
            self.tail.pop_front();
        }
        self.tail.push_back(entry);
        Ok(())
    }

    /// The newest `n` entries, oldest first (for `hostwarden status`).
    pub fn last(&self, n: usize) -> Vec<Entry> {
        let skip = self.tail.len().saturating_sub(n);
        self.tail.iter().skip(skip).cloned().collect()
    }
}

/// Appends `event` for `unit` to the shared journal. A failed write is logged and the action
/// goes on: the change itself matters more than its record. (The environment apply and the
/// limits change both journal through here.)
pub fn record(journal: &std::sync::Mutex<Journal>, unit: &str, event: Event) {
    let entry = Entry {
        at_ms: crate::sys::time::wall_ms(),
        unit: unit.to_owned(),
        event,
    };
    match journal.lock() {
        Ok(mut j) => {
            if let Err(e) = j.append(entry) {
                tracing::error!(error = %e, "Tuner journal write failed; the action goes on.");
            }
        }
        Err(_) => tracing::error!("Tuner journal lock poisoned; entry lost."),
    }
}

/// The limits change that was started but never finished (the agent died in it), if any.
pub fn unfinished_limits(entries: &[Entry]) -> Option<&Entry> {
    last_unpaired(
        entries,
        |e| match e {
            Event::LimitsStarted { id, .. } => Some(*id),
            _ => None,
        },
        |e| match e {
            Event::LimitsFinished { id, .. } => Some(*id),
            _ => None,
        },
    )
}

/// The apply that was started but never finished (the agent died mid-apply), if any.
pub fn unfinished(entries: &[Entry]) -> Option<&Entry> {
    last_unpaired(
        entries,
        |e| match e {
            Event::ApplyStarted { id, .. } => Some(*id),
            _ => None,
        },
        |e| match e {
            Event::ApplyFinished { id, .. } => Some(*id),
            _ => None,
        },
    )
}

/// The newest entry `started` gives an id for, unless an entry `finished` gives the same id.
fn last_unpaired(
    entries: &[Entry],
    started: impl Fn(&Event) -> Option<u64>,
    finished: impl Fn(&Event) -> Option<u64>,
) -> Option<&Entry> {
    let (last_start, id) = entries
        .iter()
        .rev()
        .find_map(|e| Some((e, started(&e.event)?)))?;
    let done = entries.iter().any(|e| finished(&e.event) == Some(id));
    (!done).then_some(last_start)
}

fn env_text(env: &Env) -> String {
    env.iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(" ")
}

impl From<&Entry> for crate::status::ActuationReport {
    /// One line of `hostwarden status` per journal entry.
    fn from(e: &Entry) -> Self {
        let (result, summary) = match &e.event {
            Event::Decision {
                desired, verdict, ..
            } => (
                "decided".to_owned(),
                format!("wants {}: {verdict}", env_text(desired)),
            ),
            Event::Adopted { env } => ("adopted".to_owned(), format!("found {}", env_text(env))),
            Event::ApplyStarted {
                before,
                after,
                why_now,
                ..
            } => (
                "started".to_owned(),
                format!("{} -> {} ({why_now})", env_text(before), env_text(after)),
            ),
            Event::ApplyFinished {
                result,
                detail,
                timings,
                ..
            } => (
                result.as_str().to_owned(),
                format!(
                    "{detail} (agent {:.0} ms, total {:.0} ms)",
                    timings.agent_ms, timings.total_ms
                ),
            ),
            Event::ZfsArc(r) => (r.action.clone(), r.summary()),
            Event::OperatorOverride {
                key, path, value, ..
            } => (
                "operator_override".to_owned(),
                format!(
                    "{key} left alone: {path} sets it after ours ({})",
                    value
                        .as_deref()
                        .map_or("unset".to_owned(), |v| format!("{key}={v}"))
                ),
            ),
            Event::LimitsStarted {
                before,
                after,
                why_now,
                ..
            } => (
                "started".to_owned(),
                format!(
                    "limits {} -> {} ({why_now})",
                    limits::show(before),
                    limits::show(after)
                ),
            ),
            Event::LimitsFinished {
                result,
                detail,
                timings,
                ..
            } => (
                result.as_str().to_owned(),
                format!(
                    "{detail} (verified {:.0} ms after the decision, systemd {:.1} ms)",
                    timings.verified_ms, timings.set_ms
                ),
            ),
            Event::LimitsDecision {
                desired, verdict, ..
            } => (
                "decided".to_owned(),
                format!("limits want {}: {verdict}", limits::show(desired)),
            ),
            Event::OperatorOverrideGone { key, path } => (
                "operator_override_gone".to_owned(),
                format!("{key} managed again: {path} no longer sets it"),
            ),
        };
        crate::status::ActuationReport {
            at_ms: e.at_ms,
            unit: e.unit.clone(),
            result,
            summary,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn started(id: u64) -> Entry {
        Entry {
            at_ms: id,
            unit: "ollama.service".to_owned(),
            event: Event::ApplyStarted {
                id,
                before: Env::new(),
                after: [("OLLAMA_NUM_PARALLEL".to_owned(), "2".to_owned())].into(),
                previous_dropin: None,
                why_now: "restart_when = now".to_owned(),
            },
        }
    }

    fn finished(id: u64) -> Entry {
        Entry {
            at_ms: id,
            unit: "ollama.service".to_owned(),
            event: Event::ApplyFinished {
                id,
                result: ActionResult::Applied,
                detail: String::new(),
                restarts: 1,
                timings: Timings::default(),
            },
        }
    }

    #[test]
    fn entries_survive_a_reopen_and_a_torn_line_is_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let (mut j, old) = Journal::open(dir.path()).unwrap();
        assert!(old.is_empty());
        j.append(started(1)).unwrap();
        j.append(finished(1)).unwrap();
        j.append(started(2)).unwrap();
        let mut f = OpenOptions::new().append(true).open(j.path()).unwrap();
        f.write_all(b"{\"at_ms\":3,\"unit\":\"oll").unwrap();
        let (j2, entries) = Journal::open(dir.path()).unwrap();
        assert_eq!(entries, vec![started(1), finished(1), started(2)]);
        assert_eq!(j2.last(2), vec![finished(1), started(2)]);
        assert_eq!(unfinished(&entries), Some(&started(2)));
        assert_eq!(unfinished(&entries[..2]), None);
    }

    #[test]
    fn a_symlink_to_dev_zero_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink("/dev/zero", dir.path().join(JOURNAL_NAME)).unwrap();
        let e = Journal::open(dir.path()).unwrap_err();
        assert!(e.to_string().contains("not a regular file"), "{e}");
    }

    #[test]
    fn only_the_tail_of_a_huge_journal_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(JOURNAL_NAME);
        // 100 MiB of garbage without a newline (sparse), then two real entries.
        let f = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .unwrap();
        f.set_len(100 * 1024 * 1024).unwrap();
        drop(f);
        let mut j = Journal::open(dir.path()).unwrap().0;
        j.append(started(7)).unwrap();
        j.append(finished(7)).unwrap();
        let (_, entries) = Journal::open(dir.path()).unwrap();
        assert_eq!(entries.len(), 2);
    }

    #[test]
    fn lines_are_tagged_json() {
        let line = serde_json::to_string(&started(7)).unwrap();
        assert!(
            line.starts_with(
                r#"{"at_ms":7,"unit":"ollama.service","event":"apply_started","id":7"#
            ),
            "{line}"
        );
    }
}
