//! `cargo xtask <command>` (the alias lives in .cargo/config.toml): the project's build and test
//! tasks in Rust, so that the README's test command needs nothing but a Rust toolchain and root
//! (or sudo) on a fresh Debian or Ubuntu machine.
//!
//! - `test [ARGS]`: install every prerequisite of the suite, then `cargo test --workspace ARGS`
//!   with `HOSTWARDEN_REQUIRE_ALL=1`, under which a missing prerequisite fails its test.
//! - `install-deps`: only the installation step.
//! - `assets`: man pages and shell completions into `target/assets/`.
//! - `package`: release binary, assets, `.deb` (cargo-deb) and `.rpm` (cargo-generate-rpm).

mod assets;
mod deps;
mod package;
mod workspace;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "cargo xtask", about = "hostwarden's build and test tasks")]
struct Cli {
    #[command(subcommand)]
    command: Task,
}

#[derive(Debug, Subcommand)]
enum Task {
    /// Install every test prerequisite, then run the whole suite with nothing ignored.
    Test {
        /// Passed on to `cargo test --workspace` (e.g. `--test otlp`, `-- --nocapture`).
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Install the test prerequisites (apt, pip, cargo tools) and nothing else.
    InstallDeps,
    /// Generate the man pages and shell completions into target/assets/.
    Assets,
    /// Build the release binary, the assets, the .deb and the .rpm; print the two package paths.
    Package,
}

fn main() -> ExitCode {
    let result = match Cli::parse().command {
        Task::Test { args } => deps::install().and_then(|()| workspace::test(&args)),
        Task::InstallDeps => deps::install(),
        Task::Assets => assets::write_all(&workspace::assets_dir()).map(|paths| {
            for p in paths {
                println!("{}", p.display());
            }
        }),
        Task::Package => package::build().map(|pkgs| {
            println!("{}", pkgs.deb.display());
            println!("{}", pkgs.rpm.display());
        }),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: {e:#}");
            ExitCode::FAILURE
        }
    }
}
