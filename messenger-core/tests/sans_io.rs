//! The protocol layer is sans-IO: no async runtime, no sockets, no clock. This guards it,
//! in every file under `src/protocol/`, subfolders included.

use std::path::{Path, PathBuf};

/// Every `.rs` file under `dir`, at any depth.
fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("readable directory") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn protocol_reads_no_clock_and_touches_no_socket() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/protocol");
    let forbidden = [
        "tokio",
        "Instant::now",
        "SystemTime::now",
        "std::net::UdpSocket",
        "std::net::TcpStream",
        "std::thread",
    ];
    let mut files = Vec::new();
    rust_files(&dir, &mut files);
    for path in &files {
        let text = std::fs::read_to_string(path).expect("readable");
        for word in forbidden {
            assert!(
                !text.contains(word),
                "{} uses `{word}`: the protocol must stay sans-IO",
                path.display()
            );
        }
    }
    // An empty or shallow walk must not pass: the protocol has at least this many files.
    assert!(
        files.len() >= 9,
        "only {} protocol files found under {}",
        files.len(),
        dir.display()
    );
}
