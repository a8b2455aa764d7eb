//! Packaging assets generated from the CLI definition itself, so the man page and the shell
//! completions can never drift from the real flags: `hostwarden generate-man DIR` and
//! `hostwarden generate-completions SHELL DIR` (both hidden from --help; packaging/build.sh
//! calls them).

use std::path::{Path, PathBuf};

use clap::CommandFactory;
use clap_complete::Shell;

use crate::cli::Cli;

#[derive(Debug, thiserror::Error)]
pub enum AssetError {
    #[error("failed to create {}: {source}", path.display())]
    CreateDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("failed to write {}: {source}", path.display())]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

fn create_dir(dir: &Path) -> Result<(), AssetError> {
    std::fs::create_dir_all(dir).map_err(|source| AssetError::CreateDir {
        path: dir.to_path_buf(),
        source,
    })
}

/// Renders `hostwarden.1` and one page per visible subcommand (`hostwarden-run.1`, ...: the
/// top page refers to them) into `dir`, and returns their paths.
pub fn write_man(dir: &Path) -> Result<Vec<PathBuf>, AssetError> {
    create_dir(dir)?;
    let mut cmd = Cli::command().disable_help_subcommand(true);
    // Building names the subcommands "hostwarden-run" etc., which become their page names.
    cmd.build();
    let subcommands = cmd
        .get_subcommands()
        .filter(|s| !s.is_hide_set())
        .cloned()
        .collect::<Vec<_>>();
    std::iter::once(cmd)
        .chain(subcommands)
        .map(|page| {
            let man = clap_mangen::Man::new(page);
            let path = dir.join(man.get_filename());
            let mut buf = Vec::new();
            man.render(&mut buf)
                .and_then(|()| std::fs::write(&path, buf))
                .map_err(|source| AssetError::Write {
                    path: path.clone(),
                    source,
                })?;
            Ok(path)
        })
        .collect()
}

/// The CLI without its hidden subcommands: clap_complete, unlike clap_mangen, would offer them.
fn visible_command() -> clap::Command {
    let full = Cli::command();
    let visible = full
        .get_subcommands()
        .filter(|s| !s.is_hide_set())
        .cloned()
        .collect::<Vec<_>>();
    let mut cmd = clap::Command::new("hostwarden")
        .version(env!("CARGO_PKG_VERSION"))
        .subcommand_required(true)
        .subcommands(visible);
    if let Some(about) = full.get_about() {
        cmd = cmd.about(about.clone());
    }
    cmd
}

/// Writes the completion script for `shell` into `dir` under the shell's conventional name
/// (`hostwarden.bash`, `_hostwarden`, `hostwarden.fish`, ...) and returns its path.
pub fn write_completions(shell: Shell, dir: &Path) -> Result<PathBuf, AssetError> {
    create_dir(dir)?;
    let mut cmd = visible_command();
    clap_complete::generate_to(shell, &mut cmd, "hostwarden", dir).map_err(|source| {
        AssetError::Write {
            path: dir.to_path_buf(),
            source,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn man_page_lists_visible_subcommands_only() {
        let dir = tempfile::tempdir().unwrap();
        let paths = write_man(dir.path()).unwrap();
        let names: Vec<_> = paths
            .iter()
            .filter_map(|p| p.file_name()?.to_str())
            .collect();
        assert_eq!(
            names,
            [
                "hostwarden.1",
                "hostwarden-run.1",
                "hostwarden-once.1",
                "hostwarden-check-config.1",
                "hostwarden-print-default-config.1",
                "hostwarden-status.1"
            ]
        );
        let text = std::fs::read_to_string(&paths[0]).unwrap();
        assert!(
            text.starts_with(".ie"),
            "roff output expected: {}",
            &text[..40]
        );
        for visible in [
            "run",
            "once",
            "check\\-config",
            "print\\-default\\-config",
            "status",
        ] {
            assert!(text.contains(visible), "man page lacks {visible}");
        }
        assert!(
            !text.contains("generate\\-man"),
            "hidden subcommand leaked into the man page"
        );
    }

    #[rstest::rstest]
    #[case(Shell::Bash, "hostwarden.bash")]
    #[case(Shell::Zsh, "_hostwarden")]
    #[case(Shell::Fish, "hostwarden.fish")]
    fn completions_cover_the_subcommands(#[case] shell: Shell, #[case] file: &str) {
        let dir = tempfile::tempdir().unwrap();
        let path = write_completions(shell, dir.path()).unwrap();
        assert_eq!(path, dir.path().join(file));
        let text = std::fs::read_to_string(path).unwrap();
        assert!(text.contains("print-default-config"));
        assert!(!text.contains("generate-completions"));
    }
}
