//! The documentation stays true and self-contained: the metrics reference lists every metric the
//! agent can emit with the unit and instrument kind the model defines; every in-repo path the
//! docs link to or name exists; the README opens with the two commands a newcomer needs, shows a
//! minimal config that validates, and stays short; and nothing in the repository points outside
//! it.

use std::path::{Path, PathBuf};
use std::process::Command;

use hostwarden::model::{InstrumentKind, MetricName};
use hostwarden_tests::workspace_root;

/// The README's first code block, line for line (a quickstart test runs the first line and checks
/// that CI runs the second).
const FIRST_BLOCK: [&str; 2] = [
    "cargo run --release -- run   # the agent on built-in defaults: what it found, and why the rest is unavailable",
    "cargo xtask test             # installs what the suite needs (apt, pip, cargo tools; root or sudo), runs every test",
];
const README_MAX_LINES: usize = 320;

/// Top-level directories of the repository: a word starting with one of these and a slash is a
/// path the docs promise exists.
const REPO_DIRS: [&str; 9] = [
    "agent",
    "bench",
    "config",
    "docs",
    "packaging",
    "systemd",
    "tests",
    "xtask",
    ".ci",
];

fn read(rel: &str) -> String {
    let path = workspace_root().join(rel);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn kind_word(k: InstrumentKind) -> &'static str {
    match k {
        InstrumentKind::Gauge => "gauge",
        InstrumentKind::UpDownCounter => "updowncounter",
        InstrumentKind::Counter => "counter",
    }
}

/// Table rows whose first cell names the metric (backticks and a "(custom)" note allowed).
fn rows_for(text: &str, name: &str) -> Vec<Vec<String>> {
    text.lines()
        .filter(|l| l.starts_with('|'))
        .map(|l| {
            l.split('|')
                .map(|c| c.trim().to_owned())
                .collect::<Vec<_>>()
        })
        .filter(|cells| {
            cells
                .get(1)
                .is_some_and(|first| first.replace('`', "").split_whitespace().next() == Some(name))
        })
        .collect()
}

#[test]
fn every_metric_is_in_the_reference_with_its_unit_and_kind() {
    let text = read("docs/metrics.md");
    let mut missing = Vec::new();
    for m in MetricName::ALL {
        let rows = rows_for(&text, m.as_str());
        let ok = rows.iter().any(|cells| {
            let lower: Vec<String> = cells
                .iter()
                .map(|c| c.to_lowercase().replace('`', ""))
                .collect();
            lower.iter().any(|c| c == kind_word(m.kind()))
                && lower.iter().any(|c| c == &m.unit().to_lowercase())
        });
        if !ok {
            missing.push(format!(
                "| {} | {} | {} | ... |",
                m.as_str(),
                kind_word(m.kind()),
                m.unit()
            ));
        }
    }
    assert!(
        missing.is_empty(),
        "docs/metrics.md lacks or mis-states:\n{}",
        missing.join("\n")
    );
}

#[test]
fn readme_opens_with_the_two_commands_and_stays_short() {
    let text = read("README.md");
    let mut lines = text.lines();
    let opening = lines
        .by_ref()
        .find(|l| l.starts_with("```"))
        .expect("README.md has no code block");
    let block: Vec<&str> = lines.take_while(|l| !l.starts_with("```")).collect();
    assert_eq!(opening, "```sh", "the first code block is a sh block");
    assert_eq!(
        block, FIRST_BLOCK,
        "README.md's first code block must be exactly the run and test commands"
    );
    let count = text.lines().count();
    assert!(
        count <= README_MAX_LINES,
        "README.md has {count} lines; the reference belongs in docs/ (at most {README_MAX_LINES})"
    );
}

#[test]
fn the_readme_minimal_config_is_valid() {
    let text = read("README.md");
    let block: String = text
        .split("```toml\n")
        .nth(1)
        .and_then(|rest| rest.split("```").next())
        .expect("README.md shows a minimal config in a toml block")
        .to_owned();
    if let Err(e) = hostwarden::config::parse_str(&block, Path::new("README.md")) {
        panic!("the README's minimal config does not validate:\n{e}");
    }
}

/// The markdown files whose links and paths must resolve, relative to the workspace root.
fn documents(root: &Path) -> Vec<PathBuf> {
    let mut docs = vec![
        PathBuf::from("README.md"),
        PathBuf::from("tests/README.md"),
        PathBuf::from("bench/README.md"),
    ];
    if root.join("tests/zfs-vm/README.md").exists() {
        docs.push(PathBuf::from("tests/zfs-vm/README.md"));
    }
    let mut dirs = vec![PathBuf::from("docs")];
    while let Some(dir) = dirs.pop() {
        let entries = std::fs::read_dir(root.join(&dir))
            .unwrap_or_else(|e| panic!("{}: {e}", root.join(&dir).display()));
        for entry in entries {
            let path = dir.join(entry.unwrap().file_name());
            if root.join(&path).is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "md") {
                docs.push(path);
            }
        }
    }
    docs.sort();
    docs
}

/// Targets of inline links `[text](target)` outside fenced code blocks, anchors stripped;
/// web, mail and same-page links left out.
fn link_targets(text: &str) -> Vec<String> {
    let mut targets = Vec::new();
    let mut fenced = false;
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
        }
        if fenced {
            continue;
        }
        let mut rest = line;
        while let Some(at) = rest.find("](") {
            let after = &rest[at + 2..];
            let Some(end) = after.find(')') else { break };
            let target = after[..end].split('#').next().unwrap_or("").trim();
            let external = ["http://", "https://", "mailto:"]
                .iter()
                .any(|p| target.starts_with(p));
            if !target.is_empty() && !external {
                targets.push(target.to_owned());
            }
            rest = &after[end..];
        }
    }
    targets
}

/// Words such as `docs/metrics.md` or `tests/zfs-vm/run.sh` anywhere in the text, code blocks
/// included: a path from the repository root. Patterns with a placeholder (`<host>`, `{a,b}`,
/// `*`, `…`) are not literal paths and are left out.
fn repo_paths(text: &str) -> Vec<String> {
    let boundary = |c: char| c.is_whitespace() || "`(['\"=:,".contains(c);
    let path_char = |c: char| c.is_ascii_alphanumeric() || "._-/".contains(c);
    let mut found = Vec::new();
    for (start, _) in text.char_indices() {
        let preceded = text[..start].chars().next_back().is_none_or(boundary);
        let rest = &text[start..];
        let is_repo_dir = REPO_DIRS
            .iter()
            .any(|d| rest.starts_with(d) && rest[d.len()..].starts_with('/'));
        if !preceded || !is_repo_dir {
            continue;
        }
        let end = rest.find(|c: char| !path_char(c)).unwrap_or(rest.len());
        if rest[end..].starts_with(['<', '{', '*', '…', '$']) {
            continue;
        }
        let path = rest[..end].trim_end_matches(['.', ',', ':']);
        found.push(path.to_owned());
    }
    found
}

#[test]
fn every_link_and_named_path_in_the_docs_exists() {
    let root = workspace_root();
    let mut broken = Vec::new();
    for doc in documents(&root) {
        let text = read(doc.to_str().unwrap());
        let dir = doc.parent().unwrap_or(Path::new(""));
        for target in link_targets(&text) {
            if !root.join(dir).join(&target).exists() {
                broken.push(format!("{}: link ({target})", doc.display()));
            }
        }
        for path in repo_paths(&text) {
            if !root.join(&path).exists() {
                broken.push(format!("{}: path {path}", doc.display()));
            }
        }
    }
    broken.sort();
    broken.dedup();
    assert!(
        broken.is_empty(),
        "links or paths that do not exist in the repository:\n{}",
        broken.join("\n")
    );
}

#[test]
fn nothing_in_the_repository_points_outside_it() {
    // Spelled in two pieces so that this file does not match itself.
    let needle = concat!("..", "/shared");
    let root = workspace_root();
    let out = Command::new("git")
        .args(["ls-files", "-z"])
        .current_dir(&root)
        .output()
        .expect("git ls-files (the test reads the tracked files)");
    assert!(out.status.success(), "git ls-files failed: {out:?}");
    let mut offenders = Vec::new();
    for name in out.stdout.split(|b| *b == 0).filter(|n| !n.is_empty()) {
        let rel = String::from_utf8_lossy(name).into_owned();
        // A file listed by git but deleted in the working tree has nothing to check.
        let Ok(bytes) = std::fs::read(root.join(&rel)) else {
            continue;
        };
        // Text files only: binaries (NUL bytes) cannot cite a path for a reader.
        if bytes.contains(&0) {
            continue;
        }
        let text = String::from_utf8_lossy(&bytes);
        for (n, line) in text.lines().enumerate() {
            if line.contains(needle) {
                offenders.push(format!("{rel}:{}: {}", n + 1, line.trim()));
            }
        }
    }
    assert!(
        offenders.is_empty(),
        "the repository must stand alone; these lines cite {needle}:\n{}",
        offenders.join("\n")
    );
}

#[test]
fn the_path_finder_reads_paths_and_skips_patterns() {
    let text = "see `docs/metrics.md`, (tests/README.md) and bash bench/run.sh --smoke;\n\
                not /etc/systemd/system, not tests/fixtures/<host>/proc nor tests/ci/install-*.sh.";
    assert_eq!(
        repo_paths(text),
        ["docs/metrics.md", "tests/README.md", "bench/run.sh"]
    );
    assert_eq!(
        link_targets("[a](docs/x.md#k) [b](https://e.invalid) [c](#top) [d](../y/)"),
        ["docs/x.md", "../y/"]
    );
}
