//! Ollama: its HTTP API (liveness, version, loaded models and their architecture) through
//! `sys::ollama`, its systemd unit through `sys::systemd`, and its main process through
//! `sys::proc`.
//!
//! When nothing answers on a host where Ollama lives (its unit exists, it answered once since
//! the agent started, or an `ollama serve` process runs), the collector still reports
//! `ollama.up = 0` (health degraded, with the reason) rather than failing: the `ollama_down` rule
//! needs the 0 to fire. Where none of that holds, Ollama is absent (see `presence`): the
//! collector is unavailable with the reason and exports no `ollama.up`, so no rule sees "down".

mod config;
pub(crate) mod presence;
pub(crate) mod process;
pub(crate) mod published;
pub(crate) mod unit_cgroup;
mod unit_status;

pub use config::OllamaConfig;

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use futures_util::stream::{self, StreamExt};

/// Concurrent `/api/show` requests. One per loaded model opened 3,013 sockets for 3,000 models
/// (issue 14); 4 keeps the first tick after a restart short for the usual handful of models
/// while bounding sockets and Ollama's load whatever the list holds.
const MAX_SHOWS_IN_FLIGHT: usize = 4;
use tokio::time::Instant;

use super::{CollectError, Collector, Sample};

use crate::model::{AttrKey, Attrs, CollectorId, MetricName, MetricPoint};
use crate::sys::ollama::{self as api, Api, Architecture, PsModel};
use crate::sys::proc::ProcReader;
use crate::sys::systemd::UnitManager;
pub use published::{ModelView, OllamaView, OllamaViewCell, UnitWatch};

/// What the runtime hands the collector: where to publish its view, and the systemd client
/// when there is one.
#[derive(Clone, Default)]
pub struct OllamaHooks {
    pub view: OllamaViewCell,
    pub unit_source: Option<Arc<dyn UnitManager>>,
}

pub const NO_SYSTEMD: &str = "unit not watched (no systemd): advice-only";

pub struct OllamaCollector {
    config: OllamaConfig,
    api: Result<Api, api::ApiError>,
    proc: ProcReader,
    hooks: OllamaHooks,
    /// `/api/show` results by model digest: a model's architecture never changes.
    arch_cache: HashMap<String, Architecture>,
    /// Last PID found by scanning proc_root, checked again before reuse.
    scanned_pid: Option<u32>,
    /// When a scan last found nothing: reading every process's cmdline costs more than the rest
    /// of the tick on a busy host, so a miss is retried only after `RESCAN_AFTER_MISS`.
    missed_at: Option<Instant>,
    /// The last `/api/version` answer, with the main PID it came from and when: the version only
    /// changes when the server restarts, and asking costs an HTTP round trip every tick.
    version_cache: Option<(Option<u32>, Instant, String)>,
    /// Ollama answered a probe since the agent started: from then on a silence is "down".
    answered_ever: bool,
    /// The last absence reason with the unit state it was formatted for.
    absent_cache: Option<(UnitWatch, String)>,
    /// The cgroup mount the unit's `ollama.unit.*` figures are read below.
    cgroup_root: std::path::PathBuf,
    /// The unit's cgroup directory, derived once per main PID.
    cgroup: crate::sys::cgroup::CgroupCache,
    /// The unit's status, read again when systemd signals a change.
    unit_status: unit_status::UnitStatusCache,
}

/// How long a `/api/version` answer stands while the server's PID cannot be told (no systemd
/// and no `ollama serve` process found, e.g. in a container).
const VERSION_TTL: std::time::Duration = std::time::Duration::from_secs(60);

/// How long a proc_root scan that found no `ollama serve` stands before the next one.
const RESCAN_AFTER_MISS: std::time::Duration = std::time::Duration::from_secs(30);

impl OllamaCollector {
    /// `probe_timeout` bounds each API call (`OllamaConfig::probe_timeout_within`).
    pub fn new(
        config: &OllamaConfig,
        probe_timeout: std::time::Duration,
        proc: ProcReader,
        hooks: OllamaHooks,
    ) -> Self {
        OllamaCollector {
            api: Api::new(&config.url, probe_timeout),
            config: config.clone(),
            proc,
            hooks,
            arch_cache: HashMap::new(),
            scanned_pid: None,
            missed_at: None,
            version_cache: None,
            answered_ever: false,
            absent_cache: None,
            cgroup_root: std::path::PathBuf::from("/sys/fs/cgroup"),
            cgroup: crate::sys::cgroup::CgroupCache::default(),
            unit_status: unit_status::UnitStatusCache::default(),
        }
    }

    /// Reads the unit's cgroup below `root` (`<[host] sys_root>/fs/cgroup`).
    pub fn with_cgroup_root(mut self, root: std::path::PathBuf) -> Self {
        self.cgroup_root = root;
        self
    }

    async fn unit(&mut self) -> UnitWatch {
        match &self.hooks.unit_source {
            None => UnitWatch::NotWatched {
                reason: NO_SYSTEMD.to_owned(),
            },
            Some(src) => match self
                .unit_status
                .status(src.as_ref(), &self.config.unit)
                .await
            {
                Ok(s) => UnitWatch::Status(s),
                Err(e) => UnitWatch::Error {
                    reason: format!("unit {}: {e}; advice-only", self.config.unit),
                },
            },
        }
    }

    /// MainPID when systemd gives one, else the `ollama serve` process in proc_root.
    fn process(&mut self, unit: &UnitWatch) -> Option<Result<process::MainProcess, String>> {
        let pid = match unit {
            UnitWatch::Status(s) if s.main_pid > 0 => Some(s.main_pid),
            UnitWatch::Status(_) => None,
            _ => {
                let still = self.scanned_pid.filter(|pid| {
                    self.proc
                        .cmdline(*pid)
                        .is_some_and(|c| process::is_ollama_serve(&c))
                });
                let scan_due = self
                    .missed_at
                    .is_none_or(|at| at.elapsed() >= RESCAN_AFTER_MISS);
                self.scanned_pid = still.or_else(|| {
                    if !scan_due {
                        return None;
                    }
                    let found = process::find_ollama_serve(&self.proc);
                    self.missed_at = found.is_none().then(Instant::now);
                    found
                });
                self.scanned_pid
            }
        }?;
        Some(process::read_usage(&self.proc, pid))
    }

    /// The cached `/api/version` answer if it still holds: same known PID, or, with no PID to
    /// tell a restart by, younger than `VERSION_TTL`.
    fn cached_version(&self, pid: Option<u32>) -> Option<String> {
        let (cached_pid, at, version) = self.version_cache.as_ref()?;
        let holds = match (pid, cached_pid) {
            (Some(now), Some(then)) => now == *then,
            (None, None) => at.elapsed() < VERSION_TTL,
            _ => false,
        };
        holds.then(|| version.clone())
    }

    /// Why Ollama counts as absent this tick (see `presence`), or `None`. The text is
    /// formatted again only when the unit's state changes: on a host without Ollama it is the
    /// same every tick.
    fn absent_reason(&mut self, unit: &UnitWatch, serve_process: bool) -> Option<String> {
        let evidence = presence::Evidence {
            answered_ever: self.answered_ever,
            unit,
            serve_process,
        };
        if evidence.answered_ever || evidence.serve_process {
            return None;
        }
        if let Some((cached_unit, why)) = &self.absent_cache
            && cached_unit == unit
        {
            return Some(why.clone());
        }
        let why = presence::absent_reason(&evidence, &self.config.unit, &self.config.url)?;
        self.absent_cache = Some((unit.clone(), why.clone()));
        Some(why)
    }

    /// Version (cached while the server's PID holds), loaded models and their architectures.
    async fn read_api(
        &mut self,
        api: &Api,
        pid: Option<u32>,
        view: &mut OllamaView,
        problems: &mut Vec<String>,
    ) {
        let cached = self.cached_version(pid);
        let (version, ps) = match cached {
            Some(v) => (Ok(v), api.ps().await),
            None => {
                let (version, ps) = tokio::join!(api.version(), api.ps());
                if let Ok(v) = &version {
                    self.version_cache = Some((pid, Instant::now(), v.clone()));
                }
                (version, ps)
            }
        };
        match version {
            Ok(v) => view.version = Some(v),
            Err(e) => problems.push(e.to_string()),
        }
        match ps {
            Ok(models) => {
                self.architectures(api, &models, problems).await;
                view.models = Some(
                    models
                        .into_iter()
                        .map(|ps| ModelView {
                            arch: self.arch_cache.get(&ps.digest).cloned(),
                            ps,
                        })
                        .collect(),
                );
            }
            Err(e @ api::ApiError::Timeout { .. }) => {
                problems.push(format!(
                    "{e} (Ollama ≥ 0.32.4 holds it during a model load)"
                ));
            }
            Err(e) => problems.push(e.to_string()),
        }
    }

    /// `/api/show` for every loaded model whose digest is not cached yet, at most
    /// [`MAX_SHOWS_IN_FLIGHT`] at a time.
    async fn architectures(&mut self, api: &Api, models: &[PsModel], problems: &mut Vec<String>) {
        let missing: Vec<&PsModel> = models
            .iter()
            .filter(|m| !self.arch_cache.contains_key(&m.digest))
            .collect();
        // Collected first: a lazy map in the stream trips the Send check of the async trait.
        let asks: Vec<_> = missing.iter().map(|m| api.show(&m.name)).collect();
        let answers: Vec<_> = stream::iter(asks)
            .buffered(MAX_SHOWS_IN_FLIGHT)
            .collect()
            .await;
        for (m, result) in missing.iter().zip(answers) {
            match result {
                Ok(a) => {
                    self.arch_cache.insert(m.digest.clone(), a);
                }
                Err(e) => problems.push(format!("{}: {e}", m.name)),
            }
        }
        // Forget models no longer loaded, so the cache stays as small as the loaded set.
        self.arch_cache
            .retain(|digest, _| models.iter().any(|m| &m.digest == digest));
    }
}

#[async_trait]
impl Collector for OllamaCollector {
    fn id(&self) -> CollectorId {
        CollectorId::Ollama
    }

    async fn collect(&mut self) -> Result<Sample, CollectError> {
        let api = match &self.api {
            Ok(api) => api,
            Err(e) => return Err(CollectError::new(e.to_string())),
        };
        // Cheap clone of the client (an Arc inside) so `self` stays free for the caches.
        let api = api.clone();
        let mut problems = Vec::new();
        let (probe, unit) = tokio::join!(api.probe(), self.unit());
        self.answered_ever |= probe.is_ok();
        // Read before the API calls: the PID tells whether the cached version still holds.
        let process = self.process(&unit);
        let pid = match &process {
            Some(Ok(usage)) => Some(usage.pid),
            _ => None,
        };
        let mut view = OllamaView {
            url: self.config.url.clone(),
            up: probe.is_ok(),
            probe_seconds: probe.as_ref().ok().map(|d| d.as_secs_f64()),
            problems: Vec::new(),
            version: None,
            models: None,
            unit,
            process: None,
            at: Instant::now(),
        };
        // Judged before the probe's error is put in words: absent (never answered, so the
        // probe failed) reports only why, and on a host without Ollama that is every tick.
        if let Some(why) = self.absent_reason(&view.unit, process.is_some()) {
            self.version_cache = None;
            view.problems = vec![why.clone()];
            self.hooks.view.publish(view);
            return Err(CollectError::new(why));
        }
        match &probe {
            Err(e) => {
                self.version_cache = None;
                problems.push(e.to_string());
            }
            Ok(_) => self.read_api(&api, pid, &mut view, &mut problems).await,
        }
        match process {
            Some(Ok(usage)) => view.process = Some(usage),
            Some(Err(e)) => problems.push(e),
            None => {}
        }
        match &view.unit {
            UnitWatch::Status(_) => {}
            UnitWatch::NotWatched { reason } | UnitWatch::Error { reason } => {
                problems.push(reason.clone());
            }
        }
        let mut points = points(&view, &self.config.unit);
        if let UnitWatch::Status(st) = &view.unit
            && st.main_pid > 0
            // No cgroup tree to read (a container without /sys/fs/cgroup): no unit points.
            && let Ok(cg) = self.cgroup.of_pid(&self.proc, st.main_pid, &self.cgroup_root)
        {
            points.extend(unit_cgroup::points(&cg.read(), &self.config.unit));
        }
        view.problems = problems;
        let degraded = (!view.problems.is_empty()).then(|| view.problems.join("; "));
        self.hooks.view.publish(view);
        Ok(Sample { points, degraded })
    }
}

/// The ollama.* points for one view.
pub fn points(view: &OllamaView, unit: &str) -> Vec<MetricPoint> {
    let none = Attrs::new;
    let mut out = vec![MetricPoint::new(
        MetricName::OllamaUp,
        none(),
        i64::from(view.up),
    )];
    if let Some(s) = view.probe_seconds {
        out.push(MetricPoint::new(MetricName::OllamaProbeLatency, none(), s));
    }
    if let Some(models) = &view.models {
        out.push(MetricPoint::new(
            MetricName::OllamaModelCount,
            none(),
            u64::try_from(models.len()).unwrap_or(u64::MAX),
        ));
        for m in models {
            let model = || Attrs::new().with(AttrKey::GenAiRequestModel, m.ps.name.clone());
            for (location, bytes) in [("vram", m.ps.size_vram), ("ram", m.ps.size_ram())] {
                out.push(MetricPoint::new(
                    MetricName::OllamaModelMemoryUsage,
                    model().with(AttrKey::OllamaMemoryLocation, location),
                    bytes,
                ));
            }
            if let Some(ctx) = m.ps.context_length {
                out.push(MetricPoint::new(
                    MetricName::OllamaModelContextLength,
                    model(),
                    ctx,
                ));
            }
        }
    }
    if let UnitWatch::Status(s) = &view.unit {
        let u = || Attrs::new().with(AttrKey::SystemdUnit, unit.to_owned());
        out.push(MetricPoint::new(
            MetricName::OllamaServiceActive,
            u(),
            i64::from(s.is_active()),
        ));
        out.push(MetricPoint::new(
            MetricName::OllamaServiceRestarts,
            u(),
            s.n_restarts,
        ));
    }
    if let Some(p) = &view.process {
        // The total (server and runners) first and without `ollama.runner.model`; then the
        // runners' share per model, a part of that total.
        let pid = || Attrs::new().with(AttrKey::ProcessPid, p.pid);
        let (rss, cpu) = p.total();
        let by_model = p.by_model();
        let shares =
            std::iter::once((pid(), rss, cpu)).chain(by_model.iter().map(|(model, (rss, cpu))| {
                (
                    pid().with(AttrKey::OllamaRunnerModel, (*model).to_owned()),
                    *rss,
                    *cpu,
                )
            }));
        for (attrs, rss, cpu) in shares {
            out.push(MetricPoint::new(
                MetricName::OllamaProcessMemoryUsage,
                attrs.clone(),
                rss,
            ));
            out.push(MetricPoint::new(
                MetricName::OllamaProcessCpuTime,
                attrs,
                cpu,
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests;
