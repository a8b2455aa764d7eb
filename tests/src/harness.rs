//! The test runner of the end-to-end test files (`harness = false` in tests/Cargo.toml): each
//! test is a libtest-mimic trial that declares its `Need`s. When one is missing the test is
//! reported `ignored` with what is missing, or fails when `HOSTWARDEN_REQUIRE_ALL=1` (the full
//! run, `cargo xtask test`, installs everything and sets it, so nothing may be left out). A run
//! that ignored something ends with a line saying what did not run and how to run it.
//!
//! Every test runs under a time limit: one that hangs (a blocked FIFO, a peer that never
//! answers) ends the whole run with the test's name instead of silently eating CI's 90 minutes.

use std::future::Future;
use std::process::ExitCode;
use std::sync::{Arc, Mutex, PoisonError, mpsc};
use std::time::Duration;

use libtest_mimic::{Arguments, Completion, Failed, FormatSetting, Trial};

use crate::need::Need;

/// Set to `1` (any value but empty or `0`) to turn every missing prerequisite into a failure.
pub const REQUIRE_ALL_ENV: &str = "HOSTWARDEN_REQUIRE_ALL";

/// The command that installs every prerequisite and runs every test.
pub const FULL_RUN: &str = "cargo xtask test";

/// Whether missing prerequisites fail the tests (`HOSTWARDEN_REQUIRE_ALL` set, and not to 0).
pub fn require_all() -> bool {
    std::env::var(REQUIRE_ALL_ENV).is_ok_and(|v| !v.is_empty() && v != "0")
}

/// A test that did not run, and what it lacked.
struct NotRun {
    missing: Vec<Need>,
}

/// How long one test may run before the run is ended: the slowest ones (a packaged boot, a cold
/// release build) take a few minutes on two busy cores.
pub const DEFAULT_LIMIT: Duration = Duration::from_secs(20 * 60);

/// Builds the trials of one test file and runs them.
pub struct Harness {
    not_run: Arc<Mutex<Vec<NotRun>>>,
    limit: Duration,
}

impl Default for Harness {
    fn default() -> Harness {
        Harness {
            not_run: Arc::default(),
            limit: DEFAULT_LIMIT,
        }
    }
}

impl Harness {
    pub fn new() -> Harness {
        Harness::default()
    }

    /// The same harness with another per-test time limit (a cold OpenZFS build runs longer).
    pub fn with_limit(limit: Duration) -> Harness {
        Harness {
            limit,
            ..Harness::default()
        }
    }

    /// A test that runs `body` when the host has all of `needs`.
    pub fn test(&self, name: &str, needs: &[Need], body: impl FnOnce() + Send + 'static) -> Trial {
        let needs = needs.to_vec();
        let not_run = self.not_run.clone();
        let limit = self.limit;
        let test_name = name.to_owned();
        Trial::ignorable_test(name, move || {
            let missing: Vec<(Need, String)> = needs
                .iter()
                .filter_map(|n| n.missing().map(|why| (*n, why)))
                .collect();
            if missing.is_empty() {
                let _watchdog = Watchdog::start(test_name, limit);
                body();
                return Ok(Completion::Completed);
            }
            let why = describe(&missing);
            if require_all() {
                return Err(Failed::from(format!(
                    "{REQUIRE_ALL_ENV} is set and this test cannot run: {why}"
                )));
            }
            not_run
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(NotRun {
                    missing: missing.into_iter().map(|(n, _)| n).collect(),
                });
            Ok(Completion::ignored_with(why))
        })
    }

    /// An async test, run to completion on its own multi-threaded runtime (two workers, as
    /// `#[tokio::test(flavor = "multi_thread", worker_threads = 2)]` gives).
    pub fn tokio_test<F>(
        &self,
        name: &str,
        needs: &[Need],
        body: impl FnOnce() -> F + Send + 'static,
    ) -> Trial
    where
        F: Future<Output = ()>,
    {
        self.test(name, needs, move || {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("build the test's tokio runtime")
                .block_on(body());
        })
    }

    /// Runs the trials as libtest would (same arguments), then says what did not run.
    pub fn run(&self, trials: Vec<Trial>) -> ExitCode {
        let mut args = Arguments::from_args();
        // libtest honours RUST_TEST_THREADS; libtest-mimic only reads --test-threads.
        if args.test_threads.is_none() {
            args.test_threads = std::env::var("RUST_TEST_THREADS")
                .ok()
                .and_then(|n| n.parse().ok());
        }
        let conclusion = libtest_mimic::run(&args, trials);
        let not_run =
            std::mem::take(&mut *self.not_run.lock().unwrap_or_else(PoisonError::into_inner));
        if !not_run.is_empty() && !matches!(args.format, Some(FormatSetting::Json)) {
            println!("{}", summary(&not_run));
        }
        conclusion.exit_code()
    }
}

/// Ends the process when the test it guards outlives its limit; dropped (the test returned or
/// panicked), it stands down.
struct Watchdog {
    _done: mpsc::Sender<()>,
}

impl Watchdog {
    fn start(test: String, limit: Duration) -> Watchdog {
        let (done, rx) = mpsc::channel::<()>();
        std::thread::spawn(move || {
            if let Err(mpsc::RecvTimeoutError::Timeout) = rx.recv_timeout(limit) {
                eprintln!(
                    "test {test} ran longer than its limit of {} s: it hangs or its machine is \
                     far too slow; ending the run so that it fails here rather than at CI's \
                     timeout",
                    limit.as_secs()
                );
                std::process::exit(101);
            }
        });
        Watchdog { _done: done }
    }
}

/// What is missing, in one line: each need's own words, with the tools absent from PATH in one
/// list ("not running as root; not on PATH: `podman`, `debootstrap`").
fn describe(missing: &[(Need, String)]) -> String {
    let mut parts: Vec<String> = missing
        .iter()
        .filter(|(n, _)| !matches!(n, Need::Tool(_)))
        .map(|(_, why)| why.clone())
        .collect();
    let tools: Vec<String> = missing
        .iter()
        .filter_map(|(n, _)| match n {
            Need::Tool(t) => Some(format!("`{t}`")),
            _ => None,
        })
        .collect();
    if !tools.is_empty() {
        parts.push(format!("not on PATH: {}", tools.join(", ")));
    }
    parts.join("; ")
}

/// The closing line: how many tests did not run, every prerequisite they lacked (each once), and
/// the command that installs them and runs everything.
fn summary(not_run: &[NotRun]) -> String {
    let mut names: Vec<String> = not_run
        .iter()
        .flat_map(|t| t.missing.iter().map(|n| n.name()))
        .collect();
    names.sort();
    names.dedup();
    let tests = if not_run.len() == 1 { "test" } else { "tests" };
    format!(
        "{} {tests} did not run, missing {}: `{FULL_RUN}` installs every prerequisite and runs them \
         ({REQUIRE_ALL_ENV}=1 makes a missing one fail).",
        not_run.len(),
        names.join(", ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reason_lists_the_tools_missing_from_path_together() {
        let missing: Vec<(Need, String)> = [Need::Root, Need::Tool("podman"), Need::Tool("cpio")]
            .into_iter()
            .map(|n| (n, n.missing_text()))
            .collect();
        assert_eq!(
            describe(&missing),
            "not running as root; not on PATH: `podman`, `cpio`"
        );
    }

    #[test]
    fn the_summary_counts_tests_and_names_each_missing_prerequisite_once() {
        let not_run = [
            NotRun {
                missing: vec![Need::Root, Need::Tool("qemu-system-x86_64")],
            },
            NotRun {
                missing: vec![Need::RotelAgent, Need::Root],
            },
        ];
        assert_eq!(
            summary(&not_run),
            "2 tests did not run, missing qemu-system-x86_64, root, rotel-agent: \
             `cargo xtask test` installs every prerequisite and runs them \
             (HOSTWARDEN_REQUIRE_ALL=1 makes a missing one fail)."
        );
    }
}
