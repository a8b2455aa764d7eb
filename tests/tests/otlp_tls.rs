//! OTLP over TLS and mTLS, for both protocols, through a real nginx (tests/src/tls.rs) in
//! front of a real receiver (rotel), with certificates the test makes with openssl: metrics
//! and alert records arrive; a collector certificate from an unknown CA, an expired one, one
//! for another name, and a client certificate the collector refuses are each logged once with
//! their reason and counted, and delivery resumes, queued alerts included, once nginx is fixed;
//! gzip shrinks what goes on the wire.

use std::path::{Path, PathBuf};
use std::process::{Child, ExitCode};
use std::time::Duration;

use hostwarden_tests::harness::Harness;
use hostwarden_tests::need::Need;
use hostwarden_tests::rotel::{
    FIRES_AT_ONCE, Lines, Received, Rotel, free_port, rotel_agent, spawn_agent,
};
use hostwarden_tests::tls::{CertFiles, Front, Nginx, Pki};

const LIMIT: Duration = Duration::from_secs(90);

const NEEDS: &[Need] = &[Need::RotelAgent, Need::Tool("nginx"), Need::Tool("openssl")];

fn main() -> ExitCode {
    let h = Harness::new();
    h.run(vec![
        h.test("metrics_and_alerts_over_tls_and_mtls_grpc", NEEDS, || {
            delivers_over_tls_and_mtls(true);
        }),
        h.test(
            "metrics_and_alerts_over_tls_and_mtls_http_protobuf",
            NEEDS,
            || delivers_over_tls_and_mtls(false),
        ),
        h.test(
            "bad_certificates_are_refused_with_their_reason_then_delivery_resumes_grpc",
            NEEDS,
            || bad_certificates(true),
        ),
        h.test(
            "bad_certificates_are_refused_with_their_reason_then_delivery_resumes_http_protobuf",
            NEEDS,
            || bad_certificates(false),
        ),
        h.test(
            "gzip_shrinks_the_requests_on_the_wire",
            NEEDS,
            gzip_on_the_wire,
        ),
    ])
}

/// rotel behind nginx, with the test's certificates, all in one directory.
struct Stack {
    pki: Pki,
    rotel: Rotel,
    nginx: Nginx,
    dir: tempfile::TempDir,
}

impl Stack {
    fn start() -> Stack {
        let dir = tempfile::tempdir().unwrap();
        let pki_dir = dir.path().join("pki");
        let nginx_dir = dir.path().join("nginx");
        std::fs::create_dir_all(&pki_dir).unwrap();
        std::fs::create_dir_all(&nginx_dir).unwrap();
        let pki = Pki::new(&pki_dir);
        let rotel = Rotel::start(
            &rotel_agent().expect("rotel-agent (checked by Need::RotelAgent)"),
            free_port(),
            free_port(),
        );
        let nginx = Nginx::start(
            &nginx_dir,
            rotel.grpc_port,
            rotel.http_port,
            &pki.server,
            &pki.ca,
        );
        Stack {
            pki,
            rotel,
            nginx,
            dir,
        }
    }

    /// Lines rotel printed so far: what a new daemon delivers comes after them.
    fn mark(&self) -> usize {
        self.rotel.lines.text().lines().count()
    }

    /// Waits until rotel, after `mark`, has received a metric export holding `metric` (with a
    /// point satisfying `point`) and the alert record.
    fn wait_for_delivery(&self, mark: usize, what: &str, done: impl Fn(&Received) -> bool) {
        self.rotel.lines.wait_until(what, LIMIT, |lines| {
            let got = Received::parse(&lines[mark.min(lines.len())..].join("\n"));
            got.metrics.contains_key("hostwarden.collector.success")
                && got
                    .logs
                    .iter()
                    .any(|l| l.body.ends_with("memory limit above one byte"))
                && done(&got)
        });
    }
}

struct Daemon {
    child: Child,
    lines: Lines,
    _dir: tempfile::TempDir,
}

impl Daemon {
    /// `hostwarden run` exporting to `url` with `export` (extra `[export.otlp]` lines).
    fn start(url: &str, grpc: bool, export: &str, rules: &str) -> Daemon {
        let dir = tempfile::tempdir().unwrap();
        let protocol = if grpc { "grpc" } else { "http/protobuf" };
        let cfg = format!(
            "[agent]\ninterval = \"500ms\"\nstate_dir = \"{d}\"\nstatus_socket = \"{d}/status.sock\"\n\n\
             [export.otlp]\nendpoint = \"{url}\"\nprotocol = \"{protocol}\"\ninterval = \"500ms\"\n{export}\n{rules}",
            d = dir.path().display(),
        );
        let path = dir.path().join("hostwarden.toml");
        std::fs::write(&path, cfg).unwrap();
        let (child, lines) = spawn_agent(&path);
        Daemon {
            child,
            lines,
            _dir: dir,
        }
    }

    /// Log lines that report `cause` for `signal`.
    fn cause_lines(&self, signal: &str, cause: &str) -> usize {
        self.lines
            .text()
            .lines()
            .filter(|l| {
                l.contains("logged once per cause")
                    && l.contains(&format!("signal=\"{signal}\""))
                    && l.contains(&format!("cause=\"{cause}\""))
            })
            .count()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _killed = self.child.kill();
        let _waited = self.child.wait();
    }
}

/// The highest `failures=N` the metric exporter's warnings reported (it warns at powers of two).
fn metric_failures(text: &str) -> u64 {
    text.lines()
        .filter(|l| l.contains("OTLP metric export failed"))
        .filter_map(|l| l.split("failures=").nth(1))
        .filter_map(|rest| {
            rest.split(|c: char| !c.is_ascii_digit())
                .next()?
                .parse()
                .ok()
        })
        .max()
        .unwrap_or(0)
}

/// `[export.otlp]` lines trusting the test CA, with a client certificate when `client` is set.
fn tls_lines(ca: &Path, client: Option<&CertFiles>) -> String {
    let mut s = format!("certificate = \"{}\"\n", ca.display());
    if let Some(c) = client {
        s.push_str(&format!(
            "client_certificate = \"{}\"\nclient_key = \"{}\"\n",
            c.cert.display(),
            c.key.display()
        ));
    }
    s
}

fn port_of(url: &str) -> String {
    url.rsplit(':').next().unwrap().to_owned()
}

/// Requests nginx answered 200 on `port`.
fn ok_requests(nginx: &Nginx, port: &str) -> usize {
    nginx
        .access_log()
        .lines()
        .filter(|l| l.starts_with(&format!("{port} ")) && l.split(' ').nth(3) == Some("200"))
        .count()
}

fn delivers_over_tls_and_mtls(grpc: bool) {
    let s = Stack::start();
    for mtls in [false, true] {
        let url = s.nginx.url(Front { grpc, mtls });
        let client = mtls.then_some(&s.pki.client);
        let mark = s.mark();
        let d = Daemon::start(&url, grpc, &tls_lines(&s.pki.ca, client), FIRES_AT_ONCE);
        s.wait_for_delivery(mark, &format!("delivery over {url} (mtls: {mtls})"), |_| {
            true
        });
        // Through nginx, over TLS: its access log has the requests it passed on.
        assert!(
            ok_requests(&s.nginx, &port_of(&url)) >= 2,
            "{}",
            s.nginx.access_log()
        );
        assert!(
            !d.lines.text().contains("OTLP export failed"),
            "{}",
            d.lines.text()
        );
    }
}

/// One bad certificate: what nginx serves (or asks for), what hostwarden presents, the cause
/// it must report, and the fix.
struct Case {
    cause: &'static str,
    mtls: bool,
    server: CertFiles,
    client_ca: PathBuf,
    client: Option<CertFiles>,
    fixed_client_ca: PathBuf,
}

fn bad_certificates(grpc: bool) {
    let mut s = Stack::start();
    let pki = &s.pki;
    // nginx trusting both CAs for clients: the fix for a client certificate it refused.
    let both = s.dir.path().join("both-cas.pem");
    let mut pem = std::fs::read(&pki.ca).unwrap();
    pem.extend(std::fs::read(&pki.other_ca).unwrap());
    std::fs::write(&both, pem).unwrap();
    let server_case = |cause, server: &CertFiles| Case {
        cause,
        mtls: false,
        server: server.clone(),
        client_ca: pki.ca.clone(),
        client: None,
        fixed_client_ca: pki.ca.clone(),
    };
    let cases = [
        server_case("unknown_ca", &pki.server_other_ca),
        server_case("certificate_expired", &pki.server_expired),
        server_case("certificate_name_mismatch", &pki.server_wrong_name),
        Case {
            cause: "client_certificate_refused",
            mtls: true,
            server: pki.server.clone(),
            client_ca: pki.ca.clone(),
            client: Some(pki.client_other_ca.clone()),
            fixed_client_ca: both.clone(),
        },
    ];
    let (ca, good_server) = (pki.ca.clone(), pki.server.clone());
    for case in cases {
        s.nginx.restart(&case.server, &case.client_ca);
        let url = s.nginx.url(Front {
            grpc,
            mtls: case.mtls,
        });
        let mark = s.mark();
        let d = Daemon::start(
            &url,
            grpc,
            &tls_lines(&ca, case.client.as_ref()),
            FIRES_AT_ONCE,
        );
        // Refused, with the reason, for both signals; several failures, one line each.
        d.lines
            .wait_until(&format!("the {} warnings", case.cause), LIMIT, |l| {
                let text = l.join("\n");
                metric_failures(&text) >= 4
                    && ["metrics", "logs"].iter().all(|sig| {
                        text.contains(&format!("signal=\"{sig}\" cause=\"{}\"", case.cause))
                    })
            });
        for signal in ["metrics", "logs"] {
            assert_eq!(
                d.cause_lines(signal, case.cause),
                1,
                "{signal}: {}",
                d.lines.text()
            );
        }
        // Fixed on the server side: the queued alert and the count of the refusals arrive.
        s.nginx.restart(&good_server, &case.fixed_client_ca);
        s.wait_for_delivery(
            mark,
            &format!("delivery after fixing {}", case.cause),
            |got| {
                got.metrics
                    .get("hostwarden.export.tls_failures")
                    .is_some_and(|m| {
                        m.points.iter().any(|p| {
                            p.attributes.get("error.type").map(String::as_str) == Some(case.cause)
                                && p.value != "0"
                        })
                    })
            },
        );
        d.lines.wait_until("the recovery line", LIMIT, |l| {
            l.iter().any(|l| l.contains("OTLP export delivered again"))
        });
        for signal in ["metrics", "logs"] {
            assert_eq!(d.cause_lines(signal, case.cause), 1, "{}", d.lines.text());
        }
    }
}

/// Average request size (nginx's `$request_length`: headers and body as received) of the
/// metric exports on `port`, and the content encodings seen.
fn request_sizes(nginx: &Nginx, port: &str) -> (usize, f64, Vec<String>) {
    let mut sizes = Vec::new();
    let mut encodings = Vec::new();
    for l in nginx.access_log().lines() {
        let f: Vec<&str> = l.split(' ').collect();
        if f.first() == Some(&port) && f.get(3) == Some(&"200") {
            sizes.push(f[1].parse::<f64>().unwrap());
            encodings.push(f.get(4).unwrap_or(&"").to_string());
        }
    }
    let n = sizes.len();
    (n, sizes.iter().sum::<f64>() / n.max(1) as f64, encodings)
}

fn gzip_on_the_wire() {
    let s = Stack::start();
    for grpc in [true, false] {
        let url = s.nginx.url(Front { grpc, mtls: false });
        let port = port_of(&url);
        let mut avg = Vec::new();
        for compression in ["none", "gzip"] {
            let before = request_sizes(&s.nginx, &port).0;
            let d = Daemon::start(
                &url,
                grpc,
                &format!(
                    "{}compression = \"{compression}\"\n",
                    tls_lines(&s.pki.ca, None)
                ),
                "",
            );
            // Ten exports after the first two (whose utilisation points are still missing).
            d.lines.wait_until("a few exports", LIMIT, |_| {
                request_sizes(&s.nginx, &port).0 >= before + 12
            });
            drop(d);
            let log = s.nginx.access_log();
            let lines: Vec<&str> = log
                .lines()
                .filter(|l| l.starts_with(&format!("{port} ")))
                .collect();
            let ours: Vec<f64> = lines[before + 2..]
                .iter()
                .filter(|l| l.split(' ').nth(3) == Some("200"))
                .map(|l| l.split(' ').nth(1).unwrap().parse().unwrap())
                .collect();
            let encodings: Vec<&str> = lines[before + 2..]
                .iter()
                // Content-Encoding then grpc-encoding; nginx writes "-" for an absent header.
                .map(|l| l.split(' ').nth(4).unwrap_or("").trim_matches('-'))
                .collect();
            let want = if compression == "gzip" { "gzip" } else { "" };
            let mean = ours.iter().sum::<f64>() / ours.len() as f64;
            // The figures docs/export.md quotes: bytes per export, per minute at the default 5s.
            eprintln!(
                "wire: {} compression={compression}: {mean:.0} bytes per export, {:.0} bytes per minute at 5s",
                if grpc { "grpc" } else { "http/protobuf" },
                mean * 12.0
            );
            assert!(
                encodings
                    .iter()
                    .all(|e| *e == want || (*e == "identity" && want.is_empty())),
                "{compression}: {encodings:?}"
            );
            assert!(
                encodings
                    .iter()
                    .all(|e| *e == want || (*e == "identity" && want.is_empty())),
                "{compression}: {encodings:?}"
            );
            avg.push(mean);
        }
        assert!(avg[1] < avg[0] * 0.6, "gzip {} vs none {}", avg[1], avg[0]);
    }
}
