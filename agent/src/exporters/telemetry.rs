//! What the runtime holds for export and status: the OTLP pipeline (when an endpoint is set),
//! the Prometheus endpoint (when `listen` is set), the Alertmanager sink (when `urls` are set), the counters behind the self-metrics, and
//! the status socket. The runtime calls
//! `finish_snapshot` and `publish_status` each tick, and `shutdown` once.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::watch;
use tracing::{error, info, warn};

use super::alertmanager::Alertmanager;
use super::alertmanager::config::AlertmanagerConfig;
use super::alertmanager::payload::Source;
use super::config::OtlpConfig;
use super::diagnosis::TlsFailureCounts;
use super::identity;
use super::logs::{SharedOutbox, lock};
use super::otlp::Otlp;
use super::prometheus::config::PrometheusConfig;
use super::prometheus::{Endpoint, Identity};
use super::resource::{HostFacts, Resource};
use super::selfmetrics::{self, SelfCounters};
use super::settings;
use crate::model::Snapshot;
use crate::rules::ActiveAlert;
use crate::rules::event::AlertEvent;
use crate::status::server::StatusServer;
use crate::status::{ExportReport, StatusSource};
use crate::sys::ownusage::OwnUsage;

pub struct Telemetry {
    otlp: Option<Otlp>,
    prometheus: Option<Endpoint>,
    alertmanager: Option<Alertmanager>,
    failures: Arc<AtomicU64>,
    tls_failures: Arc<TlsFailureCounts>,
    outbox: SharedOutbox,
    sources: watch::Sender<Arc<StatusSource>>,
    status: Option<StatusServer>,
    /// The agent's own CPU and memory, for the self-metrics.
    own: OwnUsage,
}

impl Telemetry {
    /// Starts export (whichever is configured) and the status socket. Failures are logged, never
    /// fatal: the agent keeps collecting, judging and showing its view without them.
    /// `interval` is `[agent] interval` (the default export interval); `status_socket` is
    /// `[agent] status_socket`; `state_dir` is `[agent] state_dir` (where a host without a
    /// machine id keeps its instance id).
    #[allow(clippy::too_many_arguments)]
    pub fn start(
        otlp: &OtlpConfig,
        prometheus: &PrometheusConfig,
        alertmanager: &AlertmanagerConfig,
        interval: std::time::Duration,
        status_socket: &Path,
        state_dir: &Path,
        snapshots: &watch::Receiver<Arc<Snapshot>>,
        outbox: SharedOutbox,
    ) -> Self {
        let env = settings::process_env();
        let (otlp_settings, warnings) = settings::resolve(otlp, &env, interval);
        for w in warnings {
            warn!(variable = %w.var, "{w}");
        }
        let mut facts = HostFacts::read(Path::new("/"));
        facts.instance_id = match identity::instance_id(
            facts.machine_id.as_deref(),
            state_dir,
            Path::new("/proc/sys/kernel/random/uuid"),
        ) {
            Ok(id) => Some(id),
            Err(e) => {
                warn!(error = %e, "No service.instance.id; hosts sharing a collector or Prometheus may not be told apart.");
                None
            }
        };
        let resource = super::resource::build(&facts, &env);
        let failures = Arc::new(AtomicU64::new(0));
        let tls_failures = Arc::new(TlsFailureCounts::default());
        let otlp = if otlp_settings.is_enabled() {
            match Otlp::start(
                &otlp_settings,
                interval,
                &resource,
                snapshots,
                outbox.clone(),
                failures.clone(),
                &tls_failures,
            ) {
                Ok(o) => Some(o),
                Err(e) => {
                    error!(error = %e, "OTLP export not started; fix [export.otlp] or the OTEL_* variables.");
                    None
                }
            }
        } else {
            None
        };
        let endpoint = prometheus.listen.and_then(|listen| {
            let attrs = resource
                .iter()
                .map(|(k, v)| (k.to_owned(), v.to_string()))
                .collect::<Vec<_>>();
            let identity = Identity::from_resource(&attrs);
            let users = prometheus.basic_auth_users.clone();
            match Endpoint::start(listen, snapshots.clone(), identity, users) {
                Ok(e) => {
                    info!(listen = %e.local_addr(), "Prometheus endpoint serving /metrics.");
                    Some(e)
                }
                Err(e) => {
                    error!(error = %e, "Prometheus endpoint not started; fix [export.prometheus] listen.");
                    None
                }
            }
        });
        let alertmanager = alertmanager
            .is_enabled()
            .then(|| start_alertmanager(alertmanager, state_dir, source(&resource)));
        let (sources, sources_rx) = watch::channel(Arc::new(StatusSource::default()));
        let path = status_socket;
        let status = match StatusServer::start(path, sources_rx) {
            Ok(s) => Some(s),
            Err(e) => {
                warn!(socket = %path.display(), error = %e, "Status socket not served; `hostwarden status` will not reach this daemon.");
                None
            }
        };
        Telemetry {
            otlp,
            prometheus: endpoint,
            alertmanager: alertmanager.flatten(),
            failures,
            tls_failures,
            outbox,
            sources,
            status,
            own: OwnUsage::new(),
        }
    }

    fn export_report(&self) -> ExportReport {
        let outbox = lock(&self.outbox);
        ExportReport {
            otlp: self.otlp.is_some(),
            failures: self.failures.load(Ordering::Relaxed),
            outbox_depth: u64::try_from(outbox.depth()).unwrap_or(u64::MAX),
            outbox_dropped: outbox.dropped(),
            alertmanager: self
                .alertmanager
                .as_ref()
                .map(Alertmanager::report)
                .unwrap_or_default(),
        }
    }

    /// Appends the self-metrics to a freshly collected snapshot.
    pub fn finish_snapshot(&mut self, snapshot: &mut Snapshot) {
        let e = self.export_report();
        let counters = SelfCounters {
            export_failures: e.failures,
            tls_failures: self.tls_failures.snapshot(),
            alertmanager_failures: self.alertmanager.as_ref().map(Alertmanager::failures),
        };
        selfmetrics::append(snapshot, counters, self.own.read());
    }

    /// What the status socket reports for a snapshot; the rules engine and the tuner add
    /// their parts before `publish_status`.
    pub fn status_source(&self, snapshot: Arc<Snapshot>) -> StatusSource {
        StatusSource {
            snapshot,
            export: self.export_report(),
            ..StatusSource::default()
        }
    }

    pub fn publish_status(&self, source: StatusSource) {
        self.sources.send_replace(Arc::new(source));
    }

    /// A tick's alert events and the alerts active after it, for the Alertmanager sink.
    pub fn alerts(&self, events: &[AlertEvent], active: &[ActiveAlert]) {
        if let Some(a) = &self.alertmanager {
            a.observe(events, active);
        }
    }

    /// Removes the status socket and flushes the last metrics.
    pub async fn shutdown(self) {
        drop(self.status);
        drop(self.prometheus);
        if let Some(a) = self.alertmanager {
            a.shutdown();
        }
        if let Some(otlp) = self.otlp {
            otlp.shutdown().await;
        }
    }
}

fn start_alertmanager(
    config: &AlertmanagerConfig,
    state_dir: &Path,
    source: Source,
) -> Option<Alertmanager> {
    match Alertmanager::start(config, state_dir, source) {
        Ok(a) => Some(a),
        Err(e) => {
            error!(error = %e, "Alertmanager sink not started; fix [export.alertmanager].");
            None
        }
    }
}

/// Who alerts are about, from the resource (so OTEL_RESOURCE_ATTRIBUTES renames apply here
/// too): `instance` is service.instance.id, as on the Prometheus endpoint's series; `host` is
/// host.name.
fn source(resource: &Resource) -> Source {
    let get = |k: &str| resource.get(k).map(ToString::to_string);
    let host = get("host.name").unwrap_or_else(|| "unknown".to_owned());
    Source {
        instance: get("service.instance.id").unwrap_or_else(|| host.clone()),
        host,
    }
}
