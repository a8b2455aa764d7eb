//! A minimal HTTP/1.1 server: keep-alive, Content-Length bodies, and the answers Ollama's gin
//! router gives (JSON `application/json; charset=utf-8`, text `text/plain; charset=utf-8`,
//! `404 page not found`, `405 method not allowed`). Headers are written in Go's sorted order.

use std::time::{SystemTime, UNIX_EPOCH};

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use crate::scenario::{Scenario, json_str, normalize};
use crate::time::http_date;

const JSON: &str = "application/json; charset=utf-8";
const TEXT: &str = "text/plain; charset=utf-8";
/// Requests larger than this are refused (Ollama's bodies here are tiny).
const MAX_HEAD: usize = 64 * 1024;
const MAX_BODY: usize = 1024 * 1024;

struct Request {
    method: String,
    path: String,
    body: Vec<u8>,
    close: bool,
}

struct Response {
    status: u16,
    content_type: &'static str,
    body: String,
}

impl Response {
    fn json(status: u16, body: impl Into<String>) -> Self {
        Response {
            status,
            content_type: JSON,
            body: body.into(),
        }
    }
    fn text(status: u16, body: &str) -> Self {
        Response {
            status,
            content_type: TEXT,
            body: body.to_owned(),
        }
    }
}

pub async fn handle_connection(stream: TcpStream, scenario: &Scenario) -> std::io::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut reader = BufReader::new(read);
    while let Some(req) = read_request(&mut reader).await? {
        let api = req.path != "/__env";
        if api && !scenario.slow.is_zero() {
            tokio::time::sleep(scenario.slow).await;
        }
        let resp = route(&req, scenario);
        write_response(&mut write, &resp, req.method == "HEAD", req.close).await?;
        if req.close {
            break;
        }
    }
    Ok(())
}

async fn read_request<R: tokio::io::AsyncBufRead + Unpin>(
    r: &mut R,
) -> std::io::Result<Option<Request>> {
    let mut line = String::new();
    if r.read_line(&mut line).await? == 0 {
        return Ok(None);
    }
    let mut parts = line.split_whitespace();
    let (Some(method), Some(target), version) = (parts.next(), parts.next(), parts.next()) else {
        return Err(bad("malformed request line"));
    };
    let method = method.to_owned();
    let path = target.split('?').next().unwrap_or(target).to_owned();
    let mut close = version == Some("HTTP/1.0");
    let mut length = 0usize;
    let mut head = line.len();
    loop {
        let mut h = String::new();
        let n = r.read_line(&mut h).await?;
        head += n;
        if n == 0 || head > MAX_HEAD {
            return Err(bad("request head truncated or too long"));
        }
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some((name, value)) = h.split_once(':') {
            let value = value.trim();
            match name.trim().to_ascii_lowercase().as_str() {
                "content-length" => {
                    length = value.parse().map_err(|_| bad("bad content-length"))?;
                }
                "connection" => close = value.eq_ignore_ascii_case("close"),
                _ => {}
            }
        }
    }
    if length > MAX_BODY {
        return Err(bad("request body too large"));
    }
    let mut body = vec![0; length];
    r.read_exact(&mut body).await?;
    Ok(Some(Request {
        method,
        path,
        body,
        close,
    }))
}

fn bad(what: &str) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, what.to_owned())
}

fn route(req: &Request, s: &Scenario) -> Response {
    let m = req.method.as_str();
    let get = m == "GET" || m == "HEAD";
    match req.path.as_str() {
        "/" if get => Response::text(200, "Ollama is running"),
        "/api/version" if get => Response::json(200, s.version_body.clone()),
        "/api/ps" if m == "GET" => Response::json(200, s.ps()),
        "/api/tags" if get => Response::json(200, s.tags_body.clone()),
        "/api/show" if m == "POST" => show(&req.body, s),
        "/__env" if m == "GET" => Response::json(200, s.env_body.clone()),
        "/" | "/api/version" | "/api/ps" | "/api/tags" | "/api/show" | "/__env" => {
            Response::text(405, "405 method not allowed")
        }
        _ => Response::text(404, "404 page not found"),
    }
}

/// `POST /api/show {"model": NAME}` (older clients send `name`).
fn show(body: &[u8], s: &Scenario) -> Response {
    let req: serde_json::Value = match serde_json::from_slice(body) {
        Ok(v) => v,
        Err(e) => {
            return Response::json(400, format!(r#"{{"error":{}}}"#, json_str(&e.to_string())));
        }
    };
    let name = req["model"]
        .as_str()
        .filter(|n| !n.is_empty())
        .or_else(|| req["name"].as_str());
    let Some(name) = name.filter(|n| !n.is_empty()) else {
        return Response::json(400, r#"{"error":"model is required"}"#);
    };
    let name = normalize(name);
    match s.show.get(&name) {
        Some(body) => Response::json(200, body.clone()),
        None => Response::json(
            404,
            format!(
                r#"{{"error":{}}}"#,
                json_str(&format!("model '{name}' not found"))
            ),
        ),
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        _ => "Internal Server Error",
    }
}

async fn write_response<W: tokio::io::AsyncWrite + Unpin>(
    w: &mut W,
    resp: &Response,
    head_only: bool,
    close: bool,
) -> std::io::Result<()> {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(0));
    let mut out = format!(
        "HTTP/1.1 {} {}\r\n{}Content-Length: {}\r\nContent-Type: {}\r\nDate: {}\r\n\r\n",
        resp.status,
        reason(resp.status),
        if close { "Connection: close\r\n" } else { "" },
        resp.body.len(),
        resp.content_type,
        http_date(now),
    );
    if !head_only {
        out.push_str(&resp.body);
    }
    w.write_all(out.as_bytes()).await?;
    w.flush().await
}
