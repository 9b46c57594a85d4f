//! The crate's conventions, checked on its source: every exported function's body is inside
//! the panic boundary, and is named `messenger_...`.

use std::path::PathBuf;

#[test]
fn every_exported_function_is_inside_the_panic_boundary() {
    let src = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut checked = 0;
    for entry in std::fs::read_dir(&src).expect("src/") {
        let path = entry.expect("entry").path();
        if path.extension().is_none_or(|e| e != "rs") {
            continue;
        }
        let text = std::fs::read_to_string(&path).expect("source");
        let file = path.file_name().unwrap_or_default().to_string_lossy();
        for (at, _) in text.match_indices("#[no_mangle]") {
            let rest = &text[at..];
            let signature = rest
                .find("pub extern \"C\" fn ")
                .map(|i| &rest[i + "pub extern \"C\" fn ".len()..])
                .unwrap_or_else(|| panic!("{file}: #[no_mangle] without a pub extern \"C\" fn"));
            let name: String = signature
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            assert!(
                name.starts_with("messenger_"),
                "{file}: {name} is not prefixed"
            );
            let body = signature
                .find('{')
                .map(|i| signature[i + 1..].trim_start())
                .unwrap_or_default();
            assert!(
                body.starts_with("ffi_panic_boundary!"),
                "{file}: the body of {name} is not inside ffi_panic_boundary!"
            );
            checked += 1;
        }
    }
    assert!(checked >= 29, "only {checked} exported functions found");
}
