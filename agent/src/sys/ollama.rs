//! Ollama's HTTP API, the one client for it (sys/http.rs): `HEAD /` (liveness, and the tuner's
//! check that a restarted server answers), `/api/version`, `/api/ps` (the collector's models and
//! the idle check's expiries) and `POST /api/show`, each under `[ollama] probe_timeout` unless a
//! caller gives its own deadline. Parsing is separate from I/O so the real captured bodies in
//! tests/fixtures/ollama can be fed to it directly.

use std::time::{Duration, UNIX_EPOCH};

use bytes::Bytes;
use http::{HeaderValue, Method, Request, Uri};
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use super::http::url as http_url;
use super::http::{Client, HttpError};

/// Why an API call failed, in words for the collector's status.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApiError {
    #[error("nothing listening on {0}")]
    Refused(String),
    #[error("{what} did not answer within {}", humantime::format_duration(*.timeout))]
    Timeout {
        what: &'static str,
        timeout: Duration,
    },
    #[error("{what} failed: {error}")]
    Transport { what: &'static str, error: String },
    #[error("{what} answered HTTP {status}")]
    Status { what: &'static str, status: u16 },
    #[error("{what} sent a body that is not what Ollama sends: {error}")]
    Body { what: &'static str, error: String },
    #[error(
        "{what} sent more than {} MiB; refused (no Ollama answer the agent reads is that large)",
        MAX_BODY / (1024 * 1024)
    )]
    TooLarge { what: &'static str },
    #[error("invalid [ollama] url {url:?}: {error}")]
    Url { url: String, error: String },
}

/// A model in `/api/ps`. Fields Ollama added later are optional (`context_length` since v0.10).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PsModel {
    pub name: String,
    #[serde(default)]
    pub model: String,
    pub size: u64,
    #[serde(default)]
    pub digest: String,
    #[serde(default)]
    pub details: PsDetails,
    #[serde(default)]
    pub expires_at: String,
    /// Always present since v0.1.42; 0 on a CPU-only host.
    #[serde(default)]
    pub size_vram: u64,
    #[serde(default)]
    pub context_length: Option<u64>,
}

impl PsModel {
    /// Bytes not in VRAM: the spill to CPU memory.
    pub fn size_ram(&self) -> u64 {
        self.size.saturating_sub(self.size_vram)
    }

    /// `expires_at` in Unix milliseconds; `None` when absent or unreadable.
    pub fn expires_at_ms(&self) -> Option<i64> {
        rfc3339_ms(&self.expires_at)
    }
}

/// Go's RFC 3339 with nanoseconds and a zone (`2024-06-04T14:38:31.83753-07:00`, `...Z`), as
/// Ollama writes `expires_at`.
pub fn rfc3339_ms(s: &str) -> Option<i64> {
    let base = humantime::parse_rfc3339(&format!("{}Z", s.get(..19)?)).ok()?;
    let base_ms = i64::try_from(base.duration_since(UNIX_EPOCH).ok()?.as_millis()).ok()?;
    let mut rest = s.get(19..)?;
    let mut frac_ms = 0i64;
    if let Some(r) = rest.strip_prefix('.') {
        let digits = r.chars().take_while(char::is_ascii_digit).count();
        let padded = format!("{:0<3}", &r[..digits.min(3)]);
        frac_ms = padded.parse().ok()?;
        rest = &r[digits..];
    }
    let offset_ms = match rest {
        "Z" => 0,
        o if o.len() == 6 => {
            let sign = if o.starts_with('-') { -1 } else { 1 };
            let h: i64 = o.get(1..3)?.parse().ok()?;
            let m: i64 = o.get(4..6)?.parse().ok()?;
            sign * (h * 3600 + m * 60) * 1000
        }
        _ => return None,
    };
    Some(base_ms + frac_ms - offset_ms)
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PsDetails {
    #[serde(default)]
    pub family: String,
    #[serde(default)]
    pub families: Option<Vec<String>>,
    #[serde(default)]
    pub parameter_size: String,
    #[serde(default)]
    pub quantization_level: String,
}

#[derive(Deserialize)]
struct PsBody {
    models: Vec<PsModel>,
}

pub fn parse_ps(body: &[u8]) -> Result<Vec<PsModel>, ApiError> {
    serde_json::from_slice::<PsBody>(body)
        .map(|b| b.models)
        .map_err(|e| ApiError::Body {
            what: "/api/ps",
            error: e.to_string(),
        })
}

pub fn parse_version(body: &[u8]) -> Result<String, ApiError> {
    #[derive(Deserialize)]
    struct V {
        version: String,
    }
    serde_json::from_slice::<V>(body)
        .map(|v| v.version)
        .map_err(|e| ApiError::Body {
            what: "/api/version",
            error: e.to_string(),
        })
}

/// The architecture facts the KV-cache arithmetic needs, from `/api/show`'s `model_info`
/// (keys `<arch>.block_count`, `<arch>.attention.head_count_kv`, ...).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Architecture {
    /// `general.architecture` (`llama`, `nomic-bert`, `qwen35`).
    pub arch: String,
    pub block_count: u64,
    pub embedding_length: u64,
    pub head_count: u64,
    /// Largest per-layer KV head count (a scalar in most models, a per-layer array in some).
    pub head_count_kv: u64,
    /// Sum of the KV heads over all layers: the factor in bytes per token.
    pub kv_heads_all_layers: u64,
    /// `attention.key_length`, else embedding_length / head_count (Ollama's default).
    pub key_length: u64,
    pub value_length: u64,
    /// Trained context length; Ollama caps num_ctx at it.
    pub context_length: u64,
    /// An embedding model (`<arch>.pooling_type` present, or no `completion` capability):
    /// Ollama forces it to one slot.
    pub embedding_only: bool,
}

/// llama3.1:8b as its real `/api/show` describes it (tests/fixtures/ollama): the model the
/// arithmetic tests and the parser tests share.
#[cfg(test)]
pub(crate) fn llama31() -> Architecture {
    Architecture {
        arch: "llama".into(),
        block_count: 32,
        embedding_length: 4096,
        head_count: 32,
        head_count_kv: 8,
        kv_heads_all_layers: 256,
        key_length: 128,
        value_length: 128,
        context_length: 131_072,
        embedding_only: false,
    }
}

pub fn parse_show(body: &[u8]) -> Result<Architecture, ApiError> {
    let bad = |error: String| ApiError::Body {
        what: "/api/show",
        error,
    };
    let v: serde_json::Value = serde_json::from_slice(body).map_err(|e| bad(e.to_string()))?;
    let info = v["model_info"]
        .as_object()
        .ok_or_else(|| bad("no model_info object".to_owned()))?;
    let arch = info
        .get("general.architecture")
        .and_then(|a| a.as_str())
        .ok_or_else(|| bad("model_info has no general.architecture".to_owned()))?
        .to_owned();
    let num = |key: &str| info.get(&format!("{arch}.{key}")).and_then(|v| v.as_u64());
    let need = |key: &str| num(key).ok_or_else(|| bad(format!("model_info has no {arch}.{key}")));
    let block_count = need("block_count")?;
    let embedding_length = need("embedding_length")?;
    let head_count = need("attention.head_count")?.max(1);
    // head_count_kv is a number, or one number per layer; absent means no GQA (= head_count).
    let (head_count_kv, kv_heads_all_layers) =
        match info.get(&format!("{arch}.attention.head_count_kv")) {
            Some(serde_json::Value::Array(per_layer)) => {
                let heads: Vec<u64> = per_layer
                    .iter()
                    .filter_map(serde_json::Value::as_u64)
                    .collect();
                (heads.iter().copied().max().unwrap_or(0), heads.iter().sum())
            }
            Some(v) => {
                let h = v.as_u64().unwrap_or(head_count);
                (h, h * block_count)
            }
            None => (head_count, head_count * block_count),
        };
    let head_dim = embedding_length / head_count;
    let pooling = info.contains_key(&format!("{arch}.pooling_type"));
    let no_completion = v["capabilities"]
        .as_array()
        .is_some_and(|c| !c.iter().any(|x| x == "completion"));
    Ok(Architecture {
        block_count,
        embedding_length,
        head_count,
        head_count_kv,
        kv_heads_all_layers,
        key_length: num("attention.key_length").unwrap_or(head_dim),
        value_length: num("attention.value_length").unwrap_or(head_dim),
        context_length: num("context_length").unwrap_or(0),
        embedding_only: pooling || no_completion,
        arch,
    })
}

/// Largest body read from Ollama. `/api/show` (license, template, model_info) is tens of KiB
/// and `/api/ps` about 1 KiB per loaded model; 16 MiB leaves room for any real answer while a
/// 100 MB answer (337 MB peak, read whole every tick) is refused.
pub const MAX_BODY: u64 = 16 * 1024 * 1024;

/// The HTTP client, bound to one base URL. Cloning shares the connection pool.
#[derive(Clone)]
pub struct Api {
    client: Client,
    base: Uri,
    /// `host:port`, for "nothing listening on ...".
    authority: String,
    timeout: Duration,
}

impl Api {
    pub fn new(url: &str, timeout: Duration) -> Result<Api, ApiError> {
        let url_err = |error: String| ApiError::Url {
            url: url.to_owned(),
            error,
        };
        let base = http_url::parse(url).map_err(|e| url_err(e.to_string()))?;
        let authority = format!(
            "{}:{}",
            base.host().unwrap_or_default(),
            http_url::port(&base)
        );
        // Ollama is spoken to over http only; the configuration trusts nothing. The client
        // uses no proxy: Ollama is local, and an HTTP_PROXY meant for downloads must not
        // catch it.
        let tls = super::tls::plaintext_config().map_err(|e| url_err(e.to_string()))?;
        let client = Client::new(tls, timeout, MAX_BODY as usize);
        Ok(Api {
            client,
            base,
            authority,
            timeout,
        })
    }

    /// A request for `path` on the base URL's host (the base's own path is replaced).
    fn request(&self, method: Method, path: &str, body: Bytes) -> Result<Request<Bytes>, ApiError> {
        let uri = http_url::with_path(&self.base, path).map_err(|e| ApiError::Url {
            url: self.base.to_string(),
            error: e.to_string(),
        })?;
        let mut request = Request::new(body);
        *request.method_mut() = method;
        *request.uri_mut() = uri;
        if !request.body().is_empty() {
            request.headers_mut().insert(
                http::header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
        }
        Ok(request)
    }

    fn map_err_within(&self, what: &'static str, e: &HttpError, timeout: Duration) -> ApiError {
        match e {
            HttpError::Timeout(_) => ApiError::Timeout { what, timeout },
            HttpError::TooLarge { .. } => ApiError::TooLarge { what },
            e if e.is_refused() => ApiError::Refused(self.authority.clone()),
            e => ApiError::Transport {
                what,
                error: error_chain(e),
            },
        }
    }

    async fn send(&self, what: &'static str, req: Request<Bytes>) -> Result<Bytes, ApiError> {
        self.send_within(what, req, self.timeout).await
    }

    /// Sends `req` within `timeout`; anything but 200 is an error. The body is refused from
    /// its Content-Length when that is over [`MAX_BODY`], and otherwise read up to the cap,
    /// so a chunked body without end stops there too.
    async fn send_within(
        &self,
        what: &'static str,
        req: Request<Bytes>,
        timeout: Duration,
    ) -> Result<Bytes, ApiError> {
        let resp = self
            .client
            .send_within(req, timeout)
            .await
            .map_err(|e| self.map_err_within(what, &e, timeout))?;
        let status = resp.status().as_u16();
        if status != 200 {
            return Err(ApiError::Status { what, status });
        }
        Ok(resp.into_body())
    }

    /// `HEAD /`: the liveness probe. Returns the round trip.
    pub async fn probe(&self) -> Result<Duration, ApiError> {
        let started = Instant::now();
        let req = self.request(Method::HEAD, "/", Bytes::new())?;
        self.send("HEAD /", req).await?;
        Ok(started.elapsed())
    }

    /// `HEAD /` within `timeout`, whatever status it answers: the tuner's verify probe judges
    /// the status itself (any answer below 500 means the server is up).
    pub async fn head_status(&self, timeout: Duration) -> Result<u16, ApiError> {
        let what = "HEAD /";
        let req = self.request(Method::HEAD, "/", Bytes::new())?;
        let resp = self
            .client
            .send_within(req, timeout)
            .await
            .map_err(|e| self.map_err_within(what, &e, timeout))?;
        Ok(resp.status().as_u16())
    }

    pub async fn version(&self) -> Result<String, ApiError> {
        let req = self.request(Method::GET, "/api/version", Bytes::new())?;
        parse_version(&self.send("/api/version", req).await?)
    }

    pub async fn ps(&self) -> Result<Vec<PsModel>, ApiError> {
        let req = self.request(Method::GET, "/api/ps", Bytes::new())?;
        parse_ps(&self.send("/api/ps", req).await?)
    }

    /// `/api/ps` under its own deadline (the tuner's idle poll).
    pub async fn ps_within(&self, timeout: Duration) -> Result<Vec<PsModel>, ApiError> {
        let req = self.request(Method::GET, "/api/ps", Bytes::new())?;
        parse_ps(&self.send_within("/api/ps", req, timeout).await?)
    }

    pub async fn show(&self, model: &str) -> Result<Architecture, ApiError> {
        let body = serde_json::json!({ "model": model }).to_string();
        let req = self.request(Method::POST, "/api/show", Bytes::from(body))?;
        parse_show(&self.send("/api/show", req).await?)
    }
}

/// The request error and every cause under it: the top-level text ("error sending request")
/// is vague; the causes say what broke.
fn error_chain(e: &HttpError) -> String {
    let mut parts = vec![e.to_string()];
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        parts.push(s.to_string());
        source = s.source();
    }
    parts.join(": ")
}

#[cfg(test)]
mod tests;
