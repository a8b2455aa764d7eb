//! systemd over D-Bus (zbus 6): reload, restart-and-wait-for-the-job, and a unit's state. The
//! `UnitManager` trait is the one seam both readers are written against: the tuner's apply path
//! (reload, restart, status) and the Ollama collector (status: `ollama.service.active`,
//! `.restarts`, the main PID and the Environment in force). `SystemdClient` is the one
//! implementation, tested against a real `systemd --user` manager.
//!
//! A failed connection is tried again only after a backoff (`backoff`), and `watch` tells
//! readers when what systemd holds for a unit can have changed, so neither a host without a
//! bus nor a host with one pays D-Bus round trips on every tick.

mod backoff;
mod watch;

pub use watch::{ReadClock, UnitChanges, ensure_watch};

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use futures_util::StreamExt;
use serde::Serialize;
use tokio::sync::{Mutex, OnceCell};
use tokio::time::Instant;
use tracing::{debug, info, warn};
use zbus::proxy::CacheProperties;
use zbus::{Connection, OwnedObjectPath, proxy};

#[proxy(
    interface = "org.freedesktop.systemd1.Manager",
    default_service = "org.freedesktop.systemd1",
    default_path = "/org/freedesktop/systemd1"
)]
trait Manager {
    fn reload(&self) -> zbus::Result<()>;
    fn restart_unit(&self, name: &str, mode: &str) -> zbus::Result<OwnedObjectPath>;
    fn load_unit(&self, name: &str) -> zbus::Result<OwnedObjectPath>;
    fn subscribe(&self) -> zbus::Result<()>;
    fn set_unit_properties(
        &self,
        name: &str,
        runtime: bool,
        properties: &[(&str, zbus::Variant<'_>)],
    ) -> zbus::Result<()>;
    #[zbus(signal)]
    fn reloading(&self, active: bool) -> zbus::Result<()>;
    #[zbus(signal)]
    fn job_removed(
        &self,
        id: u32,
        job: OwnedObjectPath,
        unit: String,
        result: String,
    ) -> zbus::Result<()>;
}

#[proxy(
    interface = "org.freedesktop.systemd1.Unit",
    default_service = "org.freedesktop.systemd1"
)]
trait Unit {
    #[zbus(property)]
    fn load_state(&self) -> zbus::Result<String>;
    #[zbus(property)]
    fn active_state(&self) -> zbus::Result<String>;
    #[zbus(property)]
    fn sub_state(&self) -> zbus::Result<String>;
    #[zbus(property)]
    fn drop_in_paths(&self) -> zbus::Result<Vec<String>>;
    #[zbus(property)]
    fn need_daemon_reload(&self) -> zbus::Result<bool>;
}

#[proxy(
    interface = "org.freedesktop.systemd1.Service",
    default_service = "org.freedesktop.systemd1"
)]
trait Service {
    #[zbus(property, name = "MainPID")]
    fn main_pid(&self) -> zbus::Result<u32>;
    #[zbus(property, name = "NRestarts")]
    fn n_restarts(&self) -> zbus::Result<u32>;
    #[zbus(property)]
    fn environment(&self) -> zbus::Result<Vec<String>>;
    #[zbus(property)]
    fn exec_main_status(&self) -> zbus::Result<i32>;
}

/// The cgroup settings and usage systemd reports for a service.
#[proxy(
    interface = "org.freedesktop.systemd1.Service",
    default_service = "org.freedesktop.systemd1"
)]
trait ServiceLimits {
    #[zbus(property)]
    fn memory_high(&self) -> zbus::Result<u64>;
    #[zbus(property)]
    fn memory_max(&self) -> zbus::Result<u64>;
    #[zbus(property)]
    fn tasks_max(&self) -> zbus::Result<u64>;
    #[zbus(property, name = "CPUQuotaPerSecUSec")]
    fn cpu_quota_per_sec_usec(&self) -> zbus::Result<u64>;
    #[zbus(property, name = "CPUWeight")]
    fn cpu_weight(&self) -> zbus::Result<u64>;
    #[zbus(property, name = "AllowedCPUs")]
    fn allowed_cpus(&self) -> zbus::Result<Vec<u8>>;
    #[zbus(property)]
    fn control_group(&self) -> zbus::Result<String>;
    #[zbus(property)]
    fn memory_current(&self) -> zbus::Result<u64>;
    #[zbus(property, name = "CPUUsageNSec")]
    fn cpu_usage_nsec(&self) -> zbus::Result<u64>;
}

/// A resource-control property as `SetUnitProperties` takes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PropValue {
    /// `t`: bytes, microseconds per second, a weight or a count; `u64::MAX` is infinity.
    U64(u64),
    /// `ay`: a CPU bitmask (AllowedCPUs), CPU 0 the lowest bit of the first byte.
    Mask(Vec<u8>),
}

/// The unit's resource-control properties as systemd reports them (`u64::MAX` is infinity or
/// "not set"; usage figures are `u64::MAX` when accounting is off).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct UnitLimits {
    pub memory_high: u64,
    pub memory_max: u64,
    pub tasks_max: u64,
    pub cpu_quota_per_sec_usec: u64,
    pub cpu_weight: u64,
    pub allowed_cpus: Vec<u8>,
    /// `ControlGroup`, as the manager sees it (its own cgroup namespace).
    pub control_group: String,
    pub memory_current: u64,
    pub cpu_usage_nsec: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum ActuateError {
    /// The same text for every failure of an outage, whether an attempt ran or the backoff
    /// held it, so a caller that logs a changed error logs an outage once.
    #[error("failed to connect to the {bus} D-Bus: {reason}")]
    Connect { bus: String, reason: String },
    #[error("systemd {op} of {unit} failed: {source}")]
    Bus {
        op: &'static str,
        unit: String,
        #[source]
        source: zbus::Error,
    },
    #[error("{what} of {unit} did not finish within {}", humantime::format_duration(*after))]
    Timeout {
        what: &'static str,
        unit: String,
        after: Duration,
    },
    #[error("the JobRemoved signal stream of the systemd manager ended")]
    SignalStreamEnded,
}

/// What systemd says about a unit now.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct UnitStatus {
    /// `LoadState`: loaded, not-found, bad-setting, error, masked. `LoadUnit` of a name with no
    /// unit file still succeeds, with `not-found` here.
    pub load_state: String,
    /// `ActiveState`: active, reloading, inactive, failed, activating, deactivating.
    pub active_state: String,
    /// `SubState`: running, dead, auto-restart, ...
    pub sub_state: String,
    /// `MainPID`; 0 when no main process runs.
    pub main_pid: u32,
    /// `NRestarts`: automatic restarts since the unit was last started by hand.
    pub n_restarts: u32,
    /// `KEY=value` entries of the unit's Environment= (drop-ins included) as loaded now.
    pub environment: Vec<String>,
    pub exec_main_status: i32,
    pub drop_in_paths: Vec<String>,
    /// True when unit files changed on disk since the last reload.
    pub need_daemon_reload: bool,
}

impl UnitStatus {
    pub fn is_active(&self) -> bool {
        self.active_state == "active"
    }

    /// False when systemd knows no unit file of this name (`LoadState` not-found). An empty
    /// `load_state` (a status built without asking) counts as existing.
    pub fn exists(&self) -> bool {
        self.load_state != "not-found"
    }

    /// The Environment as a map (a later assignment of a key wins, as in systemd).
    pub fn env_map(&self) -> BTreeMap<String, String> {
        self.environment
            .iter()
            .filter_map(|e| e.split_once('='))
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect()
    }

    /// One variable of the unit's environment (the last assignment wins, as in systemd).
    pub fn env(&self, key: &str) -> Option<&str> {
        self.environment
            .iter()
            .rev()
            .find_map(|kv| kv.strip_prefix(key).and_then(|r| r.strip_prefix('=')))
    }
}

/// How a restart job ended: systemd's JobRemoved `result` (`done`, `failed`, `timeout`,
/// `canceled`, `dependency`, `skipped`) and the time the job took inside systemd.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobOutcome {
    pub result: String,
    pub took: Duration,
}

/// The seam between the tuner's orchestration and systemd.
#[async_trait]
pub trait UnitManager: Send + Sync {
    /// `Manager.Reload` (daemon-reload): re-reads unit files and drop-ins.
    async fn daemon_reload(&self) -> Result<(), ActuateError>;
    /// `RestartUnit(unit, "replace")`, waiting for the job's `JobRemoved` (subscribed before
    /// asking, so a fast job cannot be missed).
    async fn restart(&self, unit: &str, timeout: Duration) -> Result<JobOutcome, ActuateError>;
    async fn unit_status(&self, unit: &str) -> Result<UnitStatus, ActuateError>;
    /// `SetUnitProperties(unit, runtime, props)`: resource control changed live, no restart.
    async fn set_properties(
        &self,
        unit: &str,
        runtime: bool,
        props: &[(String, PropValue)],
    ) -> Result<(), ActuateError>;
    /// The unit's resource-control properties, read back over D-Bus.
    async fn unit_limits(&self, unit: &str) -> Result<UnitLimits, ActuateError>;
    /// Starts moving `changes` at each finished daemon-reload and each change of `unit`
    /// (`watch`), unless a watch runs. A manager that sends no signals leaves it not live:
    /// readers then rely on their fallback cadence.
    async fn watch_changes(
        &self,
        unit: &str,
        changes: &Arc<UnitChanges>,
    ) -> Result<(), ActuateError> {
        let _ = (unit, changes);
        Ok(())
    }
}

/// The connection, or the outage keeping it from being made.
#[derive(Default)]
struct Link {
    conn: Option<Connection>,
    backoff: backoff::Backoff,
    /// The last failure's text, returned while the backoff holds attempts back.
    last_error: String,
}

/// systemd reached over a D-Bus connection made on first use (and, after a failure, on the
/// first use after the backoff).
#[derive(Clone)]
pub struct SystemdClient {
    bus: String,
    link: Arc<Mutex<Link>>,
    subscribed: Arc<OnceCell<()>>,
    /// Connect attempts that failed, over the client's life.
    connect_failures: Arc<AtomicU64>,
}

impl SystemdClient {
    /// `bus` is `system`, `session` or a D-Bus address (`unix:path=/run/user/0/bus`).
    pub fn new(bus: &str) -> Self {
        SystemdClient {
            bus: bus.to_owned(),
            link: Arc::new(Mutex::new(Link::default())),
            subscribed: Arc::new(OnceCell::new()),
            connect_failures: Arc::new(AtomicU64::new(0)),
        }
    }

    /// Connect attempts that failed so far (the first of an outage is logged, the rest only
    /// counted).
    pub fn connect_failures(&self) -> u64 {
        self.connect_failures.load(Ordering::Relaxed)
    }

    /// The connection; during an outage an attempt runs only once the backoff allows it, and
    /// the other calls fail at once with the last failure.
    async fn connection(&self) -> Result<Connection, ActuateError> {
        let mut link = self.link.lock().await;
        if let Some(c) = &link.conn {
            return Ok(c.clone());
        }
        let now = Instant::now();
        let fail = |reason: &str| ActuateError::Connect {
            bus: self.bus.clone(),
            reason: reason.to_owned(),
        };
        if !link.backoff.ready(now) {
            return Err(fail(&link.last_error));
        }
        let built = match self.bus.as_str() {
            "system" => Connection::system().await,
            "session" => Connection::session().await,
            addr => zbus::connection::Builder::address(addr).build().await,
        };
        match built {
            Ok(c) => {
                let failed = link.backoff.succeeded();
                if failed > 0 {
                    info!(bus = %self.bus, failed_attempts = failed, "Reached the systemd D-Bus after an outage.");
                }
                link.conn = Some(c.clone());
                Ok(c)
            }
            Err(e) => {
                self.connect_failures.fetch_add(1, Ordering::Relaxed);
                link.last_error = e.to_string();
                if link.backoff.failed(now) {
                    warn!(bus = %self.bus, error = %e, first_retry_s = backoff::FIRST.as_secs(), retry_cap_s = backoff::CAP.as_secs(), "Cannot reach the systemd D-Bus; trying again with a doubling backoff. Further failures are counted, not logged.");
                } else {
                    debug!(bus = %self.bus, error = %e, failures = link.backoff.failures(), next_try_ms = u64::try_from(link.backoff.wait(now).as_millis()).unwrap_or(u64::MAX), "The systemd D-Bus is still unreachable.");
                }
                Err(fail(&link.last_error))
            }
        }
    }

    async fn manager(&self) -> Result<ManagerProxy<'static>, ActuateError> {
        let conn = self.connection().await?;
        ManagerProxy::new(&conn)
            .await
            .map_err(bus_err("manager proxy", "the manager"))
    }

    /// `Subscribe`, once per connection: systemd sends job and unit signals only to
    /// subscribed clients.
    async fn subscribe(&self, mgr: &ManagerProxy<'_>, unit: &str) -> Result<(), ActuateError> {
        self.subscribed
            .get_or_try_init(|| async { mgr.subscribe().await })
            .await
            .map(|_| ())
            .map_err(bus_err("subscribe", unit))
    }

    /// The connection and the unit's object path (LoadUnit), for the property proxies that
    /// `unit_status` and `unit_limits` build on it.
    async fn unit_object(&self, unit: &str) -> Result<(Connection, OwnedObjectPath), ActuateError> {
        let conn = self.connection().await?;
        let path = self
            .manager()
            .await?
            .load_unit(unit)
            .await
            .map_err(bus_err("LoadUnit", unit))?;
        Ok((conn, path))
    }
}

impl SystemdClient {
    /// Subscribes, then matches the manager's `Reloading` and the unit's `PropertiesChanged`
    /// before returning, so a change after this call is never missed.
    async fn start_watch(
        &self,
        unit: &str,
        changes: &Arc<UnitChanges>,
    ) -> Result<tokio::task::JoinHandle<()>, ActuateError> {
        let mgr = self.manager().await?;
        self.subscribe(&mgr, unit).await?;
        let reloading = mgr
            .receive_reloading()
            .await
            .map_err(bus_err("Reloading match", unit))?
            .map(|sig| sig.args().is_ok_and(|a| a.active));
        let (conn, path) = self.unit_object(unit).await?;
        let props = zbus::fdo::PropertiesProxy::builder(&conn)
            .destination("org.freedesktop.systemd1")
            .path(path)
            .cache_properties(CacheProperties::No)
            .build()
            .await
            .map_err(bus_err("properties proxy", unit))?;
        let changed = props
            .receive_properties_changed()
            .await
            .map_err(bus_err("PropertiesChanged match", unit))?;
        Ok(tokio::spawn(watch::run(
            Box::pin(reloading),
            changed,
            Arc::downgrade(changes),
        )))
    }
}

fn bus_err<'a>(op: &'static str, unit: &'a str) -> impl FnOnce(zbus::Error) -> ActuateError + 'a {
    move |source| ActuateError::Bus {
        op,
        unit: unit.to_owned(),
        source,
    }
}

#[async_trait]
impl UnitManager for SystemdClient {
    async fn daemon_reload(&self) -> Result<(), ActuateError> {
        let mgr = self.manager().await?;
        mgr.reload().await.map_err(bus_err("reload", "the manager"))
    }

    async fn restart(&self, unit: &str, timeout: Duration) -> Result<JobOutcome, ActuateError> {
        let mgr = self.manager().await?;
        self.subscribe(&mgr, unit).await?;
        let mut removed = mgr
            .receive_job_removed()
            .await
            .map_err(bus_err("JobRemoved match", unit))?;
        let started = Instant::now();
        let job = mgr
            .restart_unit(unit, "replace")
            .await
            .map_err(bus_err("RestartUnit", unit))?;
        let wait = async {
            while let Some(sig) = removed.next().await {
                let Ok(args) = sig.args() else { continue };
                if args.job == job {
                    return Ok(JobOutcome {
                        result: args.result,
                        took: started.elapsed(),
                    });
                }
            }
            Err(ActuateError::SignalStreamEnded)
        };
        tokio::time::timeout(timeout, wait)
            .await
            .map_err(|_| ActuateError::Timeout {
                what: "restart job",
                unit: unit.to_owned(),
                after: timeout,
            })?
    }

    async fn unit_status(&self, unit: &str) -> Result<UnitStatus, ActuateError> {
        let (conn, path) = self.unit_object(unit).await?;
        // Uncached: every read asks systemd, so a status never lags behind a restart.
        let u = UnitProxy::builder(&conn)
            .path(path.clone())
            .cache_properties(CacheProperties::No)
            .build()
            .await
            .map_err(bus_err("unit proxy", unit))?;
        let s = ServiceProxy::builder(&conn)
            .path(path)
            .cache_properties(CacheProperties::No)
            .build()
            .await
            .map_err(bus_err("service proxy", unit))?;
        let e = |op| bus_err(op, unit);
        Ok(UnitStatus {
            load_state: u.load_state().await.map_err(e("LoadState"))?,
            active_state: u.active_state().await.map_err(e("ActiveState"))?,
            sub_state: u.sub_state().await.map_err(e("SubState"))?,
            drop_in_paths: u.drop_in_paths().await.map_err(e("DropInPaths"))?,
            need_daemon_reload: u
                .need_daemon_reload()
                .await
                .map_err(e("NeedDaemonReload"))?,
            main_pid: s.main_pid().await.map_err(e("MainPID"))?,
            n_restarts: s.n_restarts().await.map_err(e("NRestarts"))?,
            environment: s.environment().await.map_err(e("Environment"))?,
            exec_main_status: s.exec_main_status().await.map_err(e("ExecMainStatus"))?,
        })
    }

    async fn set_properties(
        &self,
        unit: &str,
        runtime: bool,
        props: &[(String, PropValue)],
    ) -> Result<(), ActuateError> {
        use zbus::Variant as Value;
        let mgr = self.manager().await?;
        let args: Vec<(&str, Value<'_>)> = props
            .iter()
            .map(|(name, v)| {
                let value = match v {
                    PropValue::U64(n) => Value::from(*n),
                    PropValue::Mask(bytes) => Value::from(bytes.clone()),
                };
                (name.as_str(), value)
            })
            .collect();
        mgr.set_unit_properties(unit, runtime, &args)
            .await
            .map_err(bus_err("SetUnitProperties", unit))
    }

    async fn watch_changes(
        &self,
        unit: &str,
        changes: &Arc<UnitChanges>,
    ) -> Result<(), ActuateError> {
        if !changes.claim() {
            return Ok(());
        }
        let started = self.start_watch(unit, changes).await;
        let task = started
            .as_ref()
            .ok()
            .map(tokio::task::JoinHandle::abort_handle);
        changes.started(task);
        started.map(|_| ())
    }

    async fn unit_limits(&self, unit: &str) -> Result<UnitLimits, ActuateError> {
        let (conn, path) = self.unit_object(unit).await?;
        let p = ServiceLimitsProxy::builder(&conn)
            .path(path)
            .cache_properties(CacheProperties::No)
            .build()
            .await
            .map_err(bus_err("service proxy", unit))?;
        let e = |op| bus_err(op, unit);
        Ok(UnitLimits {
            memory_high: p.memory_high().await.map_err(e("MemoryHigh"))?,
            memory_max: p.memory_max().await.map_err(e("MemoryMax"))?,
            tasks_max: p.tasks_max().await.map_err(e("TasksMax"))?,
            cpu_quota_per_sec_usec: p
                .cpu_quota_per_sec_usec()
                .await
                .map_err(e("CPUQuotaPerSecUSec"))?,
            cpu_weight: p.cpu_weight().await.map_err(e("CPUWeight"))?,
            allowed_cpus: p.allowed_cpus().await.map_err(e("AllowedCPUs"))?,
            control_group: p.control_group().await.map_err(e("ControlGroup"))?,
            memory_current: p.memory_current().await.map_err(e("MemoryCurrent"))?,
            cpu_usage_nsec: p.cpu_usage_nsec().await.map_err(e("CPUUsageNSec"))?,
        })
    }
}

/// The systemd client, or `None` when `bus = "system"` and the host was not booted with systemd
/// (no /run/systemd/system, as `sd_booted()` checks: WSL2 without systemd, a container): the
/// collector then says the unit is not watched and the tuner only advises.
pub fn client_for(bus: &str) -> Option<Arc<dyn UnitManager>> {
    if bus == "system" && !std::path::Path::new("/run/systemd/system").is_dir() {
        return None;
    }
    Some(Arc::new(SystemdClient::new(bus)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_missing_bus_is_tried_once_per_backoff_with_the_same_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        let addr = format!("unix:path={}", dir.path().join("no-bus").display());
        let c = SystemdClient::new(&addr);
        let first = c.unit_status("ollama.service").await.expect_err("no bus");
        for _ in 0..50 {
            let again = c.unit_status("ollama.service").await.expect_err("no bus");
            assert_eq!(again.to_string(), first.to_string());
        }
        // One attempt: the rest were held back by the backoff (1 s).
        assert_eq!(c.connect_failures(), 1);
        assert!(first.to_string().contains("failed to connect"), "{first}");
    }
}
