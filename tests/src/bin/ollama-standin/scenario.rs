//! What the stand-in serves: command-line options and the bodies built from them.

use std::collections::BTreeMap;
use std::net::{SocketAddr, ToSocketAddrs};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::time::rfc3339_nano_utc;

pub const USAGE: &str = "\
usage: ollama-standin [OPTIONS]
  --listen HOST:PORT       address to serve (default: $OLLAMA_HOST like Ollama, else 127.0.0.1:11434;
                           port 0 picks a free port; the first stdout line names the address)
  --version V              /api/version answer (default 0.30.11)
  --ps FILE                /api/ps body, served verbatim and re-read on every request, so a test can
                           change what is loaded by rewriting FILE (default {\"models\":[]})
  --model NAME=SIZE/VRAM/CTX
                           instead of --ps: a loaded model with size, size_vram and context_length;
                           repeatable; digest and details come from --tags when it lists NAME
  --show NAME=FILE         POST /api/show body for model NAME (repeatable); others answer 404
  --tags FILE              /api/tags body (default {\"models\":[]})
  --fail-if KEY=VALUE      exit 1 at start when env KEY has VALUE (repeatable), like an Ollama that
                           cannot start with that setting
  --slow DURATION          wait this long (\"500ms\", \"3s\") before every API answer
  --env-file PATH          also write the GET /__env JSON to PATH at start
";

/// Parsed command line.
#[derive(Debug)]
pub struct Options {
    pub listen: SocketAddr,
    pub version: String,
    pub ps: Option<String>,
    pub models: Vec<ModelSpec>,
    pub show: Vec<(String, String)>,
    pub tags: Option<String>,
    pub fail_if: Vec<(String, String)>,
    pub slow: Duration,
    pub env_file: Option<String>,
}

#[derive(Debug)]
pub struct ModelSpec {
    pub name: String,
    pub size: u64,
    pub size_vram: u64,
    pub context: u64,
}

impl Options {
    /// `Ok(None)` for `--help`.
    pub fn parse(args: &[String]) -> Result<Option<Options>, String> {
        let mut o = Options {
            listen: ollama_host(std::env::var("OLLAMA_HOST").ok().as_deref())?,
            version: "0.30.11".to_owned(),
            ps: None,
            models: Vec::new(),
            show: Vec::new(),
            tags: None,
            fail_if: Vec::new(),
            slow: Duration::ZERO,
            env_file: None,
        };
        let mut it = args.iter();
        while let Some(flag) = it.next() {
            if flag == "--help" || flag == "-h" {
                return Ok(None);
            }
            let value = it
                .next()
                .ok_or_else(|| format!("{flag} needs a value"))?
                .clone();
            match flag.as_str() {
                "--listen" => o.listen = ollama_host(Some(&value))?,
                "--version" => o.version = value,
                "--ps" => o.ps = Some(value),
                "--model" => o.models.push(parse_model(&value)?),
                "--show" => o.show.push(split_pair(flag, &value)?),
                "--tags" => o.tags = Some(value),
                "--fail-if" => o.fail_if.push(split_pair(flag, &value)?),
                "--slow" => {
                    o.slow = parse_go_duration(&value)
                        .and_then(|ns| u64::try_from(ns).ok())
                        .map(Duration::from_nanos)
                        .ok_or_else(|| format!("--slow {value}: not a duration like 500ms"))?;
                }
                "--env-file" => o.env_file = Some(value),
                other => return Err(format!("unknown option {other}")),
            }
        }
        if o.ps.is_some() && !o.models.is_empty() {
            return Err("--ps and --model exclude each other".to_owned());
        }
        Ok(Some(o))
    }
}

fn split_pair(flag: &str, v: &str) -> Result<(String, String), String> {
    // Split at the first '=': model names and env keys never hold one, values may.
    v.split_once('=')
        .map(|(a, b)| (a.to_owned(), b.to_owned()))
        .ok_or_else(|| format!("{flag} {v}: expected NAME=VALUE"))
}

fn parse_model(v: &str) -> Result<ModelSpec, String> {
    let (name, nums) = split_pair("--model", v)?;
    let parts: Vec<&str> = nums.split('/').collect();
    let n = |i: usize| -> Result<u64, String> {
        parts
            .get(i)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| format!("--model {v}: expected NAME=SIZE/VRAM/CTX with integers"))
    };
    if parts.len() != 3 {
        return Err(format!("--model {v}: expected NAME=SIZE/VRAM/CTX"));
    }
    Ok(ModelSpec {
        name,
        size: n(0)?,
        size_vram: n(1)?,
        context: n(2)?,
    })
}

/// `OLLAMA_HOST` as Ollama reads it: `[scheme://]host[:port]`, default 127.0.0.1:11434.
pub fn ollama_host(v: Option<&str>) -> Result<SocketAddr, String> {
    let raw = v.map(str::trim).unwrap_or_default();
    let raw = raw.split_once("://").map_or(raw, |(_, rest)| rest);
    let raw = raw.trim_end_matches('/');
    let (host, port) = match raw.rsplit_once(':') {
        Some((h, p)) if !p.contains(']') => (h, p),
        _ => (raw, "11434"),
    };
    let host = if host.is_empty() { "127.0.0.1" } else { host };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let port: u16 = port
        .parse()
        .map_err(|_| format!("bad port in listen address {raw:?}"))?;
    (host, port)
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve {host}: {e}"))?
        .next()
        .ok_or_else(|| format!("no address for {host}"))
}

/// A Go `time.ParseDuration` subset (`300ms`, `5m`, `1h30m`, `-1m`, `0`), in nanoseconds.
pub fn parse_go_duration(s: &str) -> Option<i128> {
    let (neg, mut rest) = match s.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    if rest == "0" {
        return Some(0);
    }
    if rest.is_empty() {
        return None;
    }
    let mut total: i128 = 0;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        let n: i128 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let mult: i128 = match &rest[..unit_len] {
            "ns" => 1,
            "us" | "µs" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            _ => return None,
        };
        rest = &rest[unit_len..];
        total += n * mult;
    }
    Some(if neg { -total } else { total })
}

/// OLLAMA_KEEP_ALIVE as Ollama reads it: a Go duration, else integer seconds, else 5m;
/// negative means forever (math.MaxInt64 ns).
fn keep_alive_ns(v: Option<&str>) -> i128 {
    let v = v.map(|s| s.trim().trim_matches(|c| c == '"' || c == '\''));
    let parsed = v.and_then(|s| {
        parse_go_duration(s)
            .or_else(|| s.parse::<i64>().ok().map(|n| i128::from(n) * 1_000_000_000))
    });
    match parsed {
        Some(ns) if ns < 0 => i128::from(i64::MAX),
        Some(ns) => ns,
        None => 300_000_000_000,
    }
}

/// Everything the server answers, built once at start.
#[derive(Debug)]
pub struct Scenario {
    pub version: String,
    pub version_body: String,
    pub ps_body: String,
    /// `--ps FILE`, re-read on every request so a test can change what is loaded.
    pub ps_file: Option<String>,
    pub tags_body: String,
    pub show: BTreeMap<String, String>,
    pub env_body: String,
    pub slow: Duration,
}

impl Scenario {
    /// The `/api/ps` body now: the `--ps` file as it is now (as at start if it cannot be read).
    pub fn ps(&self) -> String {
        self.ps_file
            .as_ref()
            .and_then(|p| std::fs::read_to_string(p).ok())
            .unwrap_or_else(|| self.ps_body.clone())
    }

    pub fn load(o: &Options) -> Result<Scenario, String> {
        let read =
            |p: &str| std::fs::read_to_string(p).map_err(|e| format!("cannot read {p}: {e}"));
        let tags_body = match &o.tags {
            Some(p) => read(p)?,
            None => r#"{"models":[]}"#.to_owned(),
        };
        let ps_body = match &o.ps {
            Some(p) => read(p)?,
            None => generated_ps(&o.models, &tags_body)?,
        };
        let mut show = BTreeMap::new();
        for (name, path) in &o.show {
            show.insert(normalize(name), read(path)?);
        }
        let env: Vec<(String, String)> = std::env::vars()
            .filter(|(k, _)| k.starts_with("OLLAMA_") || k.starts_with("LLAMA_ARG_"))
            .collect();
        let env_body = env_json(&env);
        if let Some(p) = &o.env_file {
            std::fs::write(p, &env_body).map_err(|e| format!("cannot write {p}: {e}"))?;
        }
        Ok(Scenario {
            version: o.version.clone(),
            version_body: format!(r#"{{"version":{}}}"#, json_str(&o.version)),
            ps_body,
            ps_file: o.ps.clone(),
            tags_body,
            show,
            env_body,
            slow: o.slow,
        })
    }
}

/// A model name as `/api/show` normalizes it: a missing tag means `:latest`.
pub fn normalize(name: &str) -> String {
    let base = name.rsplit('/').next().unwrap_or(name);
    if base.contains(':') {
        name.to_owned()
    } else {
        format!("{name}:latest")
    }
}

/// JSON string as Go's encoding/json writes it (HTML characters escaped).
pub fn json_str(s: &str) -> String {
    serde_json::Value::String(s.to_owned())
        .to_string()
        .replace('<', "\\u003c")
        .replace('>', "\\u003e")
        .replace('&', "\\u0026")
}

/// `{"KEY":"value",...}`, sorted by key.
pub fn env_json(env: &[(String, String)]) -> String {
    let mut sorted: Vec<&(String, String)> = env.iter().collect();
    sorted.sort();
    let fields: Vec<String> = sorted
        .iter()
        .map(|(k, v)| format!("{}:{}", json_str(k), json_str(v)))
        .collect();
    format!("{{{}}}", fields.join(","))
}

/// `/api/ps` in Ollama's struct order: name, model, size, digest, details, expires_at,
/// size_vram, context_length.
fn generated_ps(models: &[ModelSpec], tags_body: &str) -> Result<String, String> {
    let tags: serde_json::Value =
        serde_json::from_str(tags_body).map_err(|e| format!("--tags is not JSON: {e}"))?;
    let keep = keep_alive_ns(std::env::var("OLLAMA_KEEP_ALIVE").ok().as_deref());
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i128::try_from(d.as_nanos()).unwrap_or(0));
    let expires = rfc3339_nano_utc(now + keep);
    let entries: Vec<String> = models
        .iter()
        .map(|m| {
            let listed = tags["models"]
                .as_array()
                .and_then(|a| a.iter().find(|t| t["name"] == m.name.as_str()));
            let digest = listed
                .and_then(|t| t["digest"].as_str())
                .map_or_else(|| fake_digest(&m.name), str::to_owned);
            let details = details_json(listed.map(|t| &t["details"]));
            format!(
                r#"{{"name":{n},"model":{n},"size":{},"digest":"{digest}","details":{details},"expires_at":"{expires}","size_vram":{},"context_length":{}}}"#,
                m.size,
                m.size_vram,
                m.context,
                n = json_str(&m.name),
            )
        })
        .collect();
    Ok(format!(r#"{{"models":[{}]}}"#, entries.join(",")))
}

fn details_json(d: Option<&serde_json::Value>) -> String {
    let s = |k: &str, default: &str| json_str(d.and_then(|d| d[k].as_str()).unwrap_or(default));
    let families = d
        .and_then(|d| d["families"].as_array())
        .map(|a| {
            a.iter()
                .filter_map(|f| f.as_str().map(json_str))
                .collect::<Vec<_>>()
                .join(",")
        })
        .unwrap_or_else(|| json_str("llama"));
    format!(
        r#"{{"parent_model":{},"format":{},"family":{},"families":[{families}],"parameter_size":{},"quantization_level":{}}}"#,
        s("parent_model", ""),
        s("format", "gguf"),
        s("family", "llama"),
        s("parameter_size", "8.0B"),
        s("quantization_level", "Q4_K_M"),
    )
}

/// A stable 64-hex-digit digest for a model the tags file does not list.
fn fake_digest(name: &str) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in name.bytes() {
        h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    format!("{h:016x}").repeat(4)
}
