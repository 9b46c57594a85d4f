//! `messenger`: the terminal program. The chat, tracker and bench subcommands arrive with the
//! runtime (see the open issues); until then this binary says so instead of pretending.

fn main() {
    eprintln!(
        "messenger {}: the chat, tracker and bench commands are not built yet; \
         the protocol core (messenger-core) is. See README.md.",
        env!("CARGO_PKG_VERSION")
    );
    std::process::exit(2);
}
