//! The registry: every metric's one name, unit, instrument kind and description.

use serde::{Serialize, Serializer};

/// How a metric is exported. Counters carry cumulative totals; gauges and up-down counters carry
/// the current value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum InstrumentKind {
    Gauge,
    UpDownCounter,
    Counter,
}

macro_rules! metric_names {
    ($( $(#[doc = $doc:literal])* $variant:ident => $name:literal, $unit:literal, $kind:ident; )*) => {
        /// Every metric hostwarden can emit. `as_str()` is the exported name (an OpenTelemetry
        /// semantic-convention name where one exists, a documented custom namespace otherwise).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum MetricName {
            $( $(#[doc = $doc])* $variant, )*
        }

        impl MetricName {
            /// All names, in declaration order (a test holds docs/metrics.md to it).
            pub const ALL: &'static [MetricName] = &[$(MetricName::$variant,)*];

            pub const fn as_str(self) -> &'static str {
                match self { $(MetricName::$variant => $name,)* }
            }

            /// UCUM unit, as OpenTelemetry writes it (`By`, `s`, `Cel`, `1`, `{thread}`).
            pub const fn unit(self) -> &'static str {
                match self { $(MetricName::$variant => $unit,)* }
            }

            pub const fn kind(self) -> InstrumentKind {
                match self { $(MetricName::$variant => InstrumentKind::$kind,)* }
            }

            /// One-line description, used by OTLP and the metrics reference.
            pub fn description(self) -> &'static str {
                match self { $(MetricName::$variant => concat!($($doc),*).trim(),)* }
            }

            /// Looks a metric up by its exported name (rules name metrics this way).
            pub fn from_name(name: &str) -> Option<MetricName> {
                match name { $($name => Some(MetricName::$variant),)* _ => None }
            }
        }
    };
}

metric_names! {
    // --- host (semantic conventions) ---
    /// Seconds each CPU spent in each mode (`cpu.mode`), per logical CPU
    /// (`cpu.logical_number`) when `[host] per_cpu` is on, whole host otherwise.
    SystemCpuTime => "system.cpu.time", "s", Counter;
    /// Whole host: each mode's share of the CPU time between two reads, by `cpu.mode` (0..1; the
    /// modes add up to 1).
    SystemCpuUtilization => "system.cpu.utilization", "1", Gauge;
    /// Number of logical CPUs.
    SystemCpuLogicalCount => "system.cpu.logical.count", "{cpu}", UpDownCounter;
    /// 1-minute load average.
    SystemCpuLoadAverage1m => "system.cpu.load_average.1m", "{thread}", Gauge;
    /// 5-minute load average.
    SystemCpuLoadAverage5m => "system.cpu.load_average.5m", "{thread}", Gauge;
    /// 15-minute load average.
    SystemCpuLoadAverage15m => "system.cpu.load_average.15m", "{thread}", Gauge;
    /// Memory in use by state (used, free, cached, buffers).
    SystemMemoryUsage => "system.memory.usage", "By", UpDownCounter;
    /// Total physical memory.
    SystemMemoryLimit => "system.memory.limit", "By", UpDownCounter;
    /// Memory by state as a share of the limit, by `system.memory.state` (0..1).
    SystemMemoryUtilization => "system.memory.utilization", "1", Gauge;
    /// MemAvailable: what can be allocated without swapping.
    SystemMemoryLinuxAvailable => "system.memory.linux.available", "By", UpDownCounter;
    /// Share of memory a new allocation can still get (0..1): MemAvailable plus the ZFS ARC
    /// above c_min, over MemTotal. The shipped memory rule judges this.
    SystemMemoryLinuxAvailableRatio => "system.memory.linux.available_ratio", "1", Gauge;
    /// Swap by state (used, free).
    SystemPagingUsage => "system.paging.usage", "By", UpDownCounter;
    /// Used swap as a share of total swap (0..1).
    SystemPagingUtilization => "system.paging.utilization", "1", Gauge;
    /// CPU pressure: share of the last 10 s some task waited for a CPU (PSI avg10, 0..1).
    SystemCpuLinuxPressure10s => "system.cpu.linux.pressure.10s", "1", Gauge;
    /// CPU pressure: share of the last minute some task waited for a CPU (PSI avg60, 0..1).
    SystemCpuLinuxPressure1m => "system.cpu.linux.pressure.1m", "1", Gauge;
    /// CPU pressure: share of the last 5 minutes some task waited for a CPU (PSI avg300, 0..1).
    SystemCpuLinuxPressure5m => "system.cpu.linux.pressure.5m", "1", Gauge;
    /// CPU pressure: total stall time.
    SystemCpuLinuxPressureTotal => "system.cpu.linux.pressure.total", "s", Counter;
    /// Memory pressure: share of the last 10 s tasks stalled on memory (PSI avg10, 0..1).
    SystemMemoryLinuxPressure10s => "system.memory.linux.pressure.10s", "1", Gauge;
    /// Memory pressure: share of the last minute tasks stalled on memory (PSI avg60, 0..1).
    SystemMemoryLinuxPressure1m => "system.memory.linux.pressure.1m", "1", Gauge;
    /// Memory pressure: share of the last 5 minutes tasks stalled on memory (PSI avg300, 0..1).
    SystemMemoryLinuxPressure5m => "system.memory.linux.pressure.5m", "1", Gauge;
    /// Memory pressure: total stall time.
    SystemMemoryLinuxPressureTotal => "system.memory.linux.pressure.total", "s", Counter;
    /// I/O pressure: share of the last 10 s tasks stalled on I/O (PSI avg10, 0..1).
    SystemIoLinuxPressure10s => "system.io.linux.pressure.10s", "1", Gauge;
    /// I/O pressure: share of the last minute tasks stalled on I/O (PSI avg60, 0..1).
    SystemIoLinuxPressure1m => "system.io.linux.pressure.1m", "1", Gauge;
    /// I/O pressure: share of the last 5 minutes tasks stalled on I/O (PSI avg300, 0..1).
    SystemIoLinuxPressure5m => "system.io.linux.pressure.5m", "1", Gauge;
    /// I/O pressure: total stall time.
    SystemIoLinuxPressureTotal => "system.io.linux.pressure.total", "s", Counter;
    /// Processes killed by the kernel's OOM killer since boot (/proc/vmstat oom_kill).
    SystemMemoryLinuxOomKills => "system.memory.linux.oom_kills", "{kill}", Counter;

    // --- disks, filesystems, network (semantic conventions v1.40.0, system-metrics.md) ---
    /// Bytes read and written, by device and direction (diskstats sectors × 512).
    SystemDiskIo => "system.disk.io", "By", Counter;
    /// Reads and writes completed, by device and direction.
    SystemDiskOperations => "system.disk.operations", "{operation}", Counter;
    /// Sum of the time each read or write took, by device and direction.
    SystemDiskOperationTime => "system.disk.operation_time", "s", Counter;
    /// Wall time the device had I/O in flight, by device.
    SystemDiskIoTime => "system.disk.io_time", "s", Counter;
    /// Adjacent reads or writes merged into one, by device and direction.
    SystemDiskMerged => "system.disk.merged", "{operation}", Counter;
    /// Requests in flight now, by device (custom: the OTel hostmetrics receiver's name).
    SystemDiskPendingOperations => "system.disk.pending_operations", "{operation}", UpDownCounter;
    /// Filesystem space by state (used, free, reserved), per mount.
    SystemFilesystemUsage => "system.filesystem.usage", "By", UpDownCounter;
    /// Filesystem size, per mount.
    SystemFilesystemLimit => "system.filesystem.limit", "By", UpDownCounter;
    /// Used space as a share of the space users can have (used / (used + free), as df).
    SystemFilesystemUtilization => "system.filesystem.utilization", "1", Gauge;
    /// Inodes by state (used, free), per mount (custom: the OTel hostmetrics receiver's name).
    SystemFilesystemInodesUsage => "system.filesystem.inodes.usage", "{inode}", UpDownCounter;
    /// 1 while the mount's statvfs has not returned within the deadline (a dead NFS server).
    SystemFilesystemStale => "system.filesystem.stale", "1", Gauge;
    /// Bytes received and transmitted, by interface and direction.
    SystemNetworkIo => "system.network.io", "By", Counter;
    /// Packets received and transmitted, by interface and direction.
    SystemNetworkPacketCount => "system.network.packet.count", "{packet}", Counter;
    /// Receive and transmit errors, by interface and direction.
    SystemNetworkErrors => "system.network.errors", "{error}", Counter;
    /// Packets dropped without an error, by interface and direction.
    SystemNetworkPacketDropped => "system.network.packet.dropped", "{packet}", Counter;

    // --- GPU (semantic conventions, hardware) ---
    /// GPU memory in use.
    HwGpuMemoryUsage => "hw.gpu.memory.usage", "By", UpDownCounter;
    /// GPU memory total.
    HwGpuMemoryLimit => "hw.gpu.memory.limit", "By", UpDownCounter;
    /// GPU memory used as a share of total (0..1).
    HwGpuMemoryUtilization => "hw.gpu.memory.utilization", "1", Gauge;
    /// GPU memory free (custom: NVML's free, which excludes reserved memory).
    HwGpuMemoryFree => "hw.gpu.memory.free", "By", UpDownCounter;
    /// GPU memory reserved by the driver and firmware (custom).
    HwGpuMemoryReserved => "hw.gpu.memory.reserved", "By", UpDownCounter;
    /// GPU busy share over the driver's sample period (0..1), by task.
    HwGpuUtilization => "hw.gpu.utilization", "1", Gauge;
    /// Memory-controller busy share (0..1) (custom).
    HwGpuMemoryControllerUtilization => "hw.gpu.memory_controller.utilization", "1", Gauge;
    /// Sensor temperature.
    HwTemperature => "hw.temperature", "Cel", Gauge;
    /// Temperature thresholds (slowdown = high.degraded, shutdown = high.critical).
    HwTemperatureLimit => "hw.temperature.limit", "Cel", Gauge;
    /// Power draw.
    HwPower => "hw.power", "W", Gauge;
    /// Enforced power limit (custom).
    HwGpuPowerLimit => "hw.gpu.power.limit", "W", Gauge;
    /// Energy consumed since the driver loaded.
    HwEnergy => "hw.energy", "J", Counter;
    /// ECC errors by type (corrected, uncorrected), volatile since the driver loaded.
    HwErrors => "hw.errors", "{error}", Counter;
    /// Fan speed as a share of its maximum (0..1).
    HwFanSpeedRatio => "hw.fan.speed_ratio", "1", Gauge;
    /// Current clock frequency by clock (sm, memory) (custom).
    HwGpuClockFrequency => "hw.gpu.clock.frequency", "Hz", Gauge;
    /// 1 while a throttle reason is active, per reason (custom).
    HwGpuThrottled => "hw.gpu.throttled", "1", Gauge;
    /// Device state: 1 for the current state (ok, degraded, failed).
    HwStatus => "hw.status", "1", UpDownCounter;
    /// PCIe replays (link-level retransmissions) since the driver loaded (custom).
    HwGpuPcieReplays => "hw.gpu.pcie.replays", "{replay}", Counter;
    /// PCIe throughput over the driver's 20 ms sample, by `network.io.direction` (custom).
    HwGpuPcieThroughput => "hw.gpu.pcie.throughput", "By/s", Gauge;
    /// Memory rows remapped, by `error.type` (corrected, uncorrected) (custom; Ampere and newer).
    HwGpuMemoryRemappedRows => "hw.gpu.memory.remapped_rows", "{row}", UpDownCounter;
    /// 1 while a row remap waits for a GPU reset (custom).
    HwGpuMemoryRemapPending => "hw.gpu.memory.remap.pending", "1", Gauge;
    /// 1 when a row remap failed: the board needs service (custom).
    HwGpuMemoryRemapFailed => "hw.gpu.memory.remap.failed", "1", Gauge;
    /// Retired memory pages by `error.type` (multiple_single_bit, double_bit) (custom; before
    /// Ampere).
    HwGpuMemoryRetiredPages => "hw.gpu.memory.retired_pages", "{page}", UpDownCounter;
    /// 1 while retired pages wait for a reboot or GPU reset to take effect (custom).
    HwGpuMemoryRetiredPagesPending => "hw.gpu.memory.retired_pages.pending", "1", Gauge;
    /// XID error events by XID number, since the agent registered for them (custom; NVML
    /// events are not historical).
    HwGpuXidErrors => "hw.gpu.xid.errors", "{error}", Counter;
    /// The most recent XID the device reported (custom; absent until one arrives).
    HwGpuXidLast => "hw.gpu.xid.last", "1", Gauge;
    /// GPU memory held by a process (custom).
    ProcessGpuMemoryUsage => "process.gpu.memory.usage", "By", UpDownCounter;

    // --- ZFS (custom zfs.pool.*, modelled on system.filesystem.* and system.disk.*) ---
    /// Pool space by state (used, free).
    ZfsPoolUsage => "zfs.pool.usage", "By", UpDownCounter;
    /// Pool size.
    ZfsPoolLimit => "zfs.pool.limit", "By", UpDownCounter;
    /// Allocated share of the pool (0..1).
    ZfsPoolUtilization => "zfs.pool.utilization", "1", Gauge;
    /// Free-space fragmentation (0..1).
    ZfsPoolFragmentation => "zfs.pool.fragmentation", "1", Gauge;
    /// Deduplication ratio (1 = none).
    ZfsPoolDedupRatio => "zfs.pool.dedup_ratio", "1", Gauge;
    /// 1 for the pool's current health (ONLINE, DEGRADED, FAULTED, ...).
    ZfsPoolHealth => "zfs.pool.health", "1", UpDownCounter;
    /// 1 for a vdev's current health.
    ZfsVdevHealth => "zfs.vdev.health", "1", UpDownCounter;
    /// Operations by direction, accumulated from `zpool iostat`'s per-interval rates.
    ZfsPoolOperations => "zfs.pool.operations", "{operation}", Counter;
    /// Bytes by direction, accumulated from `zpool iostat`'s per-interval rates.
    ZfsPoolIo => "zfs.pool.io", "By", Counter;
    /// Average wait per operation over the last iostat interval, by wait type and direction.
    ZfsPoolOperationLatency => "zfs.pool.operation.latency", "s", Gauge;
    /// Read, write and checksum errors summed over the pool's vdevs.
    ZfsPoolErrors => "zfs.pool.errors", "{error}", Counter;
    /// Progress of a running scrub or resilver (0..1).
    ZfsPoolScanProgress => "zfs.pool.scan.progress", "1", Gauge;
    /// 1 for the state of the pool's last scrub or resilver (none, scanning, finished, canceled).
    ZfsPoolScanState => "zfs.pool.scan.state", "1", UpDownCounter;
    /// Unix time the last scrub or resilver started.
    ZfsPoolScanStart => "zfs.pool.scan.start", "s", Gauge;
    /// Unix time the last scrub or resilver finished or was canceled.
    ZfsPoolScanEnd => "zfs.pool.scan.end", "s", Gauge;
    /// Time since the last scrub or resilver finished (finished scans only).
    ZfsPoolScanAge => "zfs.pool.scan.age", "s", Gauge;
    /// Errors the last scrub or resilver could not repair.
    ZfsPoolScanErrors => "zfs.pool.scan.errors", "{error}", Gauge;
    /// Bytes the last scrub repaired or the last resilver resilvered (so far, while running).
    ZfsPoolScanRepaired => "zfs.pool.scan.repaired", "By", Gauge;

    // --- ZFS ARC (custom zfs.arc.*, from /proc/spl/kstat/zfs/arcstats) ---
    /// ARC size (arcstats size).
    ZfsArcSize => "zfs.arc.size", "By", UpDownCounter;
    /// The size the ARC aims at (arcstats c).
    ZfsArcTarget => "zfs.arc.target", "By", UpDownCounter;
    /// Bounds of the target size, by limit type (min = c_min, max = c_max).
    ZfsArcLimit => "zfs.arc.limit", "By", UpDownCounter;
    /// ARC contents by state (mru, mfu).
    ZfsArcStateSize => "zfs.arc.state.size", "By", UpDownCounter;
    /// Metadata held in the ARC (arcstats metadata_size).
    ZfsArcMetadataSize => "zfs.arc.metadata.size", "By", UpDownCounter;
    /// ARC hits since the module loaded.
    ZfsArcHits => "zfs.arc.hits", "{hit}", Counter;
    /// ARC misses since the module loaded.
    ZfsArcMisses => "zfs.arc.misses", "{miss}", Counter;
    /// Bytes evicted from the ARC since the module loaded.
    ZfsArcEvicted => "zfs.arc.evicted", "By", Counter;
    /// ARC the kernel can take back under memory pressure: size above c_min.
    ZfsArcReclaimable => "zfs.arc.reclaimable", "By", UpDownCounter;
    /// MemAvailable plus the reclaimable ARC: memory available on a ZFS host.
    ZfsArcMemoryAvailable => "zfs.arc.memory.available", "By", UpDownCounter;
    /// 1 while the ARC may not grow because memory is short (arcstats arc_no_grow).
    ZfsArcNoGrow => "zfs.arc.no_grow", "1", Gauge;
    /// L2ARC size, when a cache device is present (arcstats l2_size).
    ZfsArcL2Size => "zfs.arc.l2.size", "By", UpDownCounter;
    /// L2ARC hits, when a cache device is present.
    ZfsArcL2Hits => "zfs.arc.l2.hits", "{hit}", Counter;
    /// L2ARC misses, when a cache device is present.
    ZfsArcL2Misses => "zfs.arc.l2.misses", "{miss}", Counter;

    // --- Ollama (custom ollama.*) ---
    /// 1 when Ollama answered the liveness probe.
    OllamaUp => "ollama.up", "1", Gauge;
    /// Round-trip time of the last liveness probe.
    OllamaProbeLatency => "ollama.probe.latency", "s", Gauge;
    /// Models loaded now.
    OllamaModelCount => "ollama.model.count", "{model}", UpDownCounter;
    /// A loaded model's memory by location (vram, ram: ram is spill to CPU).
    OllamaModelMemoryUsage => "ollama.model.memory.usage", "By", UpDownCounter;
    /// A loaded model's context length.
    OllamaModelContextLength => "ollama.model.context_length", "{token}", Gauge;
    /// 1 while the Ollama systemd unit is active.
    OllamaServiceActive => "ollama.service.active", "1", Gauge;
    /// The unit's restart count (systemd NRestarts).
    OllamaServiceRestarts => "ollama.service.restarts", "{restart}", Counter;
    /// Resident memory of Ollama's main process.
    OllamaProcessMemoryUsage => "ollama.process.memory.usage", "By", UpDownCounter;
    /// CPU time of Ollama's main process.
    OllamaProcessCpuTime => "ollama.process.cpu.time", "s", Counter;
    /// The Ollama unit's cgroup memory limit, by `ollama.unit.limit_type` (high, max).
    OllamaUnitMemoryLimit => "ollama.unit.memory.limit", "By", UpDownCounter;
    /// Memory charged to the Ollama unit's cgroup (memory.current; v1 memory.usage_in_bytes).
    OllamaUnitMemoryUsage => "ollama.unit.memory.usage", "By", UpDownCounter;
    /// CPU time of the Ollama unit's cgroup (cpu.stat usage_usec; v1 cpuacct.usage).
    OllamaUnitCpuTime => "ollama.unit.cpu.time", "s", Counter;

    // --- hostwarden itself ---
    /// Alerts firing now, by rule and severity.
    HostwardenAlertCount => "hostwarden.alert.count", "{alert}", UpDownCounter;
    /// Time the collector took this tick.
    HostwardenCollectorLatency => "hostwarden.collector.latency", "s", Gauge;
    /// 1 when the collector succeeded this tick.
    HostwardenCollectorSuccess => "hostwarden.collector.success", "1", Gauge;
    /// Failed OTLP export attempts.
    HostwardenExportFailures => "hostwarden.export.failures", "{failure}", Counter;
    /// Failed OTLP exports whose reason is TLS, by `error.type` (unknown_ca,
    /// certificate_expired, certificate_name_mismatch, client_certificate_refused, tls).
    HostwardenExportTlsFailures => "hostwarden.export.tls_failures", "{failure}", Counter;
    /// Failed requests to Alertmanager (any member of `[export.alertmanager] urls`).
    HostwardenAlertmanagerFailures => "hostwarden.alertmanager.failures", "{failure}", Counter;
    /// Events waiting in the outbox.
    HostwardenOutboxDepth => "hostwarden.outbox.depth", "{event}", UpDownCounter;
    /// Events dropped because the outbox was full.
    HostwardenOutboxDropped => "hostwarden.outbox.dropped", "{event}", Counter;
    /// Tuner actions by result (applied, rolled_back, skipped).
    HostwardenTunerActions => "hostwarden.tuner.actions", "{action}", Counter;
    /// The agent's own CPU time.
    ProcessCpuTime => "process.cpu.time", "s", Counter;
    /// The agent's own resident memory.
    ProcessMemoryUsage => "process.memory.usage", "By", UpDownCounter;
}

impl Serialize for MetricName {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}
