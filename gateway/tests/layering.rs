//! The data plane's shape, checked on the source: the core imports nothing above it, an edge
//! imports the core and its own files only (never a sibling edge, never the crate root), so a
//! new transport is a new edge and nothing else moves. See the README's picture.

use std::path::{Path, PathBuf};

/// Every `.rs` file below `dir`.
fn sources(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(sources(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
    out
}

/// The crate-rooted paths a file names (`crate::a::b`, and each item of `use crate::{a, b}`),
/// as their first segment after `crate::`.
fn crate_paths(text: &str) -> Vec<String> {
    let mut found = Vec::new();
    for (i, _) in text.match_indices("crate::") {
        // Skip `$crate::` in macros and paths inside other crates' names.
        if i > 0 && !text[..i].ends_with(|c: char| !c.is_alphanumeric() && c != '_' && c != '$') {
            continue;
        }
        let rest = &text[i + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let end = group.find('}').unwrap_or(group.len());
            for item in group[..end].split(',') {
                let head = item.trim().split("::").next().unwrap_or("").trim();
                if !head.is_empty() {
                    found.push(head.to_owned());
                }
            }
        } else {
            let head: String = rest
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            found.push(head);
        }
    }
    found
}

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

#[test]
fn the_core_imports_nothing_above_it() {
    let mut wrong = Vec::new();
    for file in sources(&src().join("core")) {
        let text = std::fs::read_to_string(&file).unwrap();
        for head in crate_paths(&text) {
            if head != "core" {
                wrong.push(format!("{}: crate::{head}", file.display()));
            }
        }
    }
    assert!(wrong.is_empty(), "the core reaches up: {wrong:#?}");
}

#[test]
fn an_edge_imports_the_core_and_its_own_files_only() {
    let edges = src().join("edges");
    let mut wrong = Vec::new();
    let mut seen = 0;
    for entry in std::fs::read_dir(&edges).unwrap() {
        let dir = entry.unwrap().path();
        if !dir.is_dir() {
            continue;
        }
        seen += 1;
        for file in sources(&dir) {
            let text = std::fs::read_to_string(&file).unwrap();
            for head in crate_paths(&text) {
                if head != "core" {
                    wrong.push(format!("{}: crate::{head}", file.display()));
                }
            }
            // `super::super::` would climb out of the edge to a sibling.
            if text.contains("super::super::") {
                wrong.push(format!("{}: super::super::", file.display()));
            }
        }
    }
    assert!(
        seen >= 5,
        "expected the five edges under {}",
        edges.display()
    );
    assert!(
        wrong.is_empty(),
        "an edge reaches beside or above it: {wrong:#?}"
    );
}

#[test]
fn the_check_sees_an_edge_reaching_for_a_sibling() {
    let text =
        "use crate::{core::auth::Caller, edges::webrtc::Media};\nfn f() { crate::Gateway::new(); }";
    assert_eq!(crate_paths(text), ["core", "edges", "Gateway"]);
}
