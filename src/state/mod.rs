//! The state directory: host identity and paired clients, each one file written atomically
//! (temp file, fsync, rename, fsync of the directory), so a crash never leaves half a file.
//! A file that fails to parse is reported with its path and left untouched.

pub mod clients;
pub mod identity;
pub mod permissions;

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use thiserror::Error;

/// Why state could not be read or written.
#[derive(Debug, Error)]
pub enum StateError {
    /// An OS error on a state file or directory.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// A state file exists but its contents are not what Hati wrote.
    #[error("{path} is corrupt ({message}); fix or move it away, Hati will not overwrite it")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What failed to parse.
        message: String,
    },
    /// Generating the host certificate failed.
    #[error("cannot generate the host certificate: {0}")]
    Certificate(String),
    /// The directory was written by a newer Hati whose format this one cannot read.
    #[error(
        "{path} says format {found}, written by a newer Hati; this one reads formats up to \
         {STATE_FORMAT}: run the newer Hati, or give this one another --state-dir (nothing was changed)"
    )]
    TooNew {
        /// The format file.
        path: PathBuf,
        /// The format it names.
        found: u32,
    },
}

/// The state directory's format, kept in its `format` file. 1: `identity.json`,
/// `clients.json`, `api-token` as written since the first release. A directory without the
/// file was written before the file existed, in format 1. A later format adds its step to
/// [`StateDir::migrate`]; files are only ever rewritten atomically, never replaced by new ones.
pub const STATE_FORMAT: u32 = 1;

/// The directory holding Hati's persistent state.
#[derive(Debug, Clone)]
pub struct StateDir {
    root: PathBuf,
}

impl StateDir {
    /// Opens (creating with mode 0700 if needed) the state directory at `root`.
    pub fn open(root: impl Into<PathBuf>) -> Result<Self, StateError> {
        let root = root.into();
        fs::create_dir_all(&root).map_err(|source| StateError::Io {
            path: root.clone(),
            source,
        })?;
        fs::set_permissions(&root, fs::Permissions::from_mode(0o700)).map_err(|source| {
            StateError::Io {
                path: root.clone(),
                source,
            }
        })?;
        Ok(Self { root })
    }

    /// The default location: `$XDG_DATA_HOME/hati`, else `~/.local/share/hati`.
    pub fn default_path() -> PathBuf {
        match std::env::var_os("XDG_DATA_HOME").filter(|v| !v.is_empty()) {
            Some(data) => PathBuf::from(data).join("hati"),
            None => {
                let home = std::env::var_os("HOME").unwrap_or_else(|| "/root".into());
                PathBuf::from(home).join(".local/share/hati")
            }
        }
    }

    /// Brings a directory written by an older Hati to [`STATE_FORMAT`] (format 1 needs no
    /// change: its files are read as they are) and records the format; refuses, touching
    /// nothing, one written by a newer Hati. Returns the format found.
    pub fn migrate(&self) -> Result<u32, StateError> {
        let path = self.file("format");
        let found = match read_optional(&path)? {
            None => 1,
            Some(text) => text.trim().parse().map_err(|_| StateError::Corrupt {
                path: path.clone(),
                message: format!("{:?} is not a format number", text.trim()),
            })?,
        };
        if found > STATE_FORMAT {
            return Err(StateError::TooNew { path, found });
        }
        if found != STATE_FORMAT || !path.exists() {
            write_atomic(&path, format!("{STATE_FORMAT}\n").as_bytes(), 0o600)?;
        }
        Ok(found)
    }

    /// The directory itself.
    pub fn path(&self) -> &Path {
        &self.root
    }

    /// A file inside the directory.
    pub fn file(&self, name: &str) -> PathBuf {
        self.root.join(name)
    }

    /// The admin API's unix socket.
    pub fn admin_socket(&self) -> PathBuf {
        self.file("admin.sock")
    }

    /// The admin API's bearer token for other machines (`api-token`, mode 0600), created on
    /// first use. Delete the file and restart to replace it.
    pub fn api_token(&self) -> Result<String, StateError> {
        let path = self.file("api-token");
        if let Some(token) = read_optional(&path)? {
            let token = token.trim().to_owned();
            if token.len() >= 32 && token.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Ok(token);
            }
        }
        let token = hati_protocol::query::encode_hex(&crate::crypto::random::<24>());
        write_atomic(&path, format!("{token}\n").as_bytes(), 0o600)?;
        Ok(token)
    }

    /// Removes the temporary files of atomic writes a killed run left (`.NAME.tmp-PID`);
    /// returns how many. Call it at start-up, before anything writes state.
    pub fn remove_stale_temp_files(&self) -> usize {
        let Ok(entries) = fs::read_dir(&self.root) else {
            return 0;
        };
        let mut removed = 0;
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if is_temp_file_name(&name) && fs::remove_file(entry.path()).is_ok() {
                removed += 1;
            }
        }
        removed
    }
}

/// Whether `name` is what [`write_atomic`] names its temporary files.
fn is_temp_file_name(name: &str) -> bool {
    name.starts_with('.')
        && name
            .rsplit_once(".tmp-")
            .is_some_and(|(_, pid)| !pid.is_empty() && pid.bytes().all(|b| b.is_ascii_digit()))
}

/// Writes `contents` to `path` atomically with the given permission bits.
pub fn write_atomic(path: &Path, contents: &[u8], mode: u32) -> Result<(), StateError> {
    let io = |source| StateError::Io {
        path: path.to_owned(),
        source,
    };
    let dir = path.parent().unwrap_or(Path::new("."));
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let temp = dir.join(format!(".{file_name}.tmp-{}", std::process::id()));
    let result = (|| {
        let mut file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(mode)
            .open(&temp)?;
        file.write_all(contents)?;
        file.sync_all()?;
        fs::rename(&temp, path)?;
        File::open(dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = fs::remove_file(&temp);
    }
    result.map_err(io)
}

/// Reads `path`, or `None` if it does not exist.
pub fn read_optional(path: &Path) -> Result<Option<String>, StateError> {
    match fs::read_to_string(path) {
        Ok(text) => Ok(Some(text)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(StateError::Io {
            path: path.to_owned(),
            source,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_write_replaces_and_leaves_no_temp_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.json");
        write_atomic(&path, b"one", 0o600).unwrap();
        write_atomic(&path, b"two", 0o600).unwrap();
        assert_eq!(fs::read_to_string(&path).unwrap(), "two");
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["x.json"]);
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }

    #[test]
    fn migrate_reads_an_unversioned_directory_and_refuses_a_newer_one() {
        let dir = tempfile::tempdir().unwrap();
        let state = StateDir::open(dir.path()).unwrap();
        fs::write(state.file("clients.json"), b"[]").unwrap();
        assert_eq!(state.migrate().unwrap(), 1);
        assert_eq!(fs::read_to_string(state.file("format")).unwrap(), "1\n");
        assert_eq!(fs::read(state.file("clients.json")).unwrap(), b"[]");
        assert_eq!(state.migrate().unwrap(), 1);

        fs::write(state.file("format"), b"7\n").unwrap();
        let error = state.migrate().unwrap_err().to_string();
        assert!(
            error.contains("format 7") && error.contains("newer Hati"),
            "{error}"
        );
        assert_eq!(fs::read_to_string(state.file("format")).unwrap(), "7\n");

        fs::write(state.file("format"), b"seven").unwrap();
        let error = state.migrate().unwrap_err().to_string();
        assert!(error.contains("not a format number"), "{error}");
    }

    #[test]
    fn state_dir_is_private() {
        let dir = tempfile::tempdir().unwrap();
        let state = StateDir::open(dir.path().join("s")).unwrap();
        let mode = fs::metadata(state.path()).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700);
    }
}

#[cfg(test)]
mod temp_file_tests {
    use super::*;

    #[test]
    fn leftover_temp_files_are_removed_and_state_kept() {
        let dir = tempfile::tempdir().unwrap();
        let state = StateDir::open(dir.path().to_owned()).unwrap();
        write_atomic(&state.file("clients.json"), b"[]", 0o600).unwrap();
        std::fs::write(state.file(".clients.json.tmp-4242"), b"half").unwrap();
        std::fs::write(state.file(".identity.toml.tmp-17"), b"half").unwrap();
        std::fs::write(state.file("notes.tmp-x"), b"mine").unwrap();
        assert_eq!(state.remove_stale_temp_files(), 2);
        assert!(state.file("clients.json").exists());
        assert!(state.file("notes.tmp-x").exists());
        assert!(!state.file(".clients.json.tmp-4242").exists());
    }
}
