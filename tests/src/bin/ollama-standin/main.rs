//! `ollama-standin`: a stand-in for the Ollama server, for tests. It serves the endpoints the
//! agent reads (`/`, `/api/version`, `/api/ps`, `/api/show`, `/api/tags`) with the bytes real
//! Ollama sends (compact JSON, gin's content types, 404/405 texts), plus `GET /__env` reporting
//! the OLLAMA_* environment it was started with, so the tuner's tests can see what systemd gave
//! it. Usage: see `--help` and tests/README.md.

mod http;
mod scenario;
mod time;

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;

use scenario::{Options, Scenario};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let opts = match Options::parse(&args) {
        Ok(Some(o)) => o,
        Ok(None) => {
            print!("{}", scenario::USAGE);
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("ollama-standin: {e}");
            eprint!("{}", scenario::USAGE);
            return ExitCode::from(2);
        }
    };
    let env = ollama_env();
    // Real Ollama logs the configuration it parsed once at start; the tuner's tests read it.
    eprintln!(
        "level=INFO source=routes.go msg=\"server config\" env={}",
        scenario::env_json(&env)
    );
    for (key, value) in &opts.fail_if {
        if env.iter().any(|(k, v)| k == key && ollama_trim(v) == value) {
            eprintln!("Error: ollama-standin told to fail at start when {key}={value}");
            return ExitCode::from(1);
        }
    }
    let scenario = match Scenario::load(&opts) {
        Ok(s) => Arc::new(s),
        Err(e) => {
            eprintln!("ollama-standin: {e}");
            return ExitCode::from(2);
        }
    };
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("ollama-standin: cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match rt.block_on(serve(opts.listen, scenario)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("Error: listen tcp {}: {e}", opts.listen);
            ExitCode::from(1)
        }
    }
}

async fn serve(addr: SocketAddr, scenario: Arc<Scenario>) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    // The first stdout line tells a test which port it got when asked for port 0.
    println!("Listening on {bound} (version {})", scenario.version);
    loop {
        let (stream, _) = listener.accept().await?;
        let scenario = Arc::clone(&scenario);
        tokio::spawn(async move {
            if let Err(e) = http::handle_connection(stream, &scenario).await {
                eprintln!("level=WARN msg=\"connection failed\" error=\"{e}\"");
            }
        });
    }
}

/// The OLLAMA_* variables (and LLAMA_ARG_*, which Ollama passes on) this process got, sorted.
fn ollama_env() -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> = std::env::vars()
        .filter(|(k, _)| k.starts_with("OLLAMA_") || k.starts_with("LLAMA_ARG_"))
        .collect();
    env.sort();
    env
}

/// How Ollama reads a variable: surrounding white space, then quotes, are stripped.
fn ollama_trim(v: &str) -> &str {
    v.trim().trim_matches(|c| c == '"' || c == '\'')
}
