//! The test runner of the end-to-end test files (`harness = false` in tests/Cargo.toml): each
//! test is a libtest-mimic trial that declares its `Need`s. When one is missing the test is
//! reported `ignored` with what is missing, or fails when `HOSTWARDEN_REQUIRE_ALL=1` (the full
//! run, `cargo xtask test`, installs everything and sets it, so nothing may be left out). A run
//! that ignored something ends with a line saying what did not run and how to run it.

use std::future::Future;
use std::process::ExitCode;
use std::sync::{Arc, Mutex, PoisonError};

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

/// Builds the trials of one test file and runs them.
#[derive(Default)]
pub struct Harness {
    not_run: Arc<Mutex<Vec<NotRun>>>,
}

impl Harness {
    pub fn new() -> Harness {
        Harness::default()
    }

    /// A test that runs `body` when the host has all of `needs`.
    pub fn test(&self, name: &str, needs: &[Need], body: impl FnOnce() + Send + 'static) -> Trial {
        let needs = needs.to_vec();
        let not_run = self.not_run.clone();
        Trial::ignorable_test(name, move || {
            let missing: Vec<(Need, String)> = needs
                .iter()
                .filter_map(|n| n.missing().map(|why| (*n, why)))
                .collect();
            if missing.is_empty() {
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
