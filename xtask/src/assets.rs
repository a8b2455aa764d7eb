//! Man pages and shell completions generated from the agent's own CLI definition, so they can
//! never drift from the real flags. Generated here rather than by the agent so that clap_mangen
//! and clap_complete stay out of the binary we ship.

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::CommandFactory;
use clap_complete::Shell;
use hostwarden::cli::Cli;

/// The shells whose completions the packages ship.
const SHELLS: [Shell; 3] = [Shell::Bash, Shell::Zsh, Shell::Fish];

/// Man pages into `dir/man`, completions into `dir/completions`; returns every path written.
pub fn write_all(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut paths = write_man(&dir.join("man"))?;
    for shell in SHELLS {
        paths.push(write_completions(shell, &dir.join("completions"))?);
    }
    Ok(paths)
}

/// Renders `hostwarden.1` and one page per subcommand (`hostwarden-run.1`, ...: the top page
/// refers to them) into `dir`, and returns their paths.
pub fn write_man(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    create_dir(dir)?;
    let mut cmd = Cli::command().disable_help_subcommand(true);
    // Building names the subcommands "hostwarden-run" etc., which become their page names.
    cmd.build();
    let subcommands = cmd.get_subcommands().cloned().collect::<Vec<_>>();
    std::iter::once(cmd)
        .chain(subcommands)
        .map(|page| {
            let man = clap_mangen::Man::new(page);
            let path = dir.join(man.get_filename());
            let mut buf = Vec::new();
            man.render(&mut buf)
                .and_then(|()| std::fs::write(&path, buf))
                .with_context(|| format!("cannot write {}", path.display()))?;
            Ok(path)
        })
        .collect()
}

/// Writes the completion script for `shell` into `dir` under the shell's conventional name
/// (`hostwarden.bash`, `_hostwarden`, `hostwarden.fish`) and returns its path.
pub fn write_completions(shell: Shell, dir: &Path) -> anyhow::Result<PathBuf> {
    create_dir(dir)?;
    let mut cmd = Cli::command();
    clap_complete::generate_to(shell, &mut cmd, "hostwarden", dir)
        .with_context(|| format!("cannot write {shell} completions into {}", dir.display()))
}

fn create_dir(dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn man_pages_one_per_subcommand() {
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
        for sub in [
            "run",
            "once",
            "check\\-config",
            "print\\-default\\-config",
            "status",
        ] {
            assert!(text.contains(sub), "man page lacks {sub}");
        }
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
        assert!(text.contains("check-config"));
    }
}
