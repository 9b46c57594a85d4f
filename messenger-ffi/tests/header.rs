//! include/messenger.h is generated from this crate by cbindgen and committed; this test
//! generates it again and fails if the committed file differs. To refresh it:
//!
//! ```sh
//! MESSENGER_BLESS=1 cargo test -p messenger-ffi --test header
//! ```

use std::path::{Path, PathBuf};

const BLESS: &str = "MESSENGER_BLESS";

fn crate_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn header_path() -> PathBuf {
    crate_dir().join("../include/messenger.h")
}

fn generate(crate_dir: &Path) -> String {
    let config = cbindgen::Config::from_file(crate_dir.join("cbindgen.toml"))
        .unwrap_or_else(|e| panic!("cannot read cbindgen.toml: {e}"));
    let bindings = cbindgen::Builder::new()
        .with_crate(crate_dir)
        .with_config(config)
        .generate()
        .unwrap_or_else(|e| panic!("cbindgen cannot generate the header: {e}"));
    let mut out = Vec::new();
    bindings.write(&mut out);
    String::from_utf8(out).expect("the header is UTF-8")
}

#[test]
fn the_committed_header_is_up_to_date() {
    let generated = generate(&crate_dir());
    let path = header_path();
    if std::env::var_os(BLESS).is_some_and(|v| v == "1") {
        std::fs::write(&path, &generated)
            .unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
        return;
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    if committed != generated {
        let first = committed
            .lines()
            .zip(generated.lines())
            .position(|(a, b)| a != b)
            .unwrap_or_else(|| committed.lines().count().min(generated.lines().count()));
        panic!(
            "include/messenger.h is stale (first difference at line {}: committed {:?}, \
             generated {:?}); refresh it with:\n    {BLESS}=1 cargo test -p messenger-ffi \
             --test header",
            first + 1,
            committed.lines().nth(first).unwrap_or("<end of file>"),
            generated.lines().nth(first).unwrap_or("<end of file>"),
        );
    }
}

/// Every exported function has a doc comment in the header, and every name starts with
/// `messenger_`.
#[test]
fn every_function_is_documented_and_prefixed() {
    let header = generate(&crate_dir());
    let lines: Vec<&str> = header.lines().collect();
    let mut functions = 0;
    for (i, line) in lines.iter().enumerate() {
        let is_prototype = !line.starts_with(' ')
            && !line.starts_with('#')
            && !line.starts_with('*')
            && !line.starts_with('/')
            && !line.starts_with("typedef")
            && line.contains('(');
        if !is_prototype {
            continue;
        }
        functions += 1;
        let name = line
            .split('(')
            .next()
            .and_then(|head| head.split_whitespace().last())
            .map(|n| n.trim_start_matches('*'))
            .unwrap_or_default();
        assert!(name.starts_with("messenger_"), "{name} is not prefixed");
        assert!(
            i > 0 && lines[i - 1].trim_end() == " */",
            "{name} has no doc comment in the header"
        );
    }
    assert!(functions >= 29, "only {functions} functions found");
    for line in &lines {
        if let Some(rest) = line.strip_prefix("typedef struct ") {
            assert!(
                rest.starts_with("messenger_"),
                "type {rest} is not prefixed"
            );
        }
    }
}
