//! The two HTTP calls the tuner makes to Ollama itself: `HEAD /` to verify a restarted server
//! answers, and `GET /api/ps` to judge idleness. Plain HTTP/1.1 over a TCP stream (Ollama serves
//! no TLS); one request per connection.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error("{0} is not an http://host:port URL")]
    BadUrl(String),
    #[error("{url}: {source}")]
    Io {
        url: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{url}: no answer within {}", humantime::format_duration(*after))]
    Timeout { url: String, after: Duration },
    #[error("{url}: malformed HTTP response")]
    Malformed { url: String },
}

/// A response's status and body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub body: Vec<u8>,
}

fn authority(base: &str) -> Result<String, ProbeError> {
    let rest = base
        .strip_prefix("http://")
        .ok_or_else(|| ProbeError::BadUrl(base.to_owned()))?;
    let host = rest.split('/').next().unwrap_or_default();
    if host.is_empty() {
        return Err(ProbeError::BadUrl(base.to_owned()));
    }
    Ok(
        if host
            .rsplit_once(':')
            .is_some_and(|(_, p)| p.parse::<u16>().is_ok())
        {
            host.to_owned()
        } else {
            format!("{host}:80")
        },
    )
}

/// One request to `base` + `path` with a deadline on the whole exchange.
pub async fn request(
    base: &str,
    method: &str,
    path: &str,
    timeout: Duration,
) -> Result<Response, ProbeError> {
    let url = format!("{}{path}", base.trim_end_matches('/'));
    let auth = authority(base)?;
    let exchange = async {
        let io = |source| ProbeError::Io {
            url: url.clone(),
            source,
        };
        let mut s = TcpStream::connect(&auth).await.map_err(io)?;
        let req = format!(
            "{method} {path} HTTP/1.1\r\nHost: {auth}\r\nUser-Agent: hostwarden\r\nConnection: close\r\n\r\n"
        );
        s.write_all(req.as_bytes()).await.map_err(io)?;
        let mut raw = Vec::new();
        s.read_to_end(&mut raw).await.map_err(io)?;
        parse_response(&raw, method == "HEAD")
            .ok_or_else(|| ProbeError::Malformed { url: url.clone() })
    };
    tokio::time::timeout(timeout, exchange)
        .await
        .map_err(|_| ProbeError::Timeout {
            url: url.clone(),
            after: timeout,
        })?
}

fn parse_response(raw: &[u8], head: bool) -> Option<Response> {
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n")?;
    let header = std::str::from_utf8(&raw[..split]).ok()?;
    let mut lines = header.split("\r\n");
    let status: u16 = lines.next()?.split(' ').nth(1)?.parse().ok()?;
    let body = &raw[split + 4..];
    if head {
        return Some(Response {
            status,
            body: Vec::new(),
        });
    }
    let chunked = lines.any(|l| {
        l.to_ascii_lowercase()
            .starts_with("transfer-encoding: chunked")
    });
    let body = if chunked {
        dechunk(body)?
    } else {
        body.to_vec()
    };
    Some(Response { status, body })
}

fn dechunk(mut b: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let eol = b.windows(2).position(|w| w == b"\r\n")?;
        let size_text = std::str::from_utf8(&b[..eol]).ok()?;
        let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
        b = &b[eol + 2..];
        if size == 0 {
            return Some(out);
        }
        out.extend_from_slice(b.get(..size)?);
        b = b.get(size + 2..)?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_plain_and_chunked_bodies() {
        let plain = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}";
        assert_eq!(parse_response(plain, false).unwrap().body, b"{}");
        let chunked =
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\n{\"a\r\n4\r\n\":1}\r\n0\r\n\r\n";
        assert_eq!(parse_response(chunked, false).unwrap().body, b"{\"a\":1}");
        assert_eq!(parse_response(b"garbage", false), None);
    }

    #[test]
    fn authority_defaults_the_port() {
        assert_eq!(
            authority("http://127.0.0.1:11434").unwrap(),
            "127.0.0.1:11434"
        );
        assert_eq!(authority("http://ollama/").unwrap(), "ollama:80");
        assert!(authority("https://x").is_err());
    }

    #[tokio::test]
    async fn talks_to_a_real_listener() {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", l.local_addr().unwrap());
        let server = tokio::spawn(async move {
            let (mut s, _) = l.accept().await.unwrap();
            let mut buf = [0u8; 1024];
            let n = s.read(&mut buf).await.unwrap();
            assert!(buf[..n].starts_with(b"GET /api/ps HTTP/1.1\r\n"));
            s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 13\r\n\r\n{\"models\":[]}")
                .await
                .unwrap();
        });
        let r = request(&base, "GET", "/api/ps", Duration::from_secs(5))
            .await
            .unwrap();
        assert_eq!(
            (r.status, r.body.as_slice()),
            (200, &b"{\"models\":[]}"[..])
        );
        server.await.unwrap();
    }
}
