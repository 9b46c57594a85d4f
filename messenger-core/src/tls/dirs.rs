//! Where a tracker keeps its key and a client its known trackers, unless told otherwise.

use std::io;
use std::path::{Path, PathBuf};

/// Environment variable naming the state directory (tracker keys).
pub const STATE_DIR_ENV: &str = "MESSENGER_STATE_DIR";
/// Environment variable naming the configuration directory (known trackers).
pub const CONFIG_DIR_ENV: &str = "MESSENGER_CONFIG_DIR";

fn env_dir(name: &str) -> Option<PathBuf> {
    // The XDG rule: an empty or relative value is ignored.
    std::env::var_os(name)
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
}

fn home() -> Option<PathBuf> {
    env_dir("HOME")
}

/// The default state directory, where a tracker without a configured certificate keeps its
/// key pair: `$MESSENGER_STATE_DIR` if set, else `$XDG_STATE_HOME/messenger`, else
/// `~/.local/state/messenger`. `None` when none of them is known.
pub fn default_state_dir() -> Option<PathBuf> {
    env_dir(STATE_DIR_ENV)
        .or_else(|| env_dir("XDG_STATE_HOME").map(|d| d.join("messenger")))
        .or_else(|| home().map(|h| h.join(".local/state/messenger")))
}

/// The default configuration directory, which holds the known-trackers file:
/// `$MESSENGER_CONFIG_DIR` if set, else `$XDG_CONFIG_HOME/messenger`, else
/// `~/.config/messenger`. `None` when none of them is known.
pub fn default_config_dir() -> Option<PathBuf> {
    env_dir(CONFIG_DIR_ENV)
        .or_else(|| env_dir("XDG_CONFIG_HOME").map(|d| d.join("messenger")))
        .or_else(|| home().map(|h| h.join(".config/messenger")))
}

/// The default known-trackers file: `known_trackers` in [`default_config_dir`].
pub fn default_known_trackers() -> Option<PathBuf> {
    default_config_dir().map(|d| d.join(super::KNOWN_TRACKERS_FILE))
}

/// Creates `dir` (and its parents) if missing; a directory this creates is readable by its
/// owner only (0700 on Unix).
pub(crate) fn create_private_dir(dir: &Path) -> io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(dir)
}

/// Options to create a file readable and writable by its owner only (0600 on Unix).
pub(crate) fn private_file_options() -> std::fs::OpenOptions {
    let mut options = std::fs::OpenOptions::new();
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options
}
