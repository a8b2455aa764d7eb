use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use super::{Client, HttpError};

fn client(timeout: Duration, limit: usize) -> Client {
    Client::new(crate::sys::tls::plaintext_config().unwrap(), timeout, limit)
}

fn get(url: &str) -> Request<Bytes> {
    Request::get(url).body(Bytes::new()).unwrap()
}

/// Answers every request on every connection with `answer`; counts the connections.
async fn keep_alive_server(answer: &'static [u8]) -> (String, Arc<AtomicUsize>) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/", l.local_addr().unwrap());
    let connections = Arc::new(AtomicUsize::new(0));
    let counted = connections.clone();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            counted.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                while let Ok(n) = s.read(&mut buf).await {
                    if n == 0 || s.write_all(answer).await.is_err() {
                        break;
                    }
                }
            });
        }
    });
    (url, connections)
}

#[tokio::test]
async fn requests_reuse_one_connection_and_read_the_body() {
    let (url, connections) =
        keep_alive_server(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello").await;
    let c = client(Duration::from_secs(5), 1024);
    for _ in 0..3 {
        let r = c.send(get(&url)).await.unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(r.body().as_ref(), b"hello");
    }
    assert_eq!(connections.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_post_carries_its_body_and_headers() {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/api/v2/alerts", l.local_addr().unwrap());
    let seen = tokio::spawn(async move {
        let (mut s, _) = l.accept().await.unwrap();
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        while !got.ends_with(b"[1]") {
            let n = s.read(&mut buf).await.unwrap();
            assert!(n > 0, "closed early");
            got.extend_from_slice(&buf[..n]);
        }
        s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
            .await
            .unwrap();
        String::from_utf8(got).unwrap()
    });
    let request = Request::builder()
        .method(Method::POST)
        .uri(&url)
        .header(http::header::AUTHORIZATION, "Bearer t0ken")
        .body(Bytes::from_static(b"[1]"))
        .unwrap();
    let r = client(Duration::from_secs(5), 1024)
        .send(request)
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let seen = seen.await.unwrap().to_ascii_lowercase();
    assert!(
        seen.starts_with("post /api/v2/alerts http/1.1\r\n"),
        "{seen}"
    );
    assert!(seen.contains("\r\nhost: 127.0.0.1:"), "{seen}");
    assert!(
        seen.contains("\r\nauthorization: bearer t0ken\r\n"),
        "{seen}"
    );
    assert!(seen.contains("\r\ncontent-length: 3\r\n"), "{seen}");
}

#[tokio::test]
async fn a_server_that_never_answers_times_out() {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/", l.local_addr().unwrap());
    let _held = tokio::spawn(async move {
        let (s, _) = l.accept().await.unwrap();
        tokio::time::sleep(Duration::from_secs(30)).await;
        drop(s);
    });
    let e = client(Duration::from_millis(200), 1024)
        .send(get(&url))
        .await
        .unwrap_err();
    assert!(matches!(e, HttpError::Timeout(_)), "{e}");
    assert_eq!(e.to_string(), "no answer within 200ms");
}

#[tokio::test]
async fn a_refused_connection_says_so_in_its_chain() {
    let dead = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/", dead.local_addr().unwrap());
    drop(dead);
    let e = client(Duration::from_secs(5), 1024)
        .send(get(&url))
        .await
        .unwrap_err();
    assert!(e.is_refused(), "{e:?}");
    let text = chain_text(&e);
    assert!(
        text.contains("tcp connect error: Connection refused"),
        "{text}"
    );
}

#[tokio::test]
async fn a_body_over_the_limit_is_refused() {
    let (url, _) = keep_alive_server(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello").await;
    let e = client(Duration::from_secs(5), 4)
        .send(get(&url))
        .await
        .unwrap_err();
    assert!(matches!(e, HttpError::TooLarge { limit: 4 }), "{e}");
    let (url, _) = keep_alive_server(
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    )
    .await;
    let e = client(Duration::from_secs(5), 4)
        .send(get(&url))
        .await
        .unwrap_err();
    assert!(matches!(e, HttpError::TooLarge { limit: 4 }), "{e}");
}

#[tokio::test]
async fn an_https_url_to_an_untrusted_server_fails_in_tls() {
    // A plain-HTTP listener answering the ClientHello with garbage: the handshake fails
    // and the error says where.
    let (url, _) = keep_alive_server(b"HTTP/1.1 400 Bad Request\r\n\r\n").await;
    let url = url.replace("http://", "https://");
    let e = client(Duration::from_secs(5), 1024)
        .send(get(&url))
        .await
        .unwrap_err();
    let text = chain_text(&e);
    assert!(text.contains("tls connect error"), "{text}");
    assert!(!e.is_refused());
}

/// The error and its sources, `: `-separated, as `Diagnosis` reads them.
fn chain_text(e: &HttpError) -> String {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}
