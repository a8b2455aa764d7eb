//! The stand-in answers like Ollama on the wire, reports its environment and fails on demand.

#[cfg(test)]
mod standin {
    use std::io::{Read, Write};
    use std::net::TcpStream;
    use std::process::Command;

    use hostwarden_tests::standin::{Standin, fixtures, standin_bin};

    fn raw(addr: std::net::SocketAddr, request: &str) -> String {
        let mut s = TcpStream::connect(addr).unwrap();
        s.write_all(request.as_bytes()).unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        // The Date header changes every second; everything else is fixed.
        out.split("\r\n")
            .filter(|l| !l.starts_with("Date: "))
            .collect::<Vec<_>>()
            .join("\n")
    }

    #[test]
    fn answers_like_ollama_on_the_wire() {
        let body = std::fs::read_to_string(fixtures().join("version.json")).unwrap();
        let s = Standin::start(&[], &[]);
        let close = "Connection: close\r\n\r\n";
        assert_eq!(
            raw(s.addr, &format!("HEAD / HTTP/1.1\r\nHost: x\r\n{close}")),
            "HTTP/1.1 200 OK\nConnection: close\nContent-Length: 17\nContent-Type: text/plain; charset=utf-8\n\n"
        );
        assert_eq!(
            raw(s.addr, &format!("GET /api/version HTTP/1.1\r\n{close}")),
            format!(
                "HTTP/1.1 200 OK\nConnection: close\nContent-Length: 21\nContent-Type: application/json; charset=utf-8\n\n{body}"
            )
        );
        assert!(
            raw(s.addr, &format!("GET /api/ps HTTP/1.1\r\n{close}"))
                .ends_with("\n\n{\"models\":[]}")
        );
        assert!(
            raw(s.addr, &format!("GET /api HTTP/1.1\r\n{close}"))
                .ends_with("\n\n404 page not found")
        );
        assert!(
            raw(
                s.addr,
                &format!("POST /api/ps HTTP/1.1\r\nContent-Length: 0\r\n{close}")
            )
            .starts_with("HTTP/1.1 405 Method Not Allowed")
        );
        let show = raw(
            s.addr,
            &format!(
                "POST /api/show HTTP/1.1\r\nContent-Length: 17\r\n{close}{{\"model\":\"gemma\"}}"
            ),
        );
        assert!(
            show.ends_with("{\"error\":\"model 'gemma:latest' not found\"}"),
            "{show}"
        );
    }

    #[test]
    fn rereads_the_ps_file_on_every_request() {
        let dir = tempfile::tempdir().unwrap();
        let ps = dir.path().join("ps.json");
        std::fs::copy(fixtures().join("ps-empty.json"), &ps).unwrap();
        let s = Standin::start(&["--ps", ps.to_str().unwrap()], &[]);
        let get = "GET /api/ps HTTP/1.1\r\nConnection: close\r\n\r\n";
        assert!(raw(s.addr, get).ends_with("\n\n{\"models\":[]}"));
        let one = std::fs::read_to_string(fixtures().join("ps-one-model-gpu.json")).unwrap();
        std::fs::write(&ps, &one).unwrap();
        assert!(raw(s.addr, get).ends_with(&format!("\n\n{one}")));
    }

    #[test]
    fn reports_its_environment_and_fails_on_demand() {
        let s = Standin::start(
            &[],
            &[("OLLAMA_NUM_PARALLEL", "2"), ("OLLAMA_KEEP_ALIVE", "10m")],
        );
        let env = raw(s.addr, "GET /__env HTTP/1.1\r\nConnection: close\r\n\r\n");
        assert!(
            env.ends_with("{\"OLLAMA_KEEP_ALIVE\":\"10m\",\"OLLAMA_NUM_PARALLEL\":\"2\"}"),
            "{env}"
        );
        let out = Command::new(standin_bin())
            .args([
                "--listen",
                "127.0.0.1:0",
                "--fail-if",
                "OLLAMA_NUM_PARALLEL=13",
            ])
            .env("OLLAMA_NUM_PARALLEL", "\"13\"")
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1));
        assert!(String::from_utf8_lossy(&out.stderr).contains("OLLAMA_NUM_PARALLEL=13"));
    }
}
