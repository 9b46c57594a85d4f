//! The layering of the crate and of its users, checked on the source text (docs/ARCHITECTURE.md,
//! "Layers"):
//!
//! - `protocol/` is the sans-IO core: it names neither the client nor the tracker server;
//! - `client/` and `tracker/` are two shells around it that never name each other;
//! - `tls/` (the control plane's TLS, shared by both shells) names neither;
//! - `testing/` drives the protocol only (unit tests anywhere may use its helpers);
//! - the bindings and the terminal program import from the crate root only
//!   (`messenger_core::Client`, never `messenger_core::client::Client`).
//!
//! A dependency is any `crate::<module>` path outside a comment line, in a `use` or inline.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

/// For each top-level module of `src/`, the top-level modules it must not name.
const FORBIDDEN: &[(&str, &[&str])] = &[
    ("protocol", &["client", "tracker"]),
    ("client", &["tracker"]),
    ("tracker", &["client"]),
    ("testing", &["client", "tracker"]),
    ("tls", &["client", "tracker"]),
];

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("directory entry").path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|x| x == "rs") {
            out.push(path);
        }
    }
}

/// Code lines of a file: comment lines (doc links included) dropped.
fn code_lines(path: &Path) -> Vec<(usize, String)> {
    let text = fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim_start().starts_with("//"))
        .map(|(i, l)| (i + 1, l.to_string()))
        .collect()
}

/// The first segment of every path that starts with `prefix` on `line` (`crate::` →
/// `client`, `protocol`, ...); for a group (`crate::{a::X, b}`), every segment in it.
/// `lines` follow `line`, for a group that spans lines.
fn names_after(line: &str, lines: &[(usize, String)], prefix: &str) -> Vec<String> {
    let ident = |c: char| c.is_alphanumeric() || c == '_';
    let mut names = Vec::new();
    for (at, _) in line.match_indices(prefix) {
        // `messenger_core::` must not match inside a longer path or identifier.
        if line[..at]
            .chars()
            .next_back()
            .is_some_and(|c| ident(c) || c == ':')
        {
            continue;
        }
        let rest = &line[at + prefix.len()..];
        if let Some(group) = rest.strip_prefix('{') {
            // Up to the closing brace, across lines if need be.
            let mut text = group.to_string();
            for (_, next) in lines {
                if text.contains('}') {
                    break;
                }
                text.push(' ');
                text.push_str(next);
            }
            let mut depth = 1;
            let mut segment = String::new();
            for c in text.chars() {
                match c {
                    '{' => depth += 1,
                    '}' => depth -= 1,
                    _ => {}
                }
                if depth == 0 {
                    break;
                }
                if ident(c) {
                    segment.push(c);
                } else {
                    if c == ':' && !segment.is_empty() {
                        names.push(std::mem::take(&mut segment));
                    }
                    segment.clear();
                }
            }
        } else {
            let end = rest.find(|c: char| !ident(c)).unwrap_or(rest.len());
            names.push(rest[..end].to_string());
        }
    }
    names
}

fn manifest_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn no_forbidden_edge_between_top_level_modules() {
    let src = manifest_dir().join("src");
    let mut violations = Vec::new();
    let mut seen = BTreeSet::new();
    for &(module, forbidden) in FORBIDDEN {
        let dir = src.join(module);
        assert!(dir.is_dir(), "{} is not a directory", dir.display());
        let mut files = Vec::new();
        rust_files(&dir, &mut files);
        assert!(!files.is_empty(), "no source files in {}", dir.display());
        for file in files {
            let lines = code_lines(&file);
            for (i, (n, line)) in lines.iter().enumerate() {
                for name in names_after(line, &lines[i + 1..], "crate::") {
                    if forbidden.contains(&name.as_str()) {
                        violations.push(format!(
                            "{}:{n}: {module}/ names crate::{name}: {}",
                            file.display(),
                            line.trim()
                        ));
                    }
                    seen.insert((module, name));
                }
            }
        }
    }
    assert!(violations.is_empty(), "{}", violations.join("\n"));
    // The scan reads what it should: the shells do depend on the protocol.
    assert!(
        seen.contains(&("client", "protocol".to_string())),
        "{seen:?}"
    );
    assert!(
        seen.contains(&("tracker", "protocol".to_string())),
        "{seen:?}"
    );
}

#[test]
fn no_runtime_module_left() {
    // The client's data plane lives in client/ (it was runtime/, which imported client/ back).
    assert!(!manifest_dir().join("src/runtime").exists());
}

#[test]
fn bindings_and_demo_import_from_the_crate_root_only() {
    let workspace = manifest_dir().join("..");
    let mut violations = Vec::new();
    let mut files = Vec::new();
    for dir in ["messenger-ffi/src", "messenger-py/src", "demo/src"] {
        rust_files(&workspace.join(dir), &mut files);
    }
    assert!(files.len() > 10, "too few files found: {files:?}");
    for file in &files {
        let lines = code_lines(file);
        for (i, (n, line)) in lines.iter().enumerate() {
            for name in names_after(line, &lines[i + 1..], "messenger_core::") {
                // A module's name starts with a lower-case letter; items at the root do not
                // (`Client`, `FAULTS_ENV`).
                if name.starts_with(|c: char| c.is_ascii_lowercase()) {
                    violations.push(format!(
                        "{}:{n}: messenger_core::{name}: {}",
                        file.display(),
                        line.trim()
                    ));
                }
            }
        }
    }
    assert!(violations.is_empty(), "{}", violations.join("\n"));
}
