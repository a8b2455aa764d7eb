//! The OTLP resource: who is speaking. Facts are read once at start (`HostFacts::read`, plus the
//! `identity`'s service.instance.id); turning them into attributes is pure, with OTEL_RESOURCE_ATTRIBUTES and OTEL_SERVICE_NAME applied on
//! top (an operator may rename the host or service that way). The same attributes name the
//! host on the Prometheus endpoint and in Alertmanager alerts.

use std::fmt;
use std::path::Path;

use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::resource::v1::Resource as ProtoResource;

use super::settings::{Env, parse_pairs};

pub const SERVICE_NAME: &str = "hostwarden";

/// What the resource says about the host, read from the filesystem.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostFacts {
    pub host_name: Option<String>,
    /// /etc/machine-id (the semconv's host.id on Linux).
    pub machine_id: Option<String>,
    /// Kernel release, e.g. `5.15.167.4-microsoft-standard-WSL2`.
    pub kernel_release: Option<String>,
    /// service.instance.id (see `identity`): not read here, since it may have to be written.
    pub instance_id: Option<String>,
}

impl HostFacts {
    /// Reads the facts below `root` (`/` on a host; a container mounts the host's files).
    pub fn read(root: &Path) -> Self {
        let read = |rel: &str| {
            std::fs::read_to_string(root.join(rel))
                .ok()
                .map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty())
        };
        HostFacts {
            host_name: read("proc/sys/kernel/hostname"),
            machine_id: read("etc/machine-id").or_else(|| read("var/lib/dbus/machine-id")),
            kernel_release: read("proc/sys/kernel/osrelease"),
            instance_id: None,
        }
    }

    /// WSL2 kernels name themselves `...-microsoft-standard-WSL2`.
    pub fn is_wsl(&self) -> bool {
        self.kernel_release
            .as_deref()
            .is_some_and(|r| r.to_ascii_lowercase().contains("microsoft"))
    }
}

/// host.arch as the semantic conventions spell it.
pub fn semconv_arch(rust_arch: &str) -> &str {
    match rust_arch {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "arm" => "arm32",
        "powerpc64" => "ppc64",
        "x86" => "x86",
        other => other,
    }
}

/// A resource attribute's value: the detected facts are strings and one boolean (host.wsl);
/// OTEL_RESOURCE_ATTRIBUTES only gives strings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    Str(String),
    Bool(bool),
}

impl From<&str> for Value {
    fn from(s: &str) -> Self {
        Value::Str(s.to_owned())
    }
}

impl From<String> for Value {
    fn from(s: String) -> Self {
        Value::Str(s)
    }
}

impl From<bool> for Value {
    fn from(b: bool) -> Self {
        Value::Bool(b)
    }
}

/// As a label value: the string itself, `true` or `false`.
impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Str(s) => f.write_str(s),
            Value::Bool(b) => write!(f, "{b}"),
        }
    }
}

/// The resource: its attributes in the order `attributes` gives them (the Prometheus endpoint's
/// `target_info` labels keep it).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Resource {
    attributes: Vec<(String, Value)>,
}

impl Resource {
    /// A later duplicate key replaces an earlier one.
    pub fn new(attributes: impl IntoIterator<Item = (String, Value)>) -> Self {
        let mut attrs: Vec<(String, Value)> = Vec::new();
        for (k, v) in attributes {
            match attrs.iter_mut().find(|(key, _)| *key == k) {
                Some(slot) => slot.1 = v,
                None => attrs.push((k, v)),
            }
        }
        Resource { attributes: attrs }
    }

    pub fn get(&self, key: &str) -> Option<&Value> {
        self.attributes
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &Value)> {
        self.attributes.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// The OTLP `Resource` message both signals' requests carry, its attributes sorted by key
    /// (as the SDK's hash map forced us to before: every export and every start say the same).
    pub fn to_proto(&self) -> ProtoResource {
        let mut attributes: Vec<KeyValue> = self
            .iter()
            .map(|(k, v)| KeyValue {
                key: k.to_owned(),
                value: Some(AnyValue {
                    value: Some(match v {
                        Value::Str(s) => any_value::Value::StringValue(s.clone()),
                        Value::Bool(b) => any_value::Value::BoolValue(*b),
                    }),
                }),
                key_strindex: 0,
            })
            .collect();
        attributes.sort_by(|a, b| a.key.cmp(&b.key));
        ProtoResource {
            attributes,
            dropped_attributes_count: 0,
            entity_refs: Vec::new(),
        }
    }
}

/// The resource attributes: detected facts, then OTEL_RESOURCE_ATTRIBUTES, then
/// OTEL_SERVICE_NAME (each later one replaces an earlier key).
pub fn attributes(facts: &HostFacts, env: &Env) -> Vec<(String, Value)> {
    let mut attrs: Vec<(String, Value)> = vec![
        ("service.name".into(), SERVICE_NAME.into()),
        ("service.version".into(), env!("CARGO_PKG_VERSION").into()),
        ("os.type".into(), "linux".into()),
        (
            "host.arch".into(),
            semconv_arch(std::env::consts::ARCH).to_owned().into(),
        ),
        ("host.wsl".into(), facts.is_wsl().into()),
    ];
    if let Some(id) = &facts.instance_id {
        attrs.push(("service.instance.id".into(), id.clone().into()));
    }
    if let Some(h) = &facts.host_name {
        attrs.push(("host.name".into(), h.clone().into()));
    }
    if let Some(id) = &facts.machine_id {
        attrs.push(("host.id".into(), id.clone().into()));
    }
    if let Some(r) = &facts.kernel_release {
        let wsl = if facts.is_wsl() { " (WSL2)" } else { "" };
        attrs.push(("os.description".into(), format!("Linux {r}{wsl}").into()));
    }
    let mut set = |k: String, v: Value| match attrs.iter_mut().find(|(key, _)| *key == k) {
        Some(slot) => slot.1 = v,
        None => attrs.push((k, v)),
    };
    if let Some(text) = env.get("OTEL_RESOURCE_ATTRIBUTES") {
        for (k, v) in parse_pairs(text) {
            set(k, v.into());
        }
    }
    if let Some(name) = env
        .get("OTEL_SERVICE_NAME")
        .filter(|n| !n.trim().is_empty())
    {
        set("service.name".into(), name.trim().to_owned().into());
    }
    attrs
}

pub fn build(facts: &HostFacts, env: &Env) -> Resource {
    Resource::new(attributes(facts, env))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get(attrs: &[(String, Value)], key: &str) -> Option<String> {
        attrs
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.to_string())
    }

    fn facts(release: &str) -> HostFacts {
        HostFacts {
            host_name: Some("gpu-box".into()),
            machine_id: Some("0123abcd".into()),
            kernel_release: Some(release.into()),
            instance_id: Some("5c1e0d7a-3f4b-5a69-8c2d-1e0f3a4b5c6d".into()),
        }
    }

    #[test]
    fn a_plain_linux_host() {
        let a = attributes(&facts("6.1.0-18-amd64"), &Env::new());
        assert_eq!(get(&a, "service.name").as_deref(), Some("hostwarden"));
        assert_eq!(get(&a, "host.name").as_deref(), Some("gpu-box"));
        assert_eq!(get(&a, "host.id").as_deref(), Some("0123abcd"));
        assert_eq!(
            get(&a, "service.instance.id").as_deref(),
            Some("5c1e0d7a-3f4b-5a69-8c2d-1e0f3a4b5c6d")
        );
        assert_eq!(get(&a, "os.type").as_deref(), Some("linux"));
        assert_eq!(get(&a, "host.wsl").as_deref(), Some("false"));
        assert_eq!(
            get(&a, "service.version").as_deref(),
            Some(env!("CARGO_PKG_VERSION"))
        );
    }

    #[test]
    fn a_wsl2_host_says_so() {
        // As found on Windows 11 with WSL 2.3: uname -r.
        let f = facts("5.15.167.4-microsoft-standard-WSL2");
        assert!(f.is_wsl());
        let a = attributes(&f, &Env::new());
        assert_eq!(get(&a, "host.wsl").as_deref(), Some("true"));
        assert!(get(&a, "os.description").unwrap().ends_with("(WSL2)"));
    }

    #[test]
    fn env_overrides_detected_values_and_service_name_wins_last() {
        let env: Env = [
            (
                "OTEL_RESOURCE_ATTRIBUTES".to_owned(),
                "host.name=renamed,deployment.environment.name=lab,service.name=a".to_owned(),
            ),
            ("OTEL_SERVICE_NAME".to_owned(), "b".to_owned()),
        ]
        .into();
        let a = attributes(&facts("6.1.0"), &env);
        assert_eq!(get(&a, "host.name").as_deref(), Some("renamed"));
        assert_eq!(
            get(&a, "deployment.environment.name").as_deref(),
            Some("lab")
        );
        assert_eq!(get(&a, "service.name").as_deref(), Some("b"));
    }

    #[test]
    fn arch_names_follow_the_conventions() {
        assert_eq!(semconv_arch("x86_64"), "amd64");
        assert_eq!(semconv_arch("aarch64"), "arm64");
        assert_eq!(semconv_arch("s390x"), "s390x");
    }

    #[test]
    fn missing_files_leave_attributes_out() {
        let dir = tempfile::tempdir().unwrap();
        let f = HostFacts::read(dir.path());
        assert_eq!(f, HostFacts::default());
        let a = attributes(&f, &Env::new());
        assert!(get(&a, "host.id").is_none());
        assert!(get(&a, "service.instance.id").is_none());
    }

    #[test]
    fn the_proto_resource_is_sorted_keeps_the_last_duplicate_and_keeps_value_types() {
        let r = Resource::new([
            ("service.name".to_owned(), Value::from("a")),
            ("host.wsl".to_owned(), Value::from(false)),
            ("service.name".to_owned(), Value::from("b")),
        ]);
        assert_eq!(r.get("service.name"), Some(&Value::from("b")));
        let order: Vec<_> = r.iter().map(|(k, _)| k).collect();
        assert_eq!(order, ["service.name", "host.wsl"]);
        let p = r.to_proto();
        let got: Vec<_> = p
            .attributes
            .iter()
            .map(|kv| (kv.key.as_str(), kv.value.clone().and_then(|v| v.value)))
            .collect();
        assert_eq!(
            got,
            [
                ("host.wsl", Some(any_value::Value::BoolValue(false))),
                (
                    "service.name",
                    Some(any_value::Value::StringValue("b".into()))
                ),
            ]
        );
        assert_eq!(
            r.get("host.wsl").map(ToString::to_string).as_deref(),
            Some("false")
        );
    }
}
