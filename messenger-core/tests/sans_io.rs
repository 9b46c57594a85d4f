//! The protocol layer is sans-IO: no async runtime, no sockets, no clock. This guards it.

use std::path::Path;

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
    let mut checked = 0;
    // Every `.rs` file under the directory, sub-folders (a module split into files) included.
    let mut dirs = vec![dir];
    let mut files = Vec::new();
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).expect("protocol dir") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                files.push(path);
            }
        }
    }
    for path in files {
        let text = std::fs::read_to_string(&path).expect("readable");
        for word in forbidden {
            assert!(
                !text.contains(word),
                "{} uses `{word}`: the protocol must stay sans-IO",
                path.display()
            );
        }
        checked += 1;
    }
    assert!(checked >= 7, "only {checked} protocol files found");
}
