//! A TLS server in front of rotel for the OTLP TLS tests: certificates made with the `openssl`
//! CLI (a CA only the test trusts, good and bad server certificates, client certificates) and
//! an nginx of the test's own (own config, prefix, pid file and logs; no system nginx is used)
//! terminating TLS and mTLS with `grpc_pass` to rotel's gRPC port and `proxy_pass` to its HTTP
//! port. Its access log records each request's size on the wire.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use crate::rotel::free_port;

/// Runs `openssl` with `args` in `dir`, panicking with its output when it fails.
fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run openssl");
    assert!(
        out.status.success(),
        "openssl {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The files one certificate is made of.
#[derive(Debug, Clone)]
pub struct CertFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// Every certificate the tests use, in one directory.
pub struct Pki {
    pub dir: PathBuf,
    /// The CA hostwarden is told to trust (and nginx trusts for client certificates).
    pub ca: PathBuf,
    /// A CA nobody trusts.
    pub other_ca: PathBuf,
    /// For 127.0.0.1 and localhost, from `ca`.
    pub server: CertFiles,
    /// For 127.0.0.1, from `other_ca`.
    pub server_other_ca: CertFiles,
    /// For 127.0.0.1, from `ca`, valid in 2020 only.
    pub server_expired: CertFiles,
    /// From `ca`, for wrong.invalid only.
    pub server_wrong_name: CertFiles,
    /// A client certificate from `ca`.
    pub client: CertFiles,
    /// A client certificate from `other_ca`.
    pub client_other_ca: CertFiles,
}

/// `openssl ca`'s minimal setup: the only way in OpenSSL 3.0 to give a certificate dates in
/// the past (`x509 -days` cannot be negative).
fn ca_config(dir: &Path, name: &str) -> PathBuf {
    let db = dir.join(format!("{name}-db"));
    std::fs::create_dir_all(&db).unwrap();
    std::fs::write(db.join("index.txt"), "").unwrap();
    std::fs::write(db.join("serial"), "1000\n").unwrap();
    let cnf = dir.join(format!("{name}.cnf"));
    std::fs::write(
        &cnf,
        format!(
            "[ca]\ndefault_ca = this\n[this]\ndir = {db}\ndatabase = $dir/index.txt\n\
             serial = $dir/serial\nnew_certs_dir = $dir\ncertificate = {dir}/{name}.pem\n\
             private_key = {dir}/{name}.key\ndefault_md = sha256\npolicy = any\n\
             copy_extensions = copy\nunique_subject = no\n[any]\ncommonName = supplied\n",
            db = db.display(),
            dir = dir.display(),
        ),
    )
    .unwrap();
    cnf
}

fn new_ca(dir: &Path, name: &str) -> PathBuf {
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            &format!("{name}.key"),
            "-out",
            &format!("{name}.pem"),
            "-days",
            "2",
            "-subj",
            &format!("/CN=hostwarden test {name}"),
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ],
    );
    dir.join(format!("{name}.pem"))
}

/// A leaf certificate `name` signed by `ca` with `san` (e.g. `IP:127.0.0.1`); `dates` are
/// (start, end) in openssl's `YYYYMMDDHHMMSSZ` form, else valid from now for two days.
fn leaf(
    dir: &Path,
    ca: &str,
    name: &str,
    san: &str,
    client: bool,
    dates: Option<(&str, &str)>,
) -> CertFiles {
    let (key, csr) = (format!("{name}.key"), format!("{name}.csr"));
    let usage = if client { "clientAuth" } else { "serverAuth" };
    openssl(
        dir,
        &[
            "req",
            "-new",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            &key,
            "-out",
            &csr,
            "-subj",
            &format!("/CN={name}"),
            "-addext",
            &format!("subjectAltName={san}"),
            "-addext",
            &format!("extendedKeyUsage={usage}"),
        ],
    );
    let cnf = ca_config(dir, ca);
    let cnf = cnf.to_str().unwrap();
    let out = format!("{name}.pem");
    let mut args = vec![
        "ca", "-batch", "-notext", "-config", cnf, "-in", &csr, "-out", &out,
    ];
    match dates {
        Some((start, end)) => args.extend(["-startdate", start, "-enddate", end]),
        None => args.extend(["-days", "2"]),
    }
    openssl(dir, &args);
    CertFiles {
        cert: dir.join(out),
        key: dir.join(key),
    }
}

impl Pki {
    /// Makes every certificate in `dir`.
    pub fn new(dir: &Path) -> Pki {
        let ca = new_ca(dir, "ca");
        let other_ca = new_ca(dir, "other-ca");
        let ip = "IP:127.0.0.1,DNS:localhost";
        Pki {
            dir: dir.to_owned(),
            server: leaf(dir, "ca", "server", ip, false, None),
            server_other_ca: leaf(dir, "other-ca", "server-other-ca", ip, false, None),
            server_expired: leaf(
                dir,
                "ca",
                "server-expired",
                ip,
                false,
                Some(("20200101000000Z", "20200102000000Z")),
            ),
            server_wrong_name: leaf(
                dir,
                "ca",
                "server-wrong-name",
                "DNS:wrong.invalid",
                false,
                None,
            ),
            client: leaf(dir, "ca", "client", "DNS:hostwarden-client", true, None),
            client_other_ca: leaf(
                dir,
                "other-ca",
                "client-other-ca",
                "DNS:hostwarden-client",
                true,
                None,
            ),
            ca,
            other_ca,
        }
    }
}

/// Which of nginx's four servers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Front {
    pub grpc: bool,
    pub mtls: bool,
}

/// nginx in front of rotel: TLS and mTLS, each for gRPC and HTTP.
pub struct Nginx {
    child: Option<Child>,
    prefix: PathBuf,
    /// TLS gRPC, TLS HTTP, mTLS gRPC, mTLS HTTP.
    ports: [u16; 4],
    grpc_upstream: u16,
    http_upstream: u16,
}

impl Nginx {
    /// Starts nginx in `prefix` serving `server` (and, on the mTLS servers, asking for client
    /// certificates from `client_ca`).
    pub fn start(
        prefix: &Path,
        grpc_upstream: u16,
        http_upstream: u16,
        server: &CertFiles,
        client_ca: &Path,
    ) -> Nginx {
        let mut n = Nginx {
            child: None,
            prefix: prefix.to_owned(),
            ports: [free_port(), free_port(), free_port(), free_port()],
            grpc_upstream,
            http_upstream,
        };
        n.restart(server, client_ca);
        n
    }

    /// The https:// URL of one server.
    pub fn url(&self, front: Front) -> String {
        let i = usize::from(front.mtls) * 2 + usize::from(!front.grpc);
        format!("https://127.0.0.1:{}", self.ports[i])
    }

    /// The access log: one line per request, `port request_length bytes_sent status encoding`.
    pub fn access_log(&self) -> String {
        std::fs::read_to_string(self.prefix.join("access.log")).unwrap_or_default()
    }

    pub fn error_log(&self) -> String {
        std::fs::read_to_string(self.prefix.join("error.log")).unwrap_or_default()
    }

    /// Stops nginx (if running) and starts it again, on the same ports, with `server` and
    /// `client_ca`: how a test "fixes" the server side.
    pub fn restart(&mut self, server: &CertFiles, client_ca: &Path) {
        self.stop();
        let conf = self.prefix.join("nginx.conf");
        std::fs::write(&conf, self.config(server, client_ca)).unwrap();
        let mut child = Command::new("nginx")
            .arg("-c")
            .arg(&conf)
            .arg("-p")
            .arg(&self.prefix)
            // One process: killing it frees the ports (a master's orphaned worker would not).
            .args(["-g", "daemon off; master_process off;"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start nginx");
        for port in self.ports {
            wait_for_port_or(port, || {
                if let Ok(Some(status)) = child.try_wait() {
                    let mut err = String::new();
                    if let Some(mut e) = child.stderr.take() {
                        let _read = std::io::Read::read_to_string(&mut e, &mut err);
                    }
                    panic!("nginx exited ({status}): {err}\n{}", self.error_log());
                }
            });
        }
        self.child = Some(child);
    }

    fn config(&self, server: &CertFiles, client_ca: &Path) -> String {
        let p = self.prefix.display();
        let mut servers = String::new();
        for (i, port) in self.ports.iter().enumerate() {
            let grpc = i % 2 == 0;
            let mtls = i >= 2;
            let (listen, pass) = if grpc {
                (
                    "ssl http2",
                    format!("grpc_pass grpc://127.0.0.1:{};", self.grpc_upstream),
                )
            } else {
                (
                    "ssl",
                    format!(
                        "proxy_pass http://127.0.0.1:{}; proxy_http_version 1.1;",
                        self.http_upstream
                    ),
                )
            };
            let verify = if mtls {
                format!(
                    "ssl_verify_client on; ssl_client_certificate {};",
                    client_ca.display()
                )
            } else {
                String::new()
            };
            servers.push_str(&format!(
                "server {{ listen 127.0.0.1:{port} {listen}; ssl_certificate {}; ssl_certificate_key {}; {verify} location / {{ {pass} }} }}\n",
                server.cert.display(),
                server.key.display()
            ));
        }
        format!(
            "pid {p}/nginx.pid;\nerror_log {p}/error.log info;\n\
             events {{ worker_connections 64; }}\n\
             http {{\n\
             log_format wire '$server_port $request_length $bytes_sent $status $http_content_encoding$http_grpc_encoding';\n\
             access_log {p}/access.log wire;\n\
             client_body_temp_path {p}/body; proxy_temp_path {p}/proxy;\n\
             fastcgi_temp_path {p}/fastcgi; uwsgi_temp_path {p}/uwsgi; scgi_temp_path {p}/scgi;\n\
             client_max_body_size 16m;\n\
             {servers}}}\n"
        )
    }

    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // SIGQUIT would wait for keep-alive connections; the test wants them cut.
            let _killed = child.kill();
            let _waited = child.wait();
        }
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Waits until `port` accepts connections, calling `check` between attempts (it panics when
/// the server died) and panicking after 30 s.
fn wait_for_port_or(port: u16, mut check: impl FnMut()) {
    let deadline = std::time::SystemTime::now() + std::time::Duration::from_secs(30);
    loop {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return;
        }
        check();
        assert!(
            std::time::SystemTime::now() < deadline,
            "nothing listened on {port}"
        );
        std::thread::yield_now();
    }
}
