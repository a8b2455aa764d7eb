//! The command line (clap derive). Runtime knobs are flags; the host's desired state is config.

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(
    name = "hostwarden",
    version,
    about = "Node agent for AI/LLM hosts: watches GPUs, ZFS pools, CPU, memory and Ollama, \
             judges alert rules, tunes Ollama through systemd and exports OTLP"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the daemon: collect every tick, judge rules, tune Ollama, export.
    Run {
        /// Config file (default /etc/hostwarden/hostwarden.toml; built-in defaults if absent).
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// Live terminal view: auto (when stderr is a terminal and no OTLP endpoint is set),
        /// always or never.
        #[arg(long, value_enum, default_value_t = ViewMode::Auto)]
        view: ViewMode,
        /// Stop after this many ticks (for scripts and benchmarks).
        #[arg(long)]
        ticks: Option<u64>,
    },
    /// Collect once and print what was found.
    Once {
        #[arg(long, short)]
        config: Option<PathBuf>,
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
    /// Validate a config file: exit 0, or print every error as FILE:LINE:COL: field: message.
    CheckConfig {
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
    /// Print the full default config, every key commented.
    PrintDefaultConfig,
    /// Ask the running daemon what it sees now.
    Status {
        /// The daemon's status socket (default: agent.status_socket of the config).
        #[arg(long)]
        socket: Option<PathBuf>,
        #[arg(long, short)]
        config: Option<PathBuf>,
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Table,
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ViewMode {
    Auto,
    Always,
    Never,
}
