use super::*;
use crate::model::{AttrValue, Value};
use proptest::prelude::*;
use rstest::rstest;

#[rstest]
#[case(0x0, &[])]
#[case(0x1, &["gpu_idle"])]
#[case(0x4 | 0x40, &["sw_power_cap", "hw_thermal_slowdown"])]
#[case(0x8 | 0x20 | 0x80, &["hw_slowdown", "sw_thermal_slowdown", "hw_power_brake_slowdown"])]
#[case(0x100 | 0x10 | 0x2, &["applications_clocks_setting", "sync_boost", "display_clock_setting"])]
// Bits NVML may add later are ignored, never mapped to a new label.
#[case(0x8000_0000_0000_0200, &[])]
fn throttle_bits_map_to_the_fixed_reason_set(#[case] bits: u64, #[case] on: &[&str]) {
    let flags: Vec<_> = throttle_flags(bits).collect();
    assert_eq!(flags.len(), THROTTLE_REASONS.len());
    for (name, v) in flags {
        assert_eq!(v, u32::from(on.contains(&name)), "{name} for {bits:#x}");
    }
}

#[test]
fn throttle_bits_match_nvml_header_values() {
    // nvml.h: GpuIdle 0x1, ApplicationsClocksSetting 0x2, SwPowerCap 0x4, HwSlowdown 0x8,
    // SyncBoost 0x10, SwThermalSlowdown 0x20, HwThermalSlowdown 0x40, HwPowerBrakeSlowdown 0x80,
    // DisplayClockSetting 0x100.
    use nvml_wrapper::bitmasks::device::ThrottleReasons as R;
    let expected = [
        (R::GPU_IDLE, "gpu_idle"),
        (
            R::APPLICATIONS_CLOCKS_SETTING,
            "applications_clocks_setting",
        ),
        (R::SW_POWER_CAP, "sw_power_cap"),
        (R::HW_SLOWDOWN, "hw_slowdown"),
        (R::SYNC_BOOST, "sync_boost"),
        (R::SW_THERMAL_SLOWDOWN, "sw_thermal_slowdown"),
        (R::HW_THERMAL_SLOWDOWN, "hw_thermal_slowdown"),
        (R::HW_POWER_BRAKE_SLOWDOWN, "hw_power_brake_slowdown"),
        (R::DISPLAY_CLOCK_SETTING, "display_clock_setting"),
    ];
    for ((bit, name), (flag, want)) in THROTTLE_REASONS.iter().zip(expected) {
        assert_eq!((*bit, *name), (flag.bits(), want));
    }
}

#[rstest]
#[case(0, 0.0)]
#[case(42, 0.42)]
#[case(100, 1.0)]
#[case(110, 1.1)]
fn percent_becomes_ratio(#[case] pct: u32, #[case] ratio: f64) {
    assert_eq!(percent_to_ratio(pct), ratio);
}

#[test]
fn units_convert_exactly() {
    assert_eq!(mw_to_w(123_456), 123.456);
    assert_eq!(mw_to_w(300_000), 300.0);
    assert_eq!(mj_to_j(987_654_321), 987_654.321);
    assert_eq!(mhz_to_hz(1410), 1_410_000_000);
    assert_eq!(mhz_to_hz(u32::MAX), u64::from(u32::MAX) * 1_000_000);
}

#[test]
fn memory_utilization_is_absent_for_zero_total() {
    let m = Memory {
        total: 0,
        ..Memory::default()
    };
    assert_eq!(memory_utilization(&m), None);
    let m = Memory {
        total: 8,
        used: 2,
        ..Memory::default()
    };
    assert_eq!(memory_utilization(&m), Some(0.25));
}

fn reading() -> DeviceReading {
    DeviceReading {
        uuid: "GPU-1".into(),
        name: "Test".into(),
        ..DeviceReading::default()
    }
}

fn find<'a>(pts: &'a [MetricPoint], name: MetricName, with: &[(AttrKey, &str)]) -> Vec<&'a Value> {
    pts.iter()
        .filter(|p| p.name == name)
        .filter(|p| {
            with.iter()
                .all(|(k, v)| p.attributes.get(*k).is_some_and(|a| a.as_text() == *v))
        })
        .map(|p| &p.value)
        .collect()
}

#[test]
fn a_device_with_nothing_supported_reports_only_its_status() {
    let mut pts = Vec::new();
    device_points(&reading(), &mut pts);
    assert_eq!(pts.len(), 3);
    assert!(pts.iter().all(|p| p.name == MetricName::HwStatus));
    assert_eq!(
        find(&pts, MetricName::HwStatus, &[(AttrKey::HwState, "ok")]),
        vec![&Value::Int(1)]
    );
    for p in &pts {
        assert_eq!(
            p.attributes.get(AttrKey::HwType),
            Some(&AttrValue::from("gpu"))
        );
        assert_eq!(
            p.attributes.get(AttrKey::HwName),
            Some(&AttrValue::from("Test"))
        );
        assert_eq!(
            p.attributes.get(AttrKey::HwModel),
            Some(&AttrValue::from("Test"))
        );
        assert_eq!(
            p.attributes.get(AttrKey::HwVendor),
            Some(&AttrValue::from("NVIDIA"))
        );
        // Neither was given: absent, not empty.
        assert_eq!(p.attributes.get(AttrKey::HwSerialNumber), None);
        assert_eq!(p.attributes.get(AttrKey::HwDriverVersion), None);
    }
}

#[test]
fn serial_and_driver_version_are_on_every_device_point_but_not_on_processes() {
    let mut d = reading();
    d.serial = Some("1321120021234".into());
    d.driver_version = Some("535.183.01".into());
    d.temperature_c = Some(50);
    d.processes = Some(vec![GpuProcess {
        pid: 7,
        used_bytes: 1,
        name: None,
    }]);
    let mut pts = Vec::new();
    device_points(&d, &mut pts);
    for p in pts
        .iter()
        .filter(|p| p.name != MetricName::ProcessGpuMemoryUsage)
    {
        let text = |k| p.attributes.get(k).map(AttrValue::as_text);
        assert_eq!(
            text(AttrKey::HwSerialNumber).as_deref(),
            Some("1321120021234")
        );
        assert_eq!(
            text(AttrKey::HwDriverVersion).as_deref(),
            Some("535.183.01")
        );
    }
    let process = pts
        .iter()
        .find(|p| p.name == MetricName::ProcessGpuMemoryUsage)
        .unwrap();
    assert_eq!(process.attributes.get(AttrKey::HwSerialNumber), None);
}

#[test]
fn a_failed_device_reports_failed_and_nothing_else() {
    let mut d = reading();
    d.state = Some(DeviceState::Failed);
    d.temperature_c = Some(50);
    let mut pts = Vec::new();
    device_points(&d, &mut pts);
    let states: Vec<_> = pts
        .iter()
        .map(|p| {
            (
                p.attributes.get(AttrKey::HwState).map(AttrValue::as_text),
                p.value,
            )
        })
        .collect();
    assert_eq!(
        states,
        vec![
            (Some("ok".into()), Value::Int(0)),
            (Some("degraded".into()), Value::Int(0)),
            (Some("failed".into()), Value::Int(1)),
        ]
    );
}

#[test]
fn a_full_reading_gives_every_metric_with_exact_values() {
    let mut d = reading();
    d.memory = Some(Memory {
        total: 1000,
        reserved: 10,
        free: 740,
        used: 250,
    });
    d.utilization = Some((42, 17));
    d.temperature_c = Some(61);
    d.slowdown_c = Some(90);
    d.shutdown_c = Some(95);
    d.power_mw = Some(123_456);
    d.power_limit_mw = Some(300_000);
    d.energy_mj = Some(5_000_500);
    d.throttle_bits = Some(0x44);
    d.ecc_corrected = Some(3);
    d.ecc_uncorrected = Some(0);
    d.fan_percent = Some(55);
    d.clock_sm_mhz = Some(1410);
    d.clock_mem_mhz = Some(1215);
    d.processes = Some(vec![
        GpuProcess {
            pid: 7,
            used_bytes: 100,
            name: Some("ollama".into()),
        },
        GpuProcess {
            pid: 8,
            used_bytes: 50,
            name: None,
        },
    ]);
    let mut pts = Vec::new();
    device_points(&d, &mut pts);
    let one = |name, with: &[(AttrKey, &str)]| {
        let v = find(&pts, name, with);
        assert_eq!(v.len(), 1, "{name:?} {with:?}");
        *v[0]
    };
    assert_eq!(one(MetricName::HwGpuMemoryUsage, &[]), Value::Int(250));
    assert_eq!(one(MetricName::HwGpuMemoryLimit, &[]), Value::Int(1000));
    assert_eq!(one(MetricName::HwGpuMemoryFree, &[]), Value::Int(740));
    assert_eq!(one(MetricName::HwGpuMemoryReserved, &[]), Value::Int(10));
    assert_eq!(
        one(MetricName::HwGpuMemoryUtilization, &[]),
        Value::Float(0.25)
    );
    let general = [(AttrKey::HwGpuTask, "general")];
    assert_eq!(
        one(MetricName::HwGpuUtilization, &general),
        Value::Float(0.42)
    );
    assert_eq!(
        one(MetricName::HwGpuMemoryControllerUtilization, &[]),
        Value::Float(0.17)
    );
    let gpu = (AttrKey::HwSensorLocation, "gpu");
    assert_eq!(one(MetricName::HwTemperature, &[gpu]), Value::Int(61));
    let degraded = [gpu, (AttrKey::HwLimitType, "high.degraded")];
    assert_eq!(
        one(MetricName::HwTemperatureLimit, &degraded),
        Value::Int(90)
    );
    let critical = [gpu, (AttrKey::HwLimitType, "high.critical")];
    assert_eq!(
        one(MetricName::HwTemperatureLimit, &critical),
        Value::Int(95)
    );
    assert_eq!(one(MetricName::HwPower, &[]), Value::Float(123.456));
    assert_eq!(one(MetricName::HwGpuPowerLimit, &[]), Value::Float(300.0));
    assert_eq!(one(MetricName::HwEnergy, &[]), Value::Float(5000.5));
    let corrected = [(AttrKey::ErrorType, "corrected")];
    assert_eq!(one(MetricName::HwErrors, &corrected), Value::Int(3));
    let uncorrected = [(AttrKey::ErrorType, "uncorrected")];
    assert_eq!(one(MetricName::HwErrors, &uncorrected), Value::Int(0));
    assert_eq!(one(MetricName::HwFanSpeedRatio, &[]), Value::Float(0.55));
    let sm = [(AttrKey::HwGpuClock, "sm")];
    assert_eq!(
        one(MetricName::HwGpuClockFrequency, &sm),
        Value::Int(1_410_000_000)
    );
    let mem = [(AttrKey::HwGpuClock, "memory")];
    assert_eq!(
        one(MetricName::HwGpuClockFrequency, &mem),
        Value::Int(1_215_000_000)
    );
    assert_eq!(find(&pts, MetricName::HwGpuThrottled, &[]).len(), 9);
    let power_cap = [(AttrKey::HwGpuThrottleReason, "sw_power_cap")];
    assert_eq!(one(MetricName::HwGpuThrottled, &power_cap), Value::Int(1));
    let idle = [(AttrKey::HwGpuThrottleReason, "gpu_idle")];
    assert_eq!(one(MetricName::HwGpuThrottled, &idle), Value::Int(0));
    let named = [
        (AttrKey::ProcessPid, "7"),
        (AttrKey::ProcessExecutableName, "ollama"),
    ];
    assert_eq!(
        one(MetricName::ProcessGpuMemoryUsage, &named),
        Value::Int(100)
    );
    let unnamed: Vec<_> = pts
        .iter()
        .filter(|p| p.name == MetricName::ProcessGpuMemoryUsage)
        .filter(|p| p.attributes.get(AttrKey::ProcessPid) == Some(&AttrValue::Int(8)))
        .collect();
    assert_eq!(unnamed.len(), 1);
    assert_eq!(
        unnamed[0].attributes.get(AttrKey::ProcessExecutableName),
        None
    );
    assert_eq!(
        unnamed[0].attributes.get(AttrKey::HwId),
        Some(&AttrValue::from("GPU-1"))
    );
}

proptest! {
    #[test]
    fn every_throttle_mask_yields_the_whole_bounded_set(bits in any::<u64>()) {
        let mut d = reading();
        d.throttle_bits = Some(bits);
        let mut pts = Vec::new();
        device_points(&d, &mut pts);
        let reasons: Vec<_> = pts
            .iter()
            .filter(|p| p.name == MetricName::HwGpuThrottled)
            .map(|p| p.attributes.get(AttrKey::HwGpuThrottleReason).map(AttrValue::as_text))
            .collect();
        let want: Vec<_> = THROTTLE_REASONS.iter().map(|(_, n)| Some((*n).to_owned())).collect();
        prop_assert_eq!(reasons, want);
    }
}
