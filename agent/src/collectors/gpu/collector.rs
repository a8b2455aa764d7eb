//! The async side of the GPU collector: one `Nvml` for the agent's life, loaded lazily and
//! retried on a backoff; every NVML call runs on the blocking pool, one job at a time.

use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;
use nvml_wrapper::Nvml;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tracing::{debug, error, info, warn};

use super::backoff::Backoff;
use super::config::GpuConfig;
use super::load::{self, Loaded};
use super::points::device_points;
use super::read::{Event, ReadOptions, ReadOutcome, ReaderState, read_all};
use crate::collectors::{CollectError, Collector, Sample};
use crate::model::CollectorId;
use crate::sys::proc::ProcReader;

/// What a blocking job produced.
enum JobOutput {
    /// Boxed: an `Nvml` holds a 12 KB table of function pointers.
    Loaded(Result<Box<Loaded>, String>),
    Read(Result<ReadOutcome, String>),
}

/// The job on the blocking pool. Kept across ticks: when the deadline drops `collect`, the job
/// still runs, and the next tick must not start a second one beside it.
struct Job {
    handle: JoinHandle<JobOutput>,
    started: Instant,
}

/// Whether NVML was usable at the last attempt, so that only changes are logged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Availability {
    Unknown,
    Up,
    Down,
}

pub struct GpuCollector {
    candidates: Vec<PathBuf>,
    proc: ProcReader,
    processes: bool,
    backoff: Backoff,
    nvml: Option<Arc<Nvml>>,
    state: Arc<Mutex<ReaderState>>,
    job: Option<Job>,
    availability: Availability,
    /// Why NVML is not loaded (reported every tick until it loads).
    reason: String,
}

impl GpuCollector {
    /// `proc_root` is `[host] proc_root`, where process names are read.
    pub fn new(config: &GpuConfig, proc_root: PathBuf) -> Self {
        GpuCollector {
            candidates: load::candidates(config.nvml_library.as_deref()),
            proc: ProcReader::new(proc_root),
            processes: config.processes,
            backoff: Backoff::new(config.retry_min, config.retry_max),
            nvml: None,
            state: Arc::new(Mutex::new(ReaderState::default())),
            job: None,
            availability: Availability::Unknown,
            reason: String::new(),
        }
    }

    /// Starts `work` on the blocking pool and waits for it. Cancel-safe: the job is stored
    /// first, so a dropped future leaves it to be collected (or waited out) next tick.
    async fn run_job(
        &mut self,
        work: impl FnOnce() -> JobOutput + Send + 'static,
    ) -> Result<JobOutput, CollectError> {
        let job = self.job.insert(Job {
            handle: tokio::task::spawn_blocking(work),
            started: Instant::now(),
        });
        let result = (&mut job.handle).await;
        self.job = None;
        result.map_err(|e| CollectError::new(format!("NVML job failed: {e}")))
    }

    /// Deals with a job left over from a tick whose deadline passed. Err while it still runs.
    async fn settle_previous_job(&mut self) -> Result<(), CollectError> {
        let Some(job) = &mut self.job else {
            return Ok(());
        };
        if !job.handle.is_finished() {
            return Err(CollectError::new(format!(
                "previous NVML call still running after {:.1}s; not starting another",
                job.started.elapsed().as_secs_f64()
            )));
        }
        let finished = (&mut job.handle).await;
        self.job = None;
        // A late load is still a loaded library; a late read is stale and dropped.
        if let Ok(JobOutput::Loaded(result)) = finished {
            self.adopt(result);
        }
        Ok(())
    }

    /// Takes the outcome of a load attempt, logging only changes of availability.
    fn adopt(&mut self, result: Result<Box<Loaded>, String>) {
        match result {
            Ok(loaded) => {
                self.backoff.succeeded();
                let driver = loaded.driver_version.as_deref().unwrap_or("unknown");
                let devices = loaded.devices.map_or(-1, i64::from);
                let library = loaded.library.display().to_string();
                if self.availability == Availability::Down {
                    info!(collector = "gpu", %library, driver, devices, "NVML available again; GPU metrics resume.");
                } else {
                    info!(collector = "gpu", %library, driver, devices, "NVML loaded.");
                }
                self.availability = Availability::Up;
                self.nvml = Some(Arc::new(loaded.nvml));
            }
            Err(reason) => {
                let wait = self.backoff.failed(Instant::now());
                let wait = humantime::format_duration(wait).to_string();
                if self.availability == Availability::Down {
                    debug!(collector = "gpu", %reason, retry_in = %wait, "NVML still unavailable.");
                } else {
                    warn!(collector = "gpu", %reason, retry_in = %wait, "NVML unavailable; GPU metrics off until it loads.");
                }
                self.availability = Availability::Down;
                self.reason = reason;
            }
        }
    }

    /// Loads NVML when due; Err with the reason while it is unavailable.
    async fn ensure_loaded(&mut self) -> Result<Arc<Nvml>, CollectError> {
        if let Some(nvml) = &self.nvml {
            return Ok(Arc::clone(nvml));
        }
        if self.backoff.ready(Instant::now()) {
            let candidates = self.candidates.clone();
            if let JobOutput::Loaded(result) = self
                .run_job(move || JobOutput::Loaded(load::load(&candidates).map(Box::new)))
                .await?
            {
                self.adopt(result);
            }
        }
        match &self.nvml {
            Some(nvml) => Ok(Arc::clone(nvml)),
            None => Err(CollectError::new(self.reason.clone())),
        }
    }

    fn log_events(events: &[Event]) {
        for e in events {
            match e {
                Event::SymbolMissing { field, error } => warn!(
                    collector = "gpu", metrics = %field.metric(), %error,
                    "NVML library lacks a function (older driver); these metrics are off."
                ),
                Event::Xid { index, xid } => error!(
                    collector = "gpu",
                    index,
                    xid,
                    "GPU reported an XID error (NVIDIA's XID catalogue says what it means)."
                ),
                Event::XidUnavailable { error } => info!(
                    collector = "gpu", %error,
                    "NVML offers no XID events here; hw.gpu.xid.* stay absent."
                ),
                Event::XidDeviceSkipped { index, error } => warn!(
                    collector = "gpu", index, %error,
                    "GPU refused registration for XID events; its XIDs are not counted."
                ),
                Event::DeviceLost { index, uuid } => error!(
                    collector = "gpu",
                    index,
                    uuid = uuid.as_deref().unwrap_or("unknown"),
                    "GPU fell off the bus; it needs a reset. The other GPUs keep reporting."
                ),
            }
        }
    }
}

#[async_trait]
impl Collector for GpuCollector {
    fn id(&self) -> CollectorId {
        CollectorId::Gpu
    }

    async fn collect(&mut self) -> Result<Sample, CollectError> {
        self.settle_previous_job().await?;
        let nvml = self.ensure_loaded().await?;
        let state = Arc::clone(&self.state);
        let proc = self.proc.clone();
        let processes = self.processes;
        let output = self
            .run_job(move || {
                let mut state = state.lock().unwrap_or_else(PoisonError::into_inner);
                let opts = ReadOptions {
                    processes,
                    proc: &proc,
                };
                JobOutput::Read(read_all(&nvml, &mut state, &opts))
            })
            .await?;
        let JobOutput::Read(result) = output else {
            return Err(CollectError::new("NVML job returned the wrong output"));
        };
        let outcome = result.map_err(CollectError::new)?;
        Self::log_events(&outcome.events);
        let mut points = Vec::with_capacity(outcome.devices.len() * 40);
        for d in &outcome.devices {
            device_points(d, &mut points);
        }
        let degraded = (!outcome.problems.is_empty()).then(|| outcome.problems.join("; "));
        Ok(Sample { points, degraded })
    }
}
