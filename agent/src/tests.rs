//! The layout holds: the top-level modules form layers, with no import cycle between them (a
//! cycle means two modules can only be understood, and changed, together).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

type Graph = BTreeMap<String, BTreeSet<String>>;

fn src_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// Test code is left out: a test may reach anywhere.
fn is_test_file(p: &Path) -> bool {
    let name = p.file_name().and_then(|n| n.to_str()).unwrap_or_default();
    name == "tests.rs"
        || name.ends_with("_tests.rs")
        || p.components().any(|c| c.as_os_str() == "tests")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let p = entry.unwrap().path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|e| e == "rs") && !is_test_file(&p) {
            out.push(p);
        }
    }
}

/// The code of a file without its comments and without an inline `mod tests { .. }` at the end.
fn code_of(text: &str) -> String {
    let mut out = String::new();
    let mut lines = text.lines().peekable();
    while let Some(line) = lines.next() {
        if line.trim() == "#[cfg(test)]" && lines.peek().is_some_and(|l| l.trim() == "mod tests {")
        {
            break;
        }
        let code = line.split("//").next().unwrap_or_default();
        out.push_str(code);
        out.push('\n');
    }
    out
}

/// The top-level modules a piece of code names through `crate::a` or `crate::{a, b::c}`.
fn crate_refs(code: &str) -> BTreeSet<String> {
    let ident = |s: &str| -> String {
        s.trim_start()
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect()
    };
    let mut refs = BTreeSet::new();
    for (at, _) in code.match_indices("crate::") {
        let rest = &code[at + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let mut depth = 0usize;
            let mut start = 0;
            for (i, c) in group.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => {
                        refs.insert(ident(&group[start..i]));
                        break;
                    }
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        refs.insert(ident(&group[start..i]));
                        start = i + 1;
                    }
                    _ => {}
                }
            }
        } else {
            refs.insert(ident(rest));
        }
    }
    refs.remove("");
    refs
}

/// Module -> the other top-level modules its non-test code uses.
fn module_graph() -> Graph {
    let src = src_dir();
    let mut modules: BTreeMap<String, Vec<PathBuf>> = BTreeMap::new();
    for entry in std::fs::read_dir(&src).unwrap() {
        let p = entry.unwrap().path();
        let Some(stem) = p.file_stem().and_then(|s| s.to_str()).map(str::to_owned) else {
            continue;
        };
        if matches!(stem.as_str(), "lib" | "main" | "tests") {
            continue;
        }
        let files = modules.entry(stem).or_default();
        if p.is_dir() {
            rust_files(&p, files);
        } else if p.extension().is_some_and(|e| e == "rs") {
            files.push(p);
        }
    }
    let names: BTreeSet<String> = modules.keys().cloned().collect();
    modules
        .into_iter()
        .map(|(m, files)| {
            let mut uses = BTreeSet::new();
            for f in files {
                let text = std::fs::read_to_string(&f).unwrap();
                uses.extend(crate_refs(&code_of(&text)));
            }
            uses.retain(|u| *u != m && names.contains(u));
            (m, uses)
        })
        .collect()
}

/// A cycle in the graph as the path that closes it, if there is one.
fn find_cycle(graph: &Graph) -> Option<Vec<String>> {
    fn visit(n: &str, g: &Graph, path: &mut Vec<String>, done: &mut BTreeSet<String>) -> bool {
        if let Some(at) = path.iter().position(|p| p == n) {
            path.drain(..at);
            path.push(n.to_owned());
            return true;
        }
        if done.contains(n) {
            return false;
        }
        path.push(n.to_owned());
        for next in g.get(n).into_iter().flatten() {
            if visit(next, g, path, done) {
                return true;
            }
        }
        path.pop();
        done.insert(n.to_owned());
        false
    }
    let mut done = BTreeSet::new();
    for n in graph.keys() {
        let mut path = Vec::new();
        if visit(n, graph, &mut path, &mut done) {
            return Some(path);
        }
    }
    None
}

#[test]
fn reads_imports_in_all_their_forms() {
    let code = code_of(
        "use crate::model::{A, B};\nuse crate::{sys::fs, fields::{Ratio, FieldError}};\n\
         // crate::commented\nfn f() { crate::rules::x(); }\n#[cfg(test)]\nmod tests {\n use crate::late;\n}\n",
    );
    let found: Vec<String> = crate_refs(&code).into_iter().collect();
    assert_eq!(found, ["fields", "model", "rules", "sys"]);
}

#[test]
fn finds_a_cycle_when_there_is_one() {
    let g = |edges: &[(&str, &str)]| -> Graph {
        let mut g = Graph::new();
        for (a, b) in edges {
            g.entry((*a).to_owned())
                .or_default()
                .insert((*b).to_owned());
            g.entry((*b).to_owned()).or_default();
        }
        g
    };
    assert_eq!(find_cycle(&g(&[("a", "b"), ("b", "c"), ("a", "c")])), None);
    assert_eq!(
        find_cycle(&g(&[("a", "b"), ("b", "c"), ("c", "b")])),
        Some(vec!["b".to_owned(), "c".to_owned(), "b".to_owned()])
    );
}

#[test]
fn top_level_modules_import_each_other_without_a_cycle() {
    let graph = module_graph();
    // The reader sees the real tree: the runtime composes the others.
    assert!(graph["runtime"].contains("collectors"), "{graph:?}");
    if let Some(cycle) = find_cycle(&graph) {
        panic!(
            "import cycle between top-level modules: {}",
            cycle.join(" -> ")
        );
    }
}
