//! The Kubernetes manifests (issue 19, packaging/kubernetes/): every manifest passes the strict
//! JSON schemas of a current Kubernetes release (kubernetes-validate, installed by
//! tests/ci/install-kubernetes.sh), the kustomization lists exactly the manifests present, and
//! the DaemonSets give the agent what its collectors need and nothing more: the host's PID
//! namespace and /proc, no capabilities and no root, probes on the status socket, sized
//! resources, the container's config byte for byte, and a GPU variant that differs from the
//! plain one only in its GPU fields. Without kubectl, the kustomize output is not rendered: the
//! manifests are plain files that the kustomization only lists.
//!
//! The YAML is read by the Python of kubernetes-validate's virtualenv (PyYAML is one of its
//! dependencies), so this crate needs no YAML parser of its own.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::sync::OnceLock;

use hostwarden::config::{Config, TunerMode};
use hostwarden_tests::harness::Harness;
use hostwarden_tests::need::{Need, which};
use hostwarden_tests::workspace_root;
use serde_json::Value;

/// The Kubernetes release whose schemas the manifests must pass: the newest that the pinned
/// kubernetes-validate (tests/ci/install-kubernetes.sh) ships.
const KUBERNETES: &str = "1.37.0";
const VALIDATE: &str = "kubernetes-validate";
const NEEDS: &[Need] = &[Need::Tool(VALIDATE)];

const DIR: &str = "packaging/kubernetes";
const KUSTOMIZATION: &str = "kustomization.yaml";
const CONTAINER_CONFIG: &str = "packaging/container/hostwarden.toml";
/// The DaemonSets: nodes without an NVIDIA GPU, and nodes with one.
const PLAIN: &str = "hostwarden";
const GPU: &str = "hostwarden-gpu";
/// The node label of NVIDIA GPU Feature Discovery that splits the nodes between the two.
const GPU_LABEL: &str = "nvidia.com/gpu.present";
/// How long `hostwarden status` waits for the daemon's answer (READ_TIMEOUT in
/// agent/src/status/client.rs): a probe's timeout must be longer, or a slow answer looks like
/// no answer.
const STATUS_READ_TIMEOUT_S: u64 = 5;

fn main() -> ExitCode {
    let h = Harness::new();
    h.run(vec![
        h.test(
            "the_validator_ships_no_kubernetes_release_newer_than_the_one_used",
            NEEDS,
            the_validator_ships_no_kubernetes_release_newer_than_the_one_used,
        ),
        h.test(
            "every_manifest_passes_the_strict_schemas",
            NEEDS,
            every_manifest_passes_the_strict_schemas,
        ),
        h.test(
            "a_misspelled_field_or_an_unknown_kind_is_rejected",
            NEEDS,
            a_misspelled_field_or_an_unknown_kind_is_rejected,
        ),
        h.test(
            "the_kustomization_lists_exactly_the_manifests_and_their_names_agree",
            NEEDS,
            the_kustomization_lists_exactly_the_manifests_and_their_names_agree,
        ),
        h.test(
            "the_configmap_is_the_container_config_byte_for_byte_and_parses",
            NEEDS,
            the_configmap_is_the_container_config_byte_for_byte_and_parses,
        ),
        h.test(
            "the_agent_sees_the_host_pid_namespace_proc_read_only_and_host_network",
            NEEDS,
            the_agent_sees_the_host_pid_namespace_proc_read_only_and_host_network,
        ),
        h.test(
            "the_agent_runs_without_root_capabilities_or_a_writable_root",
            NEEDS,
            the_agent_runs_without_root_capabilities_or_a_writable_root,
        ),
        h.test(
            "every_path_the_agent_writes_is_a_writable_volume",
            NEEDS,
            every_path_the_agent_writes_is_a_writable_volume,
        ),
        h.test(
            "the_probes_ask_the_daemon_over_its_status_socket",
            NEEDS,
            the_probes_ask_the_daemon_over_its_status_socket,
        ),
        h.test(
            "resources_are_requested_and_limited",
            NEEDS,
            resources_are_requested_and_limited,
        ),
        h.test(
            "the_gpu_daemonset_is_the_plain_one_plus_runtime_class_toleration_and_affinity",
            NEEDS,
            the_gpu_daemonset_is_the_plain_one_plus_runtime_class_toleration_and_affinity,
        ),
        h.test(
            "the_image_is_this_release",
            NEEDS,
            the_image_is_this_release,
        ),
    ])
}

// ---- reading the manifests ----

fn dir() -> PathBuf {
    workspace_root().join(DIR)
}

/// The manifests' file names (every *.yaml of the directory but the kustomization), sorted.
fn manifest_files() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir())
        .unwrap_or_else(|e| panic!("{DIR}: {e}"))
        .map(|e| {
            e.expect("read_dir entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .filter(|n| n.ends_with(".yaml") && n != KUSTOMIZATION)
        .collect();
    names.sort();
    assert!(!names.is_empty(), "no manifests in {DIR}");
    names
}

/// The Python that runs kubernetes-validate: the interpreter of its script's `#!` line (the
/// venv's, which has PyYAML).
fn python() -> PathBuf {
    let cli = which(VALIDATE).expect("kubernetes-validate on PATH");
    let cli = std::fs::canonicalize(&cli).unwrap_or(cli);
    let text = std::fs::read_to_string(&cli).unwrap_or_else(|e| panic!("{}: {e}", cli.display()));
    let interpreter = text
        .lines()
        .next()
        .and_then(|l| l.strip_prefix("#!"))
        .and_then(|l| l.split_whitespace().next())
        .unwrap_or_else(|| panic!("{} does not start with #!", cli.display()));
    PathBuf::from(interpreter)
}

/// Runs `code` in kubernetes-validate's Python with `args` and returns its standard output.
fn run_python(code: &str, args: &[&Path]) -> String {
    let out = Command::new(python())
        .arg("-c")
        .arg(code)
        .args(args)
        .output()
        .expect("run kubernetes-validate's python");
    assert!(
        out.status.success(),
        "python failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("python's output is UTF-8")
}

/// The YAML documents of each file (empty ones left out, as kubectl does), as JSON.
fn documents_of(files: &[PathBuf]) -> Vec<Vec<Value>> {
    const TO_JSON: &str = "import json, sys, yaml\n\
        out = []\n\
        for name in sys.argv[1:]:\n    \
            with open(name) as f:\n        \
                out.append([d for d in yaml.safe_load_all(f) if d is not None])\n\
        json.dump(out, sys.stdout)";
    let args: Vec<&Path> = files.iter().map(PathBuf::as_path).collect();
    serde_json::from_str(&run_python(TO_JSON, &args)).expect("python printed lists of documents")
}

fn documents(file: &Path) -> Vec<Value> {
    documents_of(&[file.to_path_buf()]).remove(0)
}

/// Every document of every manifest, read once per test run.
fn all_documents() -> &'static [Value] {
    static DOCS: OnceLock<Vec<Value>> = OnceLock::new();
    DOCS.get_or_init(|| {
        let files: Vec<PathBuf> = manifest_files().iter().map(|f| dir().join(f)).collect();
        documents_of(&files).into_iter().flatten().collect()
    })
}

/// The one document of `kind` named `name`.
fn resource(kind: &str, name: &str) -> Value {
    let mut found = all_documents()
        .iter()
        .filter(|d| d["kind"] == kind && d["metadata"]["name"] == name);
    let one = found
        .next()
        .unwrap_or_else(|| panic!("no {kind} {name} in {DIR}"));
    assert!(found.next().is_none(), "several {kind} {name} in {DIR}");
    one.clone()
}

fn daemonsets() -> [(&'static str, Value); 2] {
    [
        (PLAIN, resource("DaemonSet", PLAIN)),
        (GPU, resource("DaemonSet", GPU)),
    ]
}

/// The DaemonSet's one container.
fn container(ds: &Value) -> &Value {
    let containers = ds["spec"]["template"]["spec"]["containers"]
        .as_array()
        .expect("containers");
    assert_eq!(containers.len(), 1, "one container per pod");
    &containers[0]
}

fn str_of<'a>(v: &'a Value, what: &str) -> &'a str {
    v.as_str()
        .unwrap_or_else(|| panic!("{what} is not a string: {v}"))
}

/// The container's mount at `path` and the pod volume it names.
fn mount_at<'a>(ds: &'a Value, path: &str) -> (&'a Value, &'a Value) {
    let mounts = container(ds)["volumeMounts"]
        .as_array()
        .expect("volumeMounts");
    let mount = mounts
        .iter()
        .find(|m| m["mountPath"] == path)
        .unwrap_or_else(|| panic!("nothing is mounted at {path}"));
    let volume = ds["spec"]["template"]["spec"]["volumes"]
        .as_array()
        .expect("volumes")
        .iter()
        .find(|v| v["name"] == mount["name"])
        .unwrap_or_else(|| panic!("no volume {} for {path}", mount["name"]));
    (mount, volume)
}

/// The agent's config as the ConfigMap carries it.
fn configmap_text() -> String {
    let cm = resource("ConfigMap", "hostwarden-config");
    str_of(
        &cm["data"]["hostwarden.toml"],
        "the ConfigMap's hostwarden.toml",
    )
    .to_owned()
}

fn config() -> Config {
    hostwarden::config::parse_str(&configmap_text(), Path::new("configmap.yaml"))
        .unwrap_or_else(|e| panic!("the ConfigMap's config: {e}"))
}

/// `--config <path>` of the container's arguments.
fn config_arg(ds: &Value) -> String {
    let args: Vec<&str> = container(ds)["args"]
        .as_array()
        .expect("args")
        .iter()
        .map(|a| str_of(a, "an argument"))
        .collect();
    let at = args
        .iter()
        .position(|a| *a == "--config")
        .expect("the agent is started with --config");
    args[at + 1].to_owned()
}

// ---- validation ----

/// Runs kubernetes-validate strictly on `files` and returns how many resources passed; any
/// error, any warning (an unknown kind is only a warning to it, with exit status 0) or any
/// resource not reported as passed is an `Err` with the tool's output.
fn validate(files: &[PathBuf]) -> Result<usize, String> {
    let out = Command::new(VALIDATE)
        .args(["--kubernetes-version", KUBERNETES, "--strict"])
        .args(files)
        .output()
        .expect("run kubernetes-validate");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let minor = KUBERNETES.rsplit_once('.').map_or(KUBERNETES, |(m, _)| m);
    let passed = text
        .lines()
        .filter(|l| l.starts_with("INFO ") && l.ends_with(&format!("against version {minor}")))
        .count();
    let clean = text
        .lines()
        .all(|l| l.starts_with("INFO ") && l.contains(" passed for resource "));
    if out.status.success() && clean {
        Ok(passed)
    } else {
        Err(text)
    }
}

fn the_validator_ships_no_kubernetes_release_newer_than_the_one_used() {
    let latest = run_python(
        "import kubernetes_validate.utils as u; print(u.latest_version())",
        &[],
    );
    assert_eq!(
        latest.trim(),
        KUBERNETES,
        "kubernetes-validate ships schemas up to {}: validate against the newest (raise \
         KUBERNETES here and the pin in tests/ci/install-kubernetes.sh together)",
        latest.trim()
    );
}

fn every_manifest_passes_the_strict_schemas() {
    let files: Vec<PathBuf> = manifest_files().iter().map(|f| dir().join(f)).collect();
    let resources = all_documents().len();
    match validate(&files) {
        Ok(passed) => assert_eq!(
            passed, resources,
            "{resources} resources in {DIR}, {passed} reported as passed"
        ),
        Err(out) => panic!("the manifests fail Kubernetes {KUBERNETES}'s strict schemas:\n{out}"),
    }
}

fn a_misspelled_field_or_an_unknown_kind_is_rejected() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let original = std::fs::read_to_string(dir().join("daemonset.yaml")).expect("daemonset.yaml");
    for (what, from, to, expected) in [
        (
            "a misspelled field",
            "readOnlyRootFilesystem",
            "readOnlyRootFilesytem",
            "'readOnlyRootFilesytem' was unexpected",
        ),
        (
            "an unknown kind",
            "kind: DaemonSet",
            "kind: DaemonSett",
            "Couldn't find schema for kind DaemonSett",
        ),
    ] {
        assert!(original.contains(from), "daemonset.yaml has no {from}");
        let broken = tmp.path().join("daemonset.yaml");
        std::fs::write(&broken, original.replacen(from, to, 1)).expect("write the broken copy");
        match validate(&[broken]) {
            Ok(_) => panic!("{what} ({to}) passed validation"),
            Err(out) => assert!(out.contains(expected), "{what}: unexpected report:\n{out}"),
        }
    }
}

fn the_kustomization_lists_exactly_the_manifests_and_their_names_agree() {
    let kustomization = documents(&dir().join(KUSTOMIZATION));
    let [k] = kustomization.as_slice() else {
        panic!("{KUSTOMIZATION} holds one document")
    };
    assert_eq!(k["kind"], "Kustomization");
    // Only a namespace and the list: the rendered output is then the manifests as validated
    // here (each already names the namespace, checked below), which is why this test can do
    // without kubectl to render it.
    let keys: BTreeSet<&str> = k
        .as_object()
        .expect("a map")
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        BTreeSet::from(["apiVersion", "kind", "namespace", "resources"]),
        "{KUSTOMIZATION} transforms the manifests: validate its rendered output instead"
    );
    let listed: Vec<&str> = k["resources"]
        .as_array()
        .expect("resources")
        .iter()
        .map(|r| str_of(r, "a resource"))
        .collect();
    let unique: BTreeSet<&str> = listed.iter().copied().collect();
    assert_eq!(
        unique.len(),
        listed.len(),
        "a resource listed twice: {listed:?}"
    );
    let files = manifest_files();
    let present: BTreeSet<&str> = files.iter().map(String::as_str).collect();
    assert_eq!(
        unique, present,
        "{KUSTOMIZATION} must list every manifest of {DIR}, no more"
    );

    // One namespace, named the same everywhere.
    let namespace = str_of(&k["namespace"], "the kustomization's namespace");
    resource("Namespace", namespace);
    for doc in all_documents().iter().filter(|d| d["kind"] != "Namespace") {
        assert_eq!(
            doc["metadata"]["namespace"], namespace,
            "{} {} is outside the namespace",
            doc["kind"], doc["metadata"]["name"]
        );
    }
    // The pods use the ServiceAccount and ConfigMap defined here.
    for (name, ds) in daemonsets() {
        let pod = &ds["spec"]["template"]["spec"];
        resource("ServiceAccount", str_of(&pod["serviceAccountName"], name));
        let (_, volume) = mount_at(&ds, "/etc/hostwarden");
        resource("ConfigMap", str_of(&volume["configMap"]["name"], name));
    }
}

fn the_configmap_is_the_container_config_byte_for_byte_and_parses() {
    let container_config = std::fs::read_to_string(workspace_root().join(CONTAINER_CONFIG))
        .unwrap_or_else(|e| panic!("{CONTAINER_CONFIG}: {e}"));
    assert!(
        configmap_text() == container_config,
        "configmap.yaml's hostwarden.toml differs from {CONTAINER_CONFIG}: copy it over"
    );
    // The pods run as non-root, where systemd refuses the tuner's reload and restart.
    assert_eq!(config().tuner.mode, TunerMode::Observe);
    // The file the agent reads is the one the ConfigMap holds.
    for (name, ds) in daemonsets() {
        assert_eq!(config_arg(&ds), "/etc/hostwarden/hostwarden.toml", "{name}");
    }
}

fn the_agent_sees_the_host_pid_namespace_proc_read_only_and_host_network() {
    let proc_root = config().host.proc_root;
    let proc_root = proc_root.to_str().expect("proc_root is UTF-8");
    assert_eq!(proc_root, "/host/proc");
    for (name, ds) in daemonsets() {
        let pod = &ds["spec"]["template"]["spec"];
        assert_eq!(pod["hostPID"], true, "{name}: hostPID");
        // Ollama on the node's loopback; cluster DNS names still resolve.
        assert_eq!(pod["hostNetwork"], true, "{name}: hostNetwork");
        assert_eq!(
            pod["dnsPolicy"], "ClusterFirstWithHostNet",
            "{name}: dnsPolicy"
        );
        let (mount, volume) = mount_at(&ds, proc_root);
        assert_eq!(mount["readOnly"], true, "{name}: {proc_root} is read-only");
        assert_eq!(
            volume["hostPath"]["path"], "/proc",
            "{name}: the host's /proc"
        );
        assert_eq!(volume["hostPath"]["type"], "Directory", "{name}");
        // The system bus, for systemd's view of ollama.service.
        let (_, bus) = mount_at(&ds, "/run/dbus/system_bus_socket");
        assert_eq!(bus["hostPath"]["type"], "Socket", "{name}");
    }
}

fn the_agent_runs_without_root_capabilities_or_a_writable_root() {
    for (name, ds) in daemonsets() {
        let pod = &ds["spec"]["template"]["spec"];
        let psc = &pod["securityContext"];
        assert_eq!(psc["runAsNonRoot"], true, "{name}: runAsNonRoot");
        let uid = psc["runAsUser"].as_u64().expect("runAsUser");
        assert_ne!(uid, 0, "{name}: runAsUser");
        assert_eq!(
            psc["seccompProfile"]["type"], "RuntimeDefault",
            "{name}: seccomp"
        );
        assert_eq!(
            pod["automountServiceAccountToken"], false,
            "{name}: no API token"
        );
        let csc = &container(&ds)["securityContext"];
        assert_eq!(csc["allowPrivilegeEscalation"], false, "{name}");
        assert_eq!(csc["readOnlyRootFilesystem"], true, "{name}");
        assert_ne!(csc["privileged"], true, "{name}: privileged");
        assert_eq!(
            csc["capabilities"]["drop"],
            serde_json::json!(["ALL"]),
            "{name}"
        );
        assert!(
            csc["capabilities"]["add"].is_null(),
            "{name}: no capability added"
        );
        assert!(csc["runAsUser"].is_null(), "{name}: the pod's user applies");
    }
}

fn every_path_the_agent_writes_is_a_writable_volume() {
    let config = config();
    let socket_dir = config
        .agent
        .status_socket
        .parent()
        .expect("socket's directory");
    for path in [config.agent.state_dir.as_path(), socket_dir] {
        let path = path.to_str().expect("UTF-8 path");
        for (name, ds) in daemonsets() {
            let (mount, volume) = mount_at(&ds, path);
            assert_ne!(mount["readOnly"], true, "{name}: {path} is writable");
            assert!(
                volume["emptyDir"].is_object(),
                "{name}: {path} is an emptyDir"
            );
        }
    }
}

fn the_probes_ask_the_daemon_over_its_status_socket() {
    for (name, ds) in daemonsets() {
        let expected = serde_json::json!(["hostwarden", "status", "--config", config_arg(&ds)]);
        for probe in ["readinessProbe", "livenessProbe"] {
            let p = &container(&ds)[probe];
            assert_eq!(p["exec"]["command"], expected, "{name}: {probe}");
            let timeout = p["timeoutSeconds"].as_u64().expect("timeoutSeconds");
            assert!(
                timeout > STATUS_READ_TIMEOUT_S,
                "{name}: {probe} times out before `hostwarden status` does"
            );
        }
    }
}

/// A CPU quantity in millicores or a memory quantity in bytes (the suffixes used here).
fn quantity(q: &str) -> u64 {
    let split = q.find(|c: char| !c.is_ascii_digit()).unwrap_or(q.len());
    let (n, unit) = q.split_at(split);
    let n: u64 = n.parse().unwrap_or_else(|_| panic!("quantity {q}"));
    let factor = match unit {
        "m" => 1,
        "" => 1000, // whole CPUs; bytes are never written bare here
        "Ki" => 1 << 10,
        "Mi" => 1 << 20,
        "Gi" => 1 << 30,
        other => panic!("unexpected unit {other} in {q}"),
    };
    n * factor
}

fn resources_are_requested_and_limited() {
    for (name, ds) in daemonsets() {
        let r = &container(&ds)["resources"];
        for what in ["cpu", "memory"] {
            let request = quantity(str_of(&r["requests"][what], "a request"));
            let limit = quantity(str_of(&r["limits"][what], "a limit"));
            assert!(request > 0, "{name}: {what} request");
            assert!(limit >= request, "{name}: {what} limit below its request");
        }
    }
    let [(_, plain), (_, gpu)] = daemonsets();
    assert_eq!(container(&plain)["resources"], container(&gpu)["resources"]);
}

/// The node-affinity expression on the GPU label.
fn gpu_affinity(pod: &Value) -> &Value {
    let terms = pod["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
        ["nodeSelectorTerms"]
        .as_array()
        .expect("required node affinity");
    let [term] = terms.as_slice() else {
        panic!("one node selector term")
    };
    let exprs = term["matchExpressions"]
        .as_array()
        .expect("matchExpressions");
    let [expr] = exprs.as_slice() else {
        panic!("one match expression")
    };
    assert_eq!(expr["key"], GPU_LABEL);
    assert_eq!(expr["values"], serde_json::json!(["true"]));
    &expr["operator"]
}

fn the_gpu_daemonset_is_the_plain_one_plus_runtime_class_toleration_and_affinity() {
    let [(_, plain), (_, gpu)] = daemonsets();
    let (p, g) = (
        &plain["spec"]["template"]["spec"],
        &gpu["spec"]["template"]["spec"],
    );
    assert_eq!(g["runtimeClassName"], "nvidia");
    assert!(
        p["runtimeClassName"].is_null(),
        "no runtime class off the GPU nodes"
    );
    // Every node runs exactly one of the two.
    assert_eq!(gpu_affinity(g), "In");
    assert_eq!(gpu_affinity(p), "NotIn");
    let tolerations = |pod: &Value| pod["tolerations"].as_array().cloned().unwrap_or_default();
    let nvidia =
        serde_json::json!({"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"});
    assert!(
        tolerations(g).contains(&nvidia),
        "the GPU pods tolerate the nvidia.com/gpu taint"
    );
    assert!(!tolerations(p).contains(&nvidia));
    for t in tolerations(p) {
        assert!(tolerations(g).contains(&t), "the GPU pods lack {t}");
    }
    // Nothing else differs.
    let rest = |pod: &Value| {
        let mut pod = pod.clone();
        let map = pod.as_object_mut().expect("pod spec");
        for field in ["runtimeClassName", "tolerations", "affinity"] {
            map.remove(field);
        }
        pod
    };
    assert!(
        rest(p) == rest(g),
        "the two pod specs differ beyond the GPU fields"
    );
    // Separate selectors (two controllers must not claim the same pods), matching the labels.
    for ds in [&plain, &gpu] {
        let selector = &ds["spec"]["selector"]["matchLabels"];
        assert_eq!(selector, &ds["spec"]["template"]["metadata"]["labels"]);
    }
    assert_ne!(
        plain["spec"]["selector"], gpu["spec"]["selector"],
        "the DaemonSets' selectors overlap"
    );
}

fn the_image_is_this_release() {
    let expected = format!("localhost/hostwarden:{}", env!("CARGO_PKG_VERSION"));
    for (name, ds) in daemonsets() {
        assert_eq!(container(&ds)["image"], expected.as_str(), "{name}");
        // A local image is never pulled; one from a registry comes through kustomize `images:`.
        assert_eq!(container(&ds)["imagePullPolicy"], "IfNotPresent", "{name}");
    }
}
