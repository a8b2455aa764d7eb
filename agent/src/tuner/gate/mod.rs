//! When a wanted change may restart Ollama: settle, cooldown, daily cap, restart window, and
//! the no-retry rule after a rollback. Pure: wall-clock milliseconds are passed in (wall time,
//! not `Instant`, because cooldown and the daily cap must survive an agent restart: they are
//! rebuilt from the audit journal's timestamps).

pub(crate) mod idle;

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::sys::time::millis;
use crate::tuner::apply::dropin::Env;
use crate::tuner::config::{RestartWhen, TunerConfig};

/// How long a rolled-back change is not retried when neither it nor the host changed.
pub const ROLLBACK_BACKOFF: Duration = Duration::from_secs(24 * 3600);
const DAY_MS: u64 = 24 * 3600 * 1000;

/// A restart window in local time, `HH:MM-HH:MM`; it may wrap midnight (`22:00-02:00`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RestartWindow {
    start: u16,
    end: u16,
}

impl RestartWindow {
    pub fn parse(s: &str) -> Result<RestartWindow, String> {
        let minute = |t: &str| -> Option<u16> {
            let (h, m) = t.trim().split_once(':')?;
            let (h, m): (u16, u16) = (h.parse().ok()?, m.parse().ok()?);
            (h < 24 && m < 60).then_some(h * 60 + m)
        };
        let bad = || format!("{s:?} is not a window \"HH:MM-HH:MM\"");
        let (a, b) = s.split_once('-').ok_or_else(bad)?;
        let (start, end) = (minute(a).ok_or_else(bad)?, minute(b).ok_or_else(bad)?);
        if start == end {
            return Err(format!("{s:?} is an empty window"));
        }
        Ok(RestartWindow { start, end })
    }

    /// Whether `minute` (minutes after local midnight) falls inside; the end is exclusive.
    pub fn contains(self, minute: u16) -> bool {
        if self.start < self.end {
            (self.start..self.end).contains(&minute)
        } else {
            minute >= self.start || minute < self.end
        }
    }
}

/// The host facts whose change makes a rolled-back change worth another try.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct HostFingerprint {
    pub gpu_count: u32,
    pub gpu_memory_bytes: i64,
    pub ram_bytes: i64,
}

/// The gate's verdict on one tick.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The unit already has what the policy wants.
    NoChange,
    /// Wanted, but not yet: the reason says which rule holds it back.
    Wait(String),
    /// Apply now; the reason says why the moment is right.
    Go(String),
}

#[derive(Debug, Clone, PartialEq)]
struct RolledBack {
    env: Env,
    host: HostFingerprint,
    at_ms: u64,
}

/// The gate's memory between ticks.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Gate {
    wanted: Option<(Env, u64)>,
    restarts_ms: Vec<u64>,
    rolled_back: Option<RolledBack>,
}

/// One tick's inputs beyond the gate's memory.
#[derive(Debug, Clone)]
pub struct GateInput<'a> {
    pub now_ms: u64,
    pub desired: &'a Env,
    pub current: &'a Env,
    pub host: &'a HostFingerprint,
    /// Minutes after local midnight, for `restart_when = "window"`.
    pub local_minute: u16,
    /// Idleness and its reason, for `restart_when = "idle"`.
    pub idle: (bool, String),
}

fn secs(ms: u64) -> String {
    humantime::format_duration(Duration::from_secs(ms / 1000)).to_string()
}

impl Gate {
    pub fn record_restart(&mut self, at_ms: u64) {
        self.restarts_ms.push(at_ms);
    }

    pub fn record_rollback(&mut self, env: Env, host: HostFingerprint, at_ms: u64) {
        self.rolled_back = Some(RolledBack { env, host, at_ms });
    }

    /// Restarts counted against the daily cap at `now_ms` (the last 24 hours).
    pub fn restarts_last_day(&self, now_ms: u64) -> usize {
        self.restarts_ms
            .iter()
            .filter(|&&t| now_ms.saturating_sub(t) < DAY_MS)
            .count()
    }

    pub fn evaluate(
        &mut self,
        cfg: &TunerConfig,
        window: Option<RestartWindow>,
        i: &GateInput,
    ) -> Verdict {
        let now = i.now_ms;
        self.restarts_ms.retain(|&t| now.saturating_sub(t) < DAY_MS);
        if i.desired == i.current {
            self.wanted = None;
            return Verdict::NoChange;
        }
        let since = match &self.wanted {
            Some((env, since)) if env == i.desired => *since,
            _ => {
                self.wanted = Some((i.desired.clone(), now));
                now
            }
        };
        let wanted_for = now.saturating_sub(since);
        if wanted_for < millis(cfg.settle) {
            return Verdict::Wait(format!(
                "settling: wanted for {} of the {} settle period",
                secs(wanted_for),
                humantime::format_duration(cfg.settle)
            ));
        }
        if let Some(rb) = &self.rolled_back
            && rb.env == *i.desired
            && rb.host == *i.host
            && now.saturating_sub(rb.at_ms) < millis(ROLLBACK_BACKOFF)
        {
            return Verdict::Wait(format!(
                "this change was rolled back {} ago and neither it nor the host changed since; \
                 not retried before {} have passed",
                secs(now.saturating_sub(rb.at_ms)),
                humantime::format_duration(ROLLBACK_BACKOFF)
            ));
        }
        if let Some(&last) = self.restarts_ms.iter().max() {
            let since_last = now.saturating_sub(last);
            if since_last < millis(cfg.cooldown) {
                return Verdict::Wait(format!(
                    "cooldown: last restart {} ago, cooldown is {}",
                    secs(since_last),
                    humantime::format_duration(cfg.cooldown)
                ));
            }
        }
        let today = self.restarts_last_day(now);
        if today >= cfg.max_restarts_per_day as usize {
            return Verdict::Wait(format!(
                "daily cap: {today} restarts in the last 24h, max_restarts_per_day is {}",
                cfg.max_restarts_per_day
            ));
        }
        match cfg.restart_when {
            RestartWhen::Now => Verdict::Go("restart_when = now".to_owned()),
            RestartWhen::RestartWindow => match window {
                Some(w) if w.contains(i.local_minute) => {
                    Verdict::Go(format!("inside the restart window {}", cfg.window))
                }
                _ => Verdict::Wait(format!(
                    "outside the restart window {} (local time {:02}:{:02})",
                    cfg.window,
                    i.local_minute / 60,
                    i.local_minute % 60
                )),
            },
            RestartWhen::Idle if i.idle.0 => Verdict::Go(format!("idle: {}", i.idle.1)),
            RestartWhen::Idle => Verdict::Wait(format!("waiting for idle: {}", i.idle.1)),
        }
    }
}

/// Minutes after local midnight for a Unix time, through the C library's time zone rules.
pub fn local_minute_of_day(unix_secs: i64) -> u16 {
    let t: libc::time_t = unix_secs;
    // SAFETY: localtime_r only writes into the `tm` we own; a zeroed tm is a valid value.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    // SAFETY: both pointers are valid for the call; the result is checked for null.
    let ok = unsafe { !libc::localtime_r(&t, &mut tm).is_null() };
    if !ok {
        return 0;
    }
    u16::try_from(tm.tm_hour * 60 + tm.tm_min).unwrap_or(0)
}

#[cfg(test)]
mod tests;
