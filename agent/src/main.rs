//! `hostwarden`: parse the command line, load the config, hand over to the library.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Parser;
use hostwarden::cli::{Cli, Command, Format};
use hostwarden::tuner::observe;
use hostwarden::{config, logging, runtime, status, view};

fn main() -> ExitCode {
    let cli = Cli::parse();
    logging::init();
    match cli.command {
        Command::PrintDefaultConfig => {
            print!("{}", config::DEFAULT_TEXT);
            ExitCode::SUCCESS
        }
        Command::CheckConfig { config: path } => check_config(path),
        Command::Once {
            config: path,
            format,
        } => once(path.as_deref(), format),
        Command::Run {
            config: path,
            view,
            ticks,
        } => run(runtime::RunOptions {
            config_path: path,
            view,
            ticks,
        }),
        Command::Status {
            socket,
            config: path,
            format,
        } => status(socket, path.as_deref(), format),
    }
}

/// `check-config`: loads the file and says `ok` or every problem.
fn check_config(path: Option<PathBuf>) -> ExitCode {
    let path = path.unwrap_or_else(|| config::DEFAULT_PATH.into());
    match config::load_file(&path) {
        Ok(_) => {
            println!("{}: ok", path.display());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}

/// `once`: one collection, printed as a table or as JSON.
fn once(path: Option<&Path>, format: Format) -> ExitCode {
    let cfg = match config::load_or_default(path) {
        Ok((c, _)) => c,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    let report = match tokio_runtime() {
        Ok(rt) => {
            let report = rt.block_on(runtime::once_report(&cfg));
            // A wedged driver call (NVML, zpool) must not hold the exit.
            rt.shutdown_timeout(SHUTDOWN_GRACE);
            report
        }
        Err(e) => {
            eprintln!("hostwarden: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match format {
        Format::Json => match serde_json::to_string_pretty(&report) {
            Ok(s) => println!("{s}"),
            Err(e) => {
                eprintln!("hostwarden: cannot encode the snapshot: {e}");
                return ExitCode::FAILURE;
            }
        },
        Format::Table => {
            print!("{}", view::render_points(&report.snapshot));
            if let Some(advice) = &report.tuner {
                println!("tuner: {}", observe::render_advice(advice));
            }
        }
    }
    ExitCode::SUCCESS
}

/// `run`: the daemon, until a signal (or `--ticks`) stops it.
fn run(opts: runtime::RunOptions) -> ExitCode {
    limit_malloc_arenas();
    let result = tokio_runtime().map_err(anyhow::Error::from).and_then(|rt| {
        let result = rt.block_on(runtime::run(opts));
        rt.shutdown_timeout(SHUTDOWN_GRACE);
        result
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("hostwarden: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// `status`: the socket is `--socket`, else the config's `agent.status_socket`.
fn status(socket: Option<PathBuf>, path: Option<&Path>, format: Format) -> ExitCode {
    let socket = match socket {
        Some(p) => Ok(p),
        None => config::load_or_default(path)
            .map(|(c, _)| c.agent.status_socket)
            .map_err(|e| e.to_string()),
    };
    match socket.and_then(|s| status::client::run(&s, format)) {
        Ok(text) => {
            print!("{text}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("hostwarden: {e}");
            ExitCode::FAILURE
        }
    }
}

/// How long blocking work (an NVML or zpool call in flight) may delay exit after the daemon
/// stopped: SIGTERM must end the process within a second.
const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_millis(300);

/// One thread runs every task: a tick is a few hundred microseconds of work once a second, so
/// a second worker only adds wake-ups (each tick woke both workers on a 2-core host: measured in
/// bench/README.md, issue 20). Blocking calls (NVML) go to tokio's blocking pool, whose threads
/// exist only while such work does; the OTLP export tasks run on this thread.
fn tokio_runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
}

/// glibc gives each thread that allocates an arena of its own (up to 8 per core); the daemon's
/// few threads (runtime, statvfs and inotify workers, blocking pool) allocate
/// little, so two arenas serve them, and each arena spared is pages spared (issue 20: RSS).
fn limit_malloc_arenas() {
    // SAFETY: mallopt only sets a tunable of glibc's allocator; no other thread exists yet.
    #[cfg(target_env = "gnu")]
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2)
    };
}
