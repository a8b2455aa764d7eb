//! The collector: one-shot `zpool list`/`status` runs on their cadence, the iostat child every
//! tick, and the state that carries between them.

use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::time::Instant;

use async_trait::async_trait;
use tracing::{info, warn};

use super::command::{self, ZpoolError, run, run_checked};
use super::config::ZfsConfig;
use super::parse::{LIST_ARGS, PoolRow, ZfsVersion, parse_list, parse_version};
use super::status::PoolStatus;
use super::{iostat, kstat, metrics, status};
use crate::collectors::{CollectError, Collector, Sample};
use crate::model::CollectorId;

/// How `zpool status` is read on this host (decided once, downgraded on exit 2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StatusMode {
    Json,
    TextExact,
    Text,
}

impl StatusMode {
    fn args(self) -> &'static [&'static str] {
        match self {
            StatusMode::Json => &["status", "-j", "--json-int"],
            StatusMode::TextExact => &["status", "-p"],
            StatusMode::Text => &["status"],
        }
    }

    /// The next mode to try when this one's options are rejected (exit 2 = usage error).
    fn fallback(self) -> Option<StatusMode> {
        match self {
            StatusMode::Json => Some(StatusMode::TextExact),
            StatusMode::TextExact => Some(StatusMode::Text),
            StatusMode::Text => None,
        }
    }
}

pub struct ZfsCollector {
    config: ZfsConfig,
    /// Where the kernel's `spl/kstat/zfs/<pool>/state` files are (`[host] proc_root`).
    proc_root: PathBuf,
    /// `None` until `zpool version` answered once.
    status_mode: Option<StatusMode>,
    iostat: Option<iostat::Iostat>,
    /// The last problem logged (digits removed), so each change is logged once.
    last_problem: Option<String>,
    /// The last "zpool not found" or "module not loaded" error, with its text.
    absent: Option<(ZpoolError, String)>,
    /// The last `zpool list` and `zpool status` results, reported until `pool_interval` passed.
    pools: Option<PoolState>,
}

struct PoolState {
    at: Instant,
    pools: Vec<PoolRow>,
    statuses: Result<Vec<PoolStatus>, String>,
}

impl PoolState {
    /// Whether `zpool list` and `zpool status` must run again: `pool_interval` passed, or the
    /// iostat stream disagrees with the list. A disagreement that persists (a pool iostat does
    /// not list) re-runs them at most once per iostat interval, not every tick.
    fn stale(&self, config: &ZfsConfig, reading: Option<&iostat::Reading>) -> bool {
        let age = self.at.elapsed();
        age >= config.pool_interval
            || (age >= config.iostat_interval && reading.is_some_and(|r| self.disagrees_with(r)))
    }

    /// Whether the iostat stream's last report names another set of pools than `zpool list`
    /// did (a pool imported or exported since): then the list is out of date.
    fn disagrees_with(&self, reading: &iostat::Reading) -> bool {
        if reading.rows.is_empty() {
            return false;
        }
        reading.rows.len() != self.pools.len()
            || reading
                .rows
                .iter()
                .any(|r| !self.pools.iter().any(|p| p.name == r.name))
    }
}

impl ZfsCollector {
    pub fn new(config: &ZfsConfig, proc_root: &Path) -> Self {
        ZfsCollector {
            config: config.clone(),
            proc_root: proc_root.to_owned(),
            status_mode: None,
            iostat: None,
            last_problem: None,
            absent: None,
            pools: None,
        }
    }

    /// Logs a problem when it differs from the last one, and the recovery once. Numbers are
    /// ignored in the comparison, so a retry countdown or attempt count is not a new problem.
    fn note(&mut self, problem: Option<&str>) {
        // Compared before any key is built: on a host without ZFS the same problem comes
        // every tick, and building the key each time cost an allocation per tick.
        let same = match (self.last_problem.as_deref(), problem) {
            (None, None) => true,
            (Some(last), Some(p)) => last.chars().eq(digitless(p)),
            _ => false,
        };
        if same {
            return;
        }
        let key = problem.map(|p| digitless(p).collect::<String>());
        match problem {
            Some(p) => {
                warn!(collector = "zfs", reason = %p, "ZFS collector degraded or unavailable.")
            }
            None => info!(collector = "zfs", "ZFS collector reads all it should."),
        }
        self.last_problem = key;
    }

    /// The text of `e`, formatted again only when the error changes: on a host without ZFS
    /// the same one comes every tick.
    fn absent_text(&mut self, e: ZpoolError) -> String {
        match &self.absent {
            Some((last, text)) if *last == e => text.clone(),
            _ => {
                let text = e.to_string();
                self.absent = Some((e, text.clone()));
                text
            }
        }
    }

    async fn detect_mode(&mut self) -> StatusMode {
        if let Some(mode) = self.status_mode {
            return mode;
        }
        let program = &self.config.zpool_command;
        let timeout = self.config.command_timeout;
        match run(program, &["version"], timeout).await {
            Ok(out) => {
                let version = parse_version(&out.stdout);
                let mode = match version {
                    Some(v) if v.has_status_json() => StatusMode::Json,
                    _ => StatusMode::TextExact,
                };
                info!(version = %version.map_or_else(|| "unknown".to_owned(), |v: ZfsVersion| v.to_string()), mode = ?mode, "OpenZFS version detected.");
                self.status_mode = Some(mode);
                mode
            }
            // Not remembered: a timeout or a missing program is retried next tick.
            Err(_) => StatusMode::TextExact,
        }
    }

    /// `zpool status` from `mode` on, falling back while zpool rejects the options (exit 2);
    /// the mode that worked is remembered.
    async fn read_status_from(&mut self, mut mode: StatusMode) -> Result<Vec<PoolStatus>, String> {
        loop {
            let program = &self.config.zpool_command;
            match status_once(mode, program, self.config.command_timeout).await {
                StatusTry::Done(r) => {
                    self.status_mode = Some(mode);
                    return r;
                }
                StatusTry::Rejected(next) => {
                    info!(rejected = %command::display(program, mode.args()), "zpool rejected the options; using an older form.");
                    mode = next;
                }
            }
        }
    }

    async fn collect_inner(&mut self) -> Result<Sample, CollectError> {
        // One copy of the stream's state per tick, for the staleness check and the points.
        let mut stream_status = self.iostat.as_ref().map(iostat::Iostat::status);
        let reading = stream_status.as_ref().map(|s| &s.reading);
        // A failed run leaves nothing cached (taken here): the next tick tries again.
        let cached = self
            .pools
            .take()
            .filter(|state| !state.stale(&self.config, reading));
        let state = match cached {
            Some(state) => self.pools.insert(state),
            None => {
                let state = self.read_pools().await?;
                // The first run started the iostat child and waited for its first report.
                stream_status = self.iostat.as_ref().map(iostat::Iostat::status);
                self.pools.insert(state)
            }
        };
        // The kernel's word is fresher than the last `zpool list` (kept until the next one).
        for pool in &mut state.pools {
            if let Some(health) = kstat::pool_state(&self.proc_root, &pool.name) {
                pool.health = health;
            }
        }
        let pools = &state.pools;
        let mut points = Vec::with_capacity(64 + pools.len() * 64);
        metrics::list_points(pools, &mut points);
        let mut problems = Vec::new();
        match &state.statuses {
            Ok(s) => metrics::status_points(s, unix_now(), &mut points),
            Err(e) => problems.push(format!("no error counts or scan progress: {e}")),
        }
        if let Some(s) = stream_status {
            metrics::iostat_points(&s.reading, pools, &mut points);
            problems.extend(s.problem());
        }
        Ok(Sample {
            points,
            degraded: (!problems.is_empty()).then(|| problems.join("; ")),
        })
    }

    /// Runs `zpool list` and `zpool status` (starting the iostat child on the first run).
    async fn read_pools(&mut self) -> Result<PoolState, CollectError> {
        let timeout = self.config.command_timeout;
        let listed = run_checked(&self.config.zpool_command, &LIST_ARGS, timeout).await;
        let pools = match listed {
            Ok(text) => parse_list(&text).map_err(|e| CollectError::new(e.to_string()))?,
            Err(e @ (ZpoolError::NotFound { .. } | ZpoolError::NoModule { .. })) => {
                // Nothing to stream from either: stop the child until zpool works again.
                self.iostat = None;
                return Err(CollectError::new(self.absent_text(e)));
            }
            Err(e) => return Err(CollectError::new(e.to_string())),
        };
        let mode = self.detect_mode().await;
        // Copied only once `zpool list` worked: a host without ZFS fails above every tick.
        let program = self.config.zpool_command.clone();
        let interval = self.config.iostat_interval;
        let stream = self
            .iostat
            .get_or_insert_with(|| iostat::Iostat::start(program.clone(), interval));
        // The first report (since import) comes at once; wait for it beside `zpool status`.
        let (first, ()) = tokio::join!(
            status_once(mode, &program, timeout),
            stream.wait_first(timeout)
        );
        let statuses = match first {
            StatusTry::Done(r) => r,
            StatusTry::Rejected(next) => self.read_status_from(next).await,
        };
        // A pool exported between the two calls is reported by neither.
        let statuses = statuses.map(|mut s| {
            s.retain(|st| pools.iter().any(|p| p.name == st.name));
            s
        });
        Ok(PoolState {
            at: Instant::now(),
            pools,
            statuses,
        })
    }
}

/// `s` without its digits: the key problems are compared by.
fn digitless(s: &str) -> impl Iterator<Item = char> + '_ {
    s.chars().filter(|c| !c.is_ascii_digit())
}

/// Wall-clock Unix seconds, for the age of the last scan.
fn unix_now() -> i64 {
    i64::try_from(crate::sys::time::wall_ms() / 1000).unwrap_or(i64::MAX)
}

/// One `zpool status` attempt.
enum StatusTry {
    Done(Result<Vec<PoolStatus>, String>),
    /// Exit 2 (usage error: `-j` before OpenZFS 2.3, `-p` before 0.8): try this mode next.
    Rejected(StatusMode),
}

async fn status_once(mode: StatusMode, program: &Path, timeout: Duration) -> StatusTry {
    let args = mode.args();
    let out = match run(program, args, timeout).await {
        Ok(out) => out,
        Err(e) => return StatusTry::Done(Err(e.to_string())),
    };
    if out.code == 2
        && let Some(next) = mode.fallback()
    {
        return StatusTry::Rejected(next);
    }
    let parsed = command::check(program, args, out)
        .map_err(|e| e.to_string())
        .and_then(|text| {
            if mode == StatusMode::Json {
                status::parse_status_json(&text)
            } else {
                status::parse_status_text(&text)
            }
            .map_err(|e| e.to_string())
        });
    StatusTry::Done(parsed)
}

#[async_trait]
impl Collector for ZfsCollector {
    fn id(&self) -> CollectorId {
        CollectorId::Zfs
    }

    async fn collect(&mut self) -> Result<Sample, CollectError> {
        let result = self.collect_inner().await;
        let problem = match &result {
            Ok(s) => s.degraded.as_deref(),
            Err(e) => Some(e.0.as_str()),
        };
        self.note(problem);
        result
    }

    /// Waits for the iostat child's first interval report (the since-import one carries no
    /// counts), or for its failure, which the next collection reports.
    async fn settle(&mut self, grace: Duration) {
        let limit = self.config.iostat_interval.saturating_add(grace);
        let Some(stream) = self.iostat.as_mut() else {
            return;
        };
        let status = stream
            .wait_until(limit, |s| {
                (s.reports > 0 && !s.reading.since_import)
                    || matches!(s.state, iostat::ChildState::Restarting { .. })
            })
            .await;
        // A pool imported or exported since the list: the next collection lists again, even
        // though less than an interval has passed (there is no next tick to wait for).
        if self
            .pools
            .as_ref()
            .is_some_and(|p| p.disagrees_with(&status.reading))
        {
            self.pools = None;
        }
    }
}

#[cfg(test)]
mod tests;
