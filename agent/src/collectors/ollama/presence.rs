//! Whether Ollama lives on this host at all. A host that never had Ollama (a fresh machine, a
//! ZFS file server, a CI box) must not look like a host whose Ollama is down: the default
//! `ollama_down` rule reads `ollama.up < 1`, so on such a host the collector exports no
//! `ollama.up` point and reports itself unavailable with the reason instead.
//!
//! Ollama counts as present, and a failed probe as down, once any of these holds:
//! - its systemd unit exists (`LoadState` other than not-found), whether enabled or not;
//! - it answered the probe at least once since the agent started;
//! - an `ollama serve` process runs (started by hand or by a container, before it listens).

use super::published::UnitWatch;

/// What this tick tells about Ollama's existence.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Evidence<'a> {
    /// It answered this tick or any earlier one since the agent started.
    pub answered_ever: bool,
    pub unit: &'a UnitWatch,
    pub serve_process: bool,
}

/// `None` when Ollama is present; otherwise why it is judged absent, in words an operator can
/// check (`unit` and `url` as configured).
pub fn absent_reason(e: &Evidence<'_>, unit: &str, url: &str) -> Option<String> {
    if e.answered_ever || e.serve_process {
        return None;
    }
    let why_no_unit = match e.unit {
        UnitWatch::Status(s) if s.exists() => return None,
        UnitWatch::Status(_) => format!("no {unit} unit"),
        UnitWatch::NotWatched { .. } => format!("no systemd to hold {unit}"),
        // The bus could not tell (no such unit, or the bus is down): the unit is not known to
        // exist, so without an answer or a process there is nothing that says Ollama lives here.
        UnitWatch::Error { reason } => format!("{unit} not found ({reason})"),
    };
    let addr = url
        .strip_prefix("http://")
        .unwrap_or(url)
        .trim_end_matches('/');
    Some(format!(
        "absent: {why_no_unit}, no `ollama serve` process, and nothing has answered at {addr} \
         since start"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::systemd::UnitStatus;

    const URL: &str = "http://127.0.0.1:11434";

    fn status(load_state: &str, active_state: &str) -> UnitWatch {
        UnitWatch::Status(UnitStatus {
            load_state: load_state.to_owned(),
            active_state: active_state.to_owned(),
            ..UnitStatus::default()
        })
    }

    fn judge(answered_ever: bool, unit: &UnitWatch, serve_process: bool) -> Option<String> {
        let e = Evidence {
            answered_ever,
            unit,
            serve_process,
        };
        absent_reason(&e, "ollama.service", URL)
    }

    #[test]
    fn never_answered_and_no_unit_is_absent() {
        let not_found = status("not-found", "inactive");
        assert_eq!(
            judge(false, &not_found, false).as_deref(),
            Some(
                "absent: no ollama.service unit, no `ollama serve` process, and nothing has \
                 answered at 127.0.0.1:11434 since start"
            )
        );
        let no_systemd = UnitWatch::NotWatched {
            reason: "no systemd".to_owned(),
        };
        let why = judge(false, &no_systemd, false).unwrap();
        assert!(
            why.starts_with("absent: no systemd to hold ollama.service"),
            "{why}"
        );
        let bus = UnitWatch::Error {
            reason: "NoSuchUnit".to_owned(),
        };
        let why = judge(false, &bus, false).unwrap();
        assert!(
            why.contains("ollama.service not found (NoSuchUnit)"),
            "{why}"
        );
    }

    #[test]
    fn an_existing_unit_makes_it_present_enabled_or_not() {
        for (load, active) in [
            ("loaded", "inactive"),
            ("loaded", "failed"),
            ("loaded", "active"),
            ("masked", "inactive"),
            ("bad-setting", "inactive"),
        ] {
            assert_eq!(judge(false, &status(load, active), false), None, "{load}");
        }
    }

    #[test]
    fn an_answer_once_or_a_serve_process_makes_it_present() {
        let not_found = status("not-found", "inactive");
        let no_systemd = UnitWatch::NotWatched {
            reason: "no systemd".to_owned(),
        };
        for unit in [&not_found, &no_systemd] {
            assert_eq!(judge(true, unit, false), None);
            assert_eq!(judge(false, unit, true), None);
        }
    }
}
