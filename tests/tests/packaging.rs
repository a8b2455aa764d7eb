//! Packaging (issue 7): the .deb and .rpm build and pass lintian and rpm's queries, the .deb
//! boots under a real systemd and the shipped unit works there (READY, watchdog, reload,
//! security exposure), the container image builds and its binary runs, the compose file follows
//! the compose specification, and the Grafana dashboard only queries metrics the agent exports.
//! The heavy steps are shell scripts in packaging/tests/ (also usable by hand); this file runs
//! them and reads their results. Tools come from tests/ci/install-packaging.sh.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::sync::OnceLock;
use std::time::SystemTime;

use hostwarden_tests::harness::Harness;
use hostwarden_tests::need::Need;
use hostwarden_tests::{prometheus, promql, workspace_root};

/// What packages.sh needs (tests/ci/install-packaging.sh installs all of these tools).
const PACKAGE_TOOLS: [Need; 5] = [
    Need::Tool("cargo-deb"),
    Need::Tool("cargo-generate-rpm"),
    Need::Tool("lintian"),
    Need::Tool("rpm"),
    Need::Tool("dpkg-deb"),
];

/// Where tests/ci/install-packaging.sh puts check-jsonschema (its own virtualenv).
const CHECK_JSONSCHEMA: &str = "/var/tmp/hostwarden-ci/venv/bin/check-jsonschema";

fn main() -> ExitCode {
    // Booting the .deb's tree with systemd-nspawn needs root, as does podman's build with
    // chroot isolation; both start from the packages.
    let boot = [
        &[
            Need::Root,
            Need::Tool("debootstrap"),
            Need::Tool("systemd-nspawn"),
            Need::Tool("nsenter"),
        ][..],
        &PACKAGE_TOOLS,
    ]
    .concat();
    let image = [
        &[Need::Root, Need::Tool("podman"), Need::Tool("debootstrap")][..],
        &PACKAGE_TOOLS,
    ]
    .concat();
    let h = Harness::new();
    h.run(vec![
        h.test(
            "packages_build_lint_clean_with_the_same_files_scriptlets_and_no_gpu_or_zfs_dependency",
            &PACKAGE_TOOLS,
            packages_build_lint_clean_with_the_same_files_scriptlets_and_no_gpu_or_zfs_dependency,
        ),
        h.test(
            "deb_installs_and_its_unit_boots_reaches_ready_passes_watchdog_and_reloads",
            &boot,
            deb_installs_and_its_unit_boots_reaches_ready_passes_watchdog_and_reloads,
        ),
        h.test(
            "container_image_builds_from_the_dockerfile_and_its_binary_runs",
            &image,
            container_image_builds_from_the_dockerfile_and_its_binary_runs,
        ),
        h.test(
            "unit_file_exposure_is_at_most_2_0_offline",
            &[Need::Tool("systemd-analyze")],
            unit_file_exposure_is_at_most_2_0_offline,
        ),
        h.test(
            "every_loosened_directive_in_the_unit_says_why",
            &[],
            every_loosened_directive_in_the_unit_says_why,
        ),
        h.test(
            "compose_stack_follows_the_compose_specification",
            &[Need::File(CHECK_JSONSCHEMA)],
            compose_stack_follows_the_compose_specification,
        ),
        h.test(
            "grafana_dashboard_queries_only_metrics_and_labels_the_agent_exports",
            &[],
            grafana_dashboard_queries_only_metrics_and_labels_the_agent_exports,
        ),
        h.test(
            "grafana_dashboard_filters_every_panel_on_job_and_host",
            &[],
            grafana_dashboard_filters_every_panel_on_job_and_host,
        ),
        h.test(
            "grafana_dashboard_has_a_row_per_area",
            &[],
            grafana_dashboard_has_a_row_per_area,
        ),
        // node runs the rule against a polkit stand-in.
        h.test(
            "polkit_rule_grants_only_ollama_restart_and_daemon_reload_to_hostwarden",
            &[Need::Tool("node")],
            polkit_rule_grants_only_ollama_restart_and_daemon_reload_to_hostwarden,
        ),
    ])
}

fn script(name: &str) -> PathBuf {
    workspace_root().join("packaging/tests").join(name)
}

/// Runs a packaging script, echoes its stderr, fails the test on a non-zero exit, and returns
/// its stdout's `key value` lines.
fn run(cmd: &mut Command, what: &str) -> Vec<(String, String)> {
    let started = SystemTime::now();
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {what}: {e}"));
    let secs = started.elapsed().map_or(0.0, |d| d.as_secs_f64());
    eprint!("{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{stdout}",
        out.status
    );
    eprintln!("{what}: {secs:.1} s");
    stdout
        .lines()
        .filter_map(|l| l.split_once(' '))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

fn value<'a>(kv: &'a [(String, String)], key: &str) -> &'a str {
    kv.iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
        .unwrap_or_else(|| panic!("no {key} in the script's output: {kv:?}"))
}

struct Packages {
    deb: PathBuf,
    rpm: PathBuf,
}

/// Builds and checks both packages once per test process (the boot and image tests reuse them).
fn packages() -> &'static Packages {
    static PACKAGES: OnceLock<Packages> = OnceLock::new();
    PACKAGES.get_or_init(|| {
        let kv = run(&mut Command::new(script("packages.sh")), "packages.sh");
        let field = |key| {
            let v = value(&kv, key);
            let (path, size) = v.rsplit_once(' ').unwrap_or((v, "?"));
            eprintln!("{key}: {path} ({size} bytes)");
            PathBuf::from(path)
        };
        // packages.sh failed already if the shipped binary's tick code was not linked first.
        eprintln!("tick code linked first: {} bytes", value(&kv, "hot_code"));
        Packages {
            deb: field("deb"),
            rpm: field("rpm"),
        }
    })
}

fn packages_build_lint_clean_with_the_same_files_scriptlets_and_no_gpu_or_zfs_dependency() {
    // packages.sh fails on any lintian error or warning, a missing file, a config that is not
    // a conffile / %config(noreplace), missing scriptlets, or a GPU/ZFS dependency.
    let p = packages();
    assert!(p.deb.exists() && p.rpm.exists());
}

fn deb_installs_and_its_unit_boots_reaches_ready_passes_watchdog_and_reloads() {
    let p = packages();
    let kv = run(Command::new(script("boot.sh")).arg(&p.deb), "boot.sh");
    let exposure: f64 = value(&kv, "exposure")
        .parse()
        .expect("exposure is a number");
    eprintln!("systemd-analyze security exposure in the booted tree: {exposure}");
    assert!(exposure <= 2.0, "exposure {exposure} above the 2.0 target");
}

fn container_image_builds_from_the_dockerfile_and_its_binary_runs() {
    // The image copies the release binary that packages.sh built.
    packages();
    let kv = run(&mut Command::new(script("container.sh")), "container.sh");
    eprintln!(
        "image layer added to the base: {} bytes",
        value(&kv, "image_layer_bytes")
    );
}

fn unit_file_exposure_is_at_most_2_0_offline() {
    let unit = workspace_root().join("systemd/hostwarden.service");
    let out = Command::new("systemd-analyze")
        .args(["security", "--offline=yes"])
        .arg(&unit)
        .output()
        .expect("run systemd-analyze");
    let text = String::from_utf8_lossy(&out.stdout);
    let level: f64 = text
        .lines()
        .find_map(|l| {
            l.split("Overall exposure level for hostwarden.service: ")
                .nth(1)
        })
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no exposure level in:\n{text}"));
    assert!(level <= 2.0, "offline exposure {level} > 2.0");
}

fn every_loosened_directive_in_the_unit_says_why() {
    let text = std::fs::read_to_string(workspace_root().join("systemd/hostwarden.service"))
        .expect("read the unit");
    // Directives weaker than their strictest value: each needs a "Loosened" comment above it.
    let loosened = [
        "ProtectProc=default",
        "ProcSubset=all",
        "PrivateUsers=no",
        "PrivateNetwork=no",
        "RestrictAddressFamilies=",
        "ReadWritePaths=",
        "DeviceAllow=char-nvidiactl",
    ];
    let lines: Vec<&str> = text.lines().collect();
    for directive in loosened {
        let at = lines
            .iter()
            .position(|l| l.starts_with(directive))
            .unwrap_or_else(|| panic!("{directive} missing from the unit"));
        let commented = lines[..at]
            .iter()
            .rev()
            .take_while(|l| !l.trim().is_empty())
            .any(|l| l.starts_with('#') && l.contains("Loosened"));
        assert!(
            commented,
            "{directive} has no comment saying why it is loosened"
        );
    }
}

fn validate_compose(file: &Path) -> std::process::Output {
    Command::new(CHECK_JSONSCHEMA)
        .args(["--builtin-schema", "vendor.compose-spec"])
        .arg(file)
        .output()
        .expect("run check-jsonschema")
}

fn compose_stack_follows_the_compose_specification() {
    let stack = workspace_root().join("packaging/container/portainer-stack.yml");
    let out = validate_compose(&stack);
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // The validator does catch a wrong file: a misspelt key must fail.
    let dir = tempfile::tempdir().expect("tempdir");
    let broken = dir.path().join("broken.yml");
    let text = std::fs::read_to_string(&stack).expect("read the stack");
    std::fs::write(&broken, text.replace("network_mode:", "network_mod:")).expect("write");
    assert!(
        !validate_compose(&broken).status.success(),
        "schema accepted a misspelt key"
    );
}

fn dashboard() -> serde_json::Value {
    let path = workspace_root().join("packaging/grafana/hostwarden.json");
    serde_json::from_str(&std::fs::read_to_string(path).expect("read the dashboard"))
        .expect("the dashboard is JSON")
}

/// Every (expr, legendFormat) of the dashboard's panels, and its variable queries.
fn queries(d: &serde_json::Value) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let empty = Vec::new();
    for panel in d["panels"].as_array().unwrap_or(&empty) {
        for t in panel["targets"].as_array().unwrap_or(&empty) {
            let expr = t["expr"].as_str().unwrap_or_default().to_owned();
            let legend = t["legendFormat"].as_str().unwrap_or_default().to_owned();
            out.push((expr, legend));
        }
    }
    for var in d["templating"]["list"].as_array().unwrap_or(&empty) {
        if let Some(q) = var["query"]["query"].as_str() {
            // label_values(selector, label): the last argument is a label, written here as a
            // matcher so that it is read as one.
            let q = match q.rsplit_once(", ") {
                Some((selector, label)) => {
                    format!("{selector}){{{}=\"\"}}", label.trim_end_matches(')'))
                }
                None => q.to_owned(),
            };
            out.push((q, String::new()));
        }
    }
    out
}

fn grafana_dashboard_queries_only_metrics_and_labels_the_agent_exports() {
    let (metrics, labels) = prometheus::exported();
    let metrics: BTreeSet<_> = metrics.into_iter().collect();
    // job and instance come from the resource (service.name, service.instance.id).
    let labels: BTreeSet<_> = labels
        .into_iter()
        .chain(["job".into(), "instance".into()])
        .collect();
    let qs = queries(&dashboard());
    assert!(qs.len() > 30, "only {} queries", qs.len());
    let mut used = BTreeSet::new();
    for (expr, legend) in &qs {
        let n = promql::names(expr);
        assert!(!n.metrics.is_empty(), "query names no metric: {expr}");
        for m in &n.metrics {
            assert!(
                metrics.contains(m),
                "{m} is not exported by the agent (query: {expr})"
            );
            used.insert(m.clone());
        }
        for l in n.labels.iter().chain(&promql::legend_labels(legend)) {
            assert!(
                labels.contains(l),
                "label {l} is not an exported attribute (query: {expr})"
            );
        }
    }
    eprintln!(
        "dashboard queries {} of {} exported metrics",
        used.len(),
        metrics.len()
    );
}

/// Every panel follows both variables: the job and the host (`instance`, which the agent's
/// endpoint and the collector both set from service.instance.id), so hosts never overlay.
fn grafana_dashboard_filters_every_panel_on_job_and_host() {
    let d = dashboard();
    let names: Vec<&str> = d["templating"]["list"]
        .as_array()
        .expect("variables")
        .iter()
        .filter_map(|v| v["name"].as_str())
        .collect();
    assert_eq!(names, ["datasource", "job", "instance"]);
    for (expr, _) in queries(&d)
        .iter()
        .filter(|(e, _)| !e.starts_with("label_values"))
    {
        for filter in ["job=~\"$job\"", "instance=~\"$instance\""] {
            assert!(expr.contains(filter), "{expr} does not filter on {filter}");
        }
    }
}

fn grafana_dashboard_has_a_row_per_area() {
    let d = dashboard();
    let rows: Vec<&str> = d["panels"]
        .as_array()
        .expect("panels")
        .iter()
        .filter(|p| p["type"] == "row")
        .filter_map(|p| p["title"].as_str())
        .collect();
    for area in ["Alerts", "Host", "GPU", "ZFS", "Ollama"] {
        assert!(
            rows.iter().any(|r| r.contains(area)),
            "no {area} row in {rows:?}"
        );
    }
}

fn polkit_rule_grants_only_ollama_restart_and_daemon_reload_to_hostwarden() {
    let out = Command::new("node")
        .arg(script("polkit-rule.js"))
        .arg(workspace_root().join("packaging/polkit/50-hostwarden.rules"))
        .output()
        .expect("run node");
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
