//! hostwarden's metrics about itself, appended to each tick's snapshot by the runtime so every
//! consumer (OTLP, `once --format json`, status, rules) sees the same numbers.

use super::diagnosis::Cause;
use crate::model::{AttrKey, Attrs, MetricName, MetricPoint, Snapshot};
use crate::sys::proc::ProcessUsage;

/// Counters kept by the exporters. (The outbox metrics are appended by the rules' `Alerting`,
/// which owns the outbox.)
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SelfCounters {
    pub export_failures: u64,
    /// Failures per TLS cause (every cause, zeros included, once export is configured).
    pub tls_failures: Vec<(Cause, u64)>,
    /// Failed Alertmanager requests, when the sink is configured.
    pub alertmanager_failures: Option<u64>,
}

/// Appends the collector, export and process self-metrics.
pub fn append(snapshot: &mut Snapshot, counters: SelfCounters, usage: Option<ProcessUsage>) {
    // The statuses are read while the points grow: borrowed apart, not copied (a copy was one
    // allocation a tick, and one more per collector with a reason; issue 20).
    let Snapshot {
        collectors, points, ..
    } = snapshot;
    let mut add = |name, attrs, value: crate::model::Value| {
        points.push(MetricPoint::new(name, attrs, value));
    };
    for c in collectors.iter() {
        let attrs = Attrs::new().with(AttrKey::HostwardenCollectorName, c.collector.as_str());
        add(
            MetricName::HostwardenCollectorLatency,
            attrs.clone(),
            c.duration_seconds.into(),
        );
        let ok = c.health != crate::model::Health::Unavailable;
        add(
            MetricName::HostwardenCollectorSuccess,
            attrs,
            f64::from(u8::from(ok)).into(),
        );
    }
    add(
        MetricName::HostwardenExportFailures,
        Attrs::new(),
        counters.export_failures.into(),
    );
    for (cause, n) in counters.tls_failures {
        add(
            MetricName::HostwardenExportTlsFailures,
            Attrs::new().with(AttrKey::ErrorType, cause.as_str()),
            n.into(),
        );
    }
    if let Some(n) = counters.alertmanager_failures {
        add(
            MetricName::HostwardenAlertmanagerFailures,
            Attrs::new(),
            n.into(),
        );
    }
    if let Some(u) = usage {
        add(
            MetricName::ProcessCpuTime,
            Attrs::new(),
            u.cpu_seconds.into(),
        );
        add(
            MetricName::ProcessMemoryUsage,
            Attrs::new(),
            u.rss_bytes.into(),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{CollectorId, CollectorStatus, Health};

    #[test]
    fn collectors_counters_and_usage_become_points() {
        let mut snap = Snapshot::default();
        for (id, health) in [
            (CollectorId::Host, Health::Ok),
            (CollectorId::Gpu, Health::Unavailable),
        ] {
            snap.collectors.push(CollectorStatus {
                collector: id,
                health,
                reason: None,
                duration_seconds: 0.125,
                points: 0,
            });
        }
        let counters = SelfCounters {
            export_failures: 3,
            tls_failures: vec![(Cause::UnknownCa, 2)],
            alertmanager_failures: Some(4),
        };
        let usage = ProcessUsage {
            cpu_seconds: 1.5,
            rss_bytes: 4096,
        };
        append(&mut snap, counters, Some(usage));
        let v = |n, with: &[(AttrKey, &str)]| snap.find(n, with).map(|p| p.value.as_f64());
        let host = [(AttrKey::HostwardenCollectorName, "host")];
        let gpu = [(AttrKey::HostwardenCollectorName, "gpu")];
        assert_eq!(
            v(MetricName::HostwardenCollectorLatency, &host),
            Some(0.125)
        );
        assert_eq!(v(MetricName::HostwardenCollectorSuccess, &host), Some(1.0));
        assert_eq!(v(MetricName::HostwardenCollectorSuccess, &gpu), Some(0.0));
        assert_eq!(v(MetricName::HostwardenExportFailures, &[]), Some(3.0));
        assert_eq!(
            v(
                MetricName::HostwardenExportTlsFailures,
                &[(AttrKey::ErrorType, "unknown_ca")]
            ),
            Some(2.0)
        );
        assert_eq!(
            v(MetricName::HostwardenAlertmanagerFailures, &[]),
            Some(4.0)
        );
        assert_eq!(v(MetricName::ProcessCpuTime, &[]), Some(1.5));
        assert_eq!(v(MetricName::ProcessMemoryUsage, &[]), Some(4096.0));
    }

    #[test]
    fn our_own_usage_is_readable() {
        let u = crate::sys::ownusage::OwnUsage::new()
            .read()
            .expect("/proc/self is readable in tests");
        assert!(u.rss_bytes > 0);
        assert!(u.cpu_seconds > 0.0, "the test process has run: {u:?}");
    }
}
