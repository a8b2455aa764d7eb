//! Parsing the real bodies in tests/fixtures/ollama (see its README for their provenance).

use super::*;

fn fixture(name: &str) -> Vec<u8> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures/ollama")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn ps_real_capture_one_model_in_vram() {
    let models = parse_ps(&fixture("ps-one-model-gpu.json")).unwrap();
    assert_eq!(models.len(), 1);
    let m = &models[0];
    assert_eq!(m.name, "qwen2.5:0.5b");
    assert_eq!(m.size, 928_755_219);
    assert_eq!(m.size_vram, 928_755_219);
    assert_eq!(m.size_ram(), 0);
    assert_eq!(m.context_length, Some(32768));
    assert_eq!(m.details.family, "qwen2");
}

#[test]
fn ps_partial_offload_spills_to_ram() {
    let m = &parse_ps(&fixture("ps-partial-offload.SYNTHETIC.json")).unwrap()[0];
    assert_eq!(m.size_ram(), 6_544_691_200 - 3_403_239_424);
}

#[test]
fn ps_empty_and_pre_context_length_format() {
    assert!(parse_ps(&fixture("ps-empty.json")).unwrap().is_empty());
    // 2024 capture: no context_length yet.
    let old = fixture("ps-one-model-gpu-2024-real.json");
    assert_eq!(parse_ps(&old).unwrap()[0].context_length, None);
    assert!(matches!(
        parse_ps(b"{\"models\":null}"),
        Err(ApiError::Body { .. })
    ));
}

#[test]
fn version_real() {
    assert_eq!(parse_version(&fixture("version.json")).unwrap(), "0.30.11");
}

#[test]
fn show_llama31_architecture() {
    let a = parse_show(&fixture("show-llama3.1-8b-q4km-real.json")).unwrap();
    assert_eq!(a, llama31());
}

#[test]
fn show_embedding_model_is_embedding_only() {
    let a = parse_show(&fixture("show-nomic-embed-text-real.json")).unwrap();
    assert_eq!(a.arch, "nomic-bert");
    assert!(a.embedding_only);
    // No head_count_kv: every head is a KV head.
    assert_eq!(a.head_count_kv, 12);
    assert_eq!(a.context_length, 2048);
}

#[test]
fn show_per_layer_kv_heads_and_capabilities() {
    let body = br#"{"model_info":{"general.architecture":"x","x.block_count":3,"x.embedding_length":64,"x.attention.head_count":4,"x.attention.head_count_kv":[2,0,2],"x.attention.key_length":32,"x.attention.value_length":16},"capabilities":["embedding"]}"#;
    let a = parse_show(body).unwrap();
    assert_eq!((a.head_count_kv, a.kv_heads_all_layers), (2, 4));
    assert_eq!((a.key_length, a.value_length), (32, 16));
    assert!(a.embedding_only);
    assert!(parse_show(br#"{"model_info":{}}"#).is_err());
}

#[tokio::test]
async fn refused_connection_names_the_address() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let api = Api::new(&format!("http://{addr}"), Duration::from_secs(2)).unwrap();
    let err = api.probe().await.unwrap_err();
    assert_eq!(err.to_string(), format!("nothing listening on {addr}"));
}

#[test]
fn bad_urls_are_refused_with_the_url() {
    let e = Api::new("ftp://x", Duration::from_secs(1)).err().unwrap();
    assert!(e.to_string().contains("ftp://x"), "{e}");
    assert!(Api::new("not a url", Duration::from_secs(1)).is_err());
}

/// One connection answered with `answer`, the request's first line sent back on `asked`.
async fn answer_once(answer: &'static [u8]) -> (String, tokio::sync::oneshot::Receiver<String>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", l.local_addr().unwrap());
    let (tx, rx) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        let (mut s, _) = l.accept().await.unwrap();
        let mut buf = [0u8; 1024];
        let n = s.read(&mut buf).await.unwrap();
        let first = String::from_utf8_lossy(&buf[..n])
            .lines()
            .next()
            .unwrap_or_default()
            .to_owned();
        tx.send(first).unwrap();
        s.write_all(answer).await.unwrap();
    });
    (base, rx)
}

#[tokio::test]
async fn the_idle_poll_reads_a_chunked_ps_from_a_real_listener() {
    let (base, asked) = answer_once(
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n3\r\n{\"m\r\na\r\nodels\":[]}\r\n0\r\n\r\n",
    )
    .await;
    let api = Api::new(&base, Duration::from_secs(5)).unwrap();
    assert_eq!(api.ps_within(Duration::from_secs(5)).await.unwrap(), vec![]);
    assert_eq!(asked.await.unwrap(), "GET /api/ps HTTP/1.1");
}

#[tokio::test]
async fn the_verify_probe_returns_any_status_and_names_a_dead_port() {
    let (base, asked) =
        answer_once(b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n").await;
    let api = Api::new(&base, Duration::from_secs(5)).unwrap();
    assert_eq!(api.head_status(Duration::from_secs(5)).await.unwrap(), 503);
    assert_eq!(asked.await.unwrap(), "HEAD / HTTP/1.1");
    let dead = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = dead.local_addr().unwrap();
    drop(dead);
    let api = Api::new(&format!("http://{addr}"), Duration::from_secs(5)).unwrap();
    assert_eq!(
        api.head_status(Duration::from_secs(5)).await,
        Err(ApiError::Refused(addr.to_string()))
    );
}

#[tokio::test]
async fn a_content_length_over_the_cap_is_refused_before_the_body() {
    // The body never comes: only the header can end this before the deadline.
    let (base, _asked) =
        answer_once(b"HTTP/1.1 200 OK\r\nContent-Length: 104857600\r\n\r\n{").await;
    let api = Api::new(&base, Duration::from_secs(30)).unwrap();
    let e = api.ps_within(Duration::from_secs(30)).await.unwrap_err();
    assert!(matches!(e, ApiError::TooLarge { .. }), "{e}");
    assert!(e.to_string().contains("more than 16 MiB"), "{e}");
}

#[tokio::test]
async fn a_chunked_body_without_end_is_cut_at_the_cap() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", l.local_addr().unwrap());
    let sent = tokio::spawn(async move {
        let (mut s, _) = l.accept().await.unwrap();
        let mut buf = [0u8; 1024];
        let _n = s.read(&mut buf).await.unwrap();
        s.write_all(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
            .await
            .unwrap();
        let mut chunk = b"10000\r\n".to_vec();
        chunk.extend(std::iter::repeat_n(b' ', 0x10000));
        chunk.extend(b"\r\n");
        let mut sent = 0u64;
        // Until the client hangs up.
        while s.write_all(&chunk).await.is_ok() {
            sent += 0x10000;
        }
        sent
    });
    let api = Api::new(&base, Duration::from_secs(60)).unwrap();
    let e = api.ps_within(Duration::from_secs(60)).await.unwrap_err();
    assert!(matches!(e, ApiError::TooLarge { .. }), "{e}");
    drop(api);
    let sent = sent.await.unwrap();
    assert!(sent < 2 * MAX_BODY, "{sent} bytes sent");
}
