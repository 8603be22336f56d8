//! The settings file: `<data dir>/dev.httvps.desktop/settings.json`, the
//! file the single-process app wrote with tauri-plugin-store, so that users
//! keep their profiles and preferences across the split. It is a JSON object
//! whose `settings` key holds [`app::Settings`]; other keys are kept. Only
//! what `app::Settings` holds goes there: no tokens.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use app::{Settings, SettingsStorage};
use serde_json::{Map, Value};

/// The app's directory under the data directory (Tauri's app identifier,
/// where tauri-plugin-store kept the file).
const APP_DIR: &str = "dev.httvps.desktop";
/// The settings file in that directory.
const FILE: &str = "settings.json";
/// The one key under which the settings live.
const KEY: &str = "settings";

/// Why the settings file could not be found, read or written.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// Neither `$XDG_DATA_HOME` nor a home directory is known.
    #[error("no data directory to keep the settings in (no home directory)")]
    NoDataDir,
    /// Reading, writing or renaming failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// What the system said.
        source: io::Error,
    },
    /// The file is not JSON, or its settings are not settings.
    #[error("{} is not valid: {source}", path.display())]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What the parser said.
        source: serde_json::Error,
    },
    /// The file is JSON but not an object.
    #[error("{} is not valid: not a JSON object", path.display())]
    NotAnObject {
        /// The file.
        path: PathBuf,
    },
}

/// [`SettingsStorage`] in a JSON file, replaced atomically on each save.
#[derive(Debug)]
pub struct FileStorage {
    path: PathBuf,
    /// Serialises saves: each one reads the other keys, then replaces the
    /// file.
    writing: Mutex<()>,
}

impl FileStorage {
    /// The settings in the file at `path`.
    pub fn at(path: PathBuf) -> FileStorage {
        FileStorage {
            path,
            writing: Mutex::new(()),
        }
    }

    /// Where the settings are kept: `$XDG_DATA_HOME` (or `~/.local/share`)
    /// `/dev.httvps.desktop/settings.json`; `None` without a home directory.
    pub fn default_path() -> Option<PathBuf> {
        let dirs = directories::BaseDirs::new()?;
        Some(dirs.data_dir().join(APP_DIR).join(FILE))
    }

    /// The settings at [`FileStorage::default_path`].
    pub fn open_default() -> Result<FileStorage, StorageError> {
        Self::default_path()
            .map(FileStorage::at)
            .ok_or(StorageError::NoDataDir)
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The file's JSON object; `None` when there is no file.
    fn read_object(&self) -> Result<Option<Map<String, Value>>, StorageError> {
        let bytes = match fs::read(&self.path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(source) => {
                return Err(StorageError::Io {
                    path: self.path.clone(),
                    source,
                });
            }
        };
        let value: Value =
            serde_json::from_slice(&bytes).map_err(|source| StorageError::Invalid {
                path: self.path.clone(),
                source,
            })?;
        match value {
            Value::Object(object) => Ok(Some(object)),
            _ => Err(StorageError::NotAnObject {
                path: self.path.clone(),
            }),
        }
    }

    fn load_settings(&self) -> Result<Option<Settings>, StorageError> {
        let Some(mut object) = self.read_object()? else {
            return Ok(None);
        };
        match object.remove(KEY) {
            None => Ok(None),
            Some(value) => {
                serde_json::from_value(value)
                    .map(Some)
                    .map_err(|source| StorageError::Invalid {
                        path: self.path.clone(),
                        source,
                    })
            }
        }
    }

    fn save_settings(&self, settings: &Settings) -> Result<(), StorageError> {
        let _writing = self.writing.lock().unwrap_or_else(|e| e.into_inner());
        let mut object = match self.read_object() {
            Ok(object) => object.unwrap_or_default(),
            // Content that is not a settings object was already reported by
            // `load` (the controller then started from defaults): replaced.
            Err(e @ (StorageError::Invalid { .. } | StorageError::NotAnObject { .. })) => {
                tracing::warn!("{e}; replacing it");
                Map::new()
            }
            // A file that cannot be read is not overwritten blindly.
            Err(e) => return Err(e),
        };
        let value = serde_json::to_value(settings).map_err(|source| StorageError::Invalid {
            path: self.path.clone(),
            source,
        })?;
        object.insert(KEY.to_owned(), value);
        let bytes = serde_json::to_vec_pretty(&object).map_err(|source| StorageError::Invalid {
            path: self.path.clone(),
            source,
        })?;
        write_atomically(&self.path, &bytes)
    }
}

impl SettingsStorage for FileStorage {
    fn load(&self) -> Result<Option<Settings>, String> {
        self.load_settings().map_err(|e| e.to_string())
    }

    fn save(&self, settings: &Settings) -> Result<(), String> {
        self.save_settings(settings).map_err(|e| e.to_string())
    }
}

/// Replaces `path` with `bytes` so that a crash leaves the old file or the
/// new one, never half of one: a temporary file in the same directory,
/// synced, then renamed over it. The directory is created private (0700)
/// and the file is readable by its owner only (0600).
fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), StorageError> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let io_error = |path: &Path| {
        let path = path.to_owned();
        move |source| StorageError::Io { path, source }
    };
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    create_private_dir(dir).map_err(io_error(dir))?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| FILE.to_owned());
    let temp = dir.join(format!(
        ".{name}.{}.{}.tmp",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let written = (|| {
        let mut file = private_file(&temp)?;
        file.write_all(bytes)?;
        file.sync_all()
    })();
    if let Err(source) = written {
        let _ = fs::remove_file(&temp);
        return Err(StorageError::Io { path: temp, source });
    }
    if let Err(source) = fs::rename(&temp, path) {
        let _ = fs::remove_file(&temp);
        return Err(StorageError::Io {
            path: path.to_owned(),
            source,
        });
    }
    // The rename itself is durable once the directory is synced; a failure
    // here leaves a complete file either way.
    if let Ok(dir) = fs::File::open(dir) {
        let _ = dir.sync_all();
    }
    Ok(())
}

#[cfg(unix)]
fn create_private_dir(dir: &Path) -> io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
}

#[cfg(not(unix))]
fn create_private_dir(dir: &Path) -> io::Result<()> {
    fs::create_dir_all(dir)
}

#[cfg(unix)]
fn private_file(path: &Path) -> io::Result<fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
}

#[cfg(not(unix))]
fn private_file(path: &Path) -> io::Result<fs::File> {
    fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn storage_in(dir: &tempfile::TempDir) -> FileStorage {
        FileStorage::at(dir.path().join(APP_DIR).join(FILE))
    }

    fn changed_settings() -> Settings {
        Settings {
            proxy_port: 2080,
            start_minimized: true,
            selected: Some("work".into()),
            ..Settings::default()
        }
    }

    #[test]
    fn saved_settings_load_back() {
        let dir = tempfile::tempdir().unwrap();
        let storage = storage_in(&dir);
        let settings = changed_settings();
        storage.save(&settings).unwrap();
        assert_eq!(storage.load().unwrap(), Some(settings.clone()));
        // A second save replaces the first.
        let again = Settings {
            proxy_port: 3080,
            ..settings
        };
        storage.save(&again).unwrap();
        assert_eq!(storage.load().unwrap(), Some(again));
        // No temporary file is left behind.
        let names: Vec<_> = fs::read_dir(storage.path().parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, [FILE]);
    }

    #[test]
    fn a_missing_file_is_a_first_run() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(storage_in(&dir).load().unwrap(), None);
        // So is a file without settings.
        let path = dir.path().join("other.json");
        fs::write(&path, br#"{"window": {"width": 800}}"#).unwrap();
        assert_eq!(FileStorage::at(path).load().unwrap(), None);
    }

    #[test]
    fn an_invalid_file_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        for (name, content) in [
            ("broken.json", &b"{\"settings\": "[..]),
            ("array.json", b"[1, 2]"),
            ("wrong.json", br#"{"settings": {"proxy_port": "high"}}"#),
        ] {
            let path = dir.path().join(name);
            fs::write(&path, content).unwrap();
            let error = FileStorage::at(path).load().unwrap_err();
            assert!(error.contains(name), "{error}");
        }
    }

    #[test]
    fn a_partial_file_takes_defaults_for_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let storage = storage_in(&dir);
        fs::create_dir_all(storage.path().parent().unwrap()).unwrap();
        fs::write(storage.path(), br#"{"settings": {"proxy_port": 1234}}"#).unwrap();
        let settings = storage.load().unwrap().unwrap();
        assert_eq!(
            settings,
            Settings {
                proxy_port: 1234,
                ..Settings::default()
            }
        );
    }

    #[test]
    fn unrelated_keys_are_kept() {
        let dir = tempfile::tempdir().unwrap();
        let storage = storage_in(&dir);
        fs::create_dir_all(storage.path().parent().unwrap()).unwrap();
        fs::write(
            storage.path(),
            br#"{"window": {"width": 800}, "settings": {"proxy_port": 1234}}"#,
        )
        .unwrap();
        storage.save(&changed_settings()).unwrap();
        let object: Value = serde_json::from_slice(&fs::read(storage.path()).unwrap()).unwrap();
        assert_eq!(object["window"]["width"], 800);
        assert_eq!(object["settings"]["proxy_port"], 2080);
    }

    #[test]
    fn a_broken_file_is_replaced_on_save() {
        let dir = tempfile::tempdir().unwrap();
        let storage = storage_in(&dir);
        fs::create_dir_all(storage.path().parent().unwrap()).unwrap();
        fs::write(storage.path(), b"not json").unwrap();
        assert!(storage.load().is_err());
        storage.save(&changed_settings()).unwrap();
        assert_eq!(storage.load().unwrap(), Some(changed_settings()));
    }

    #[test]
    fn a_file_that_cannot_be_read_is_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let storage = storage_in(&dir);
        // A directory where the file should be.
        fs::create_dir_all(storage.path().join("inside")).unwrap();
        let error = storage.load().unwrap_err();
        assert!(error.contains(FILE), "{error}");
        assert!(storage.save(&changed_settings()).is_err());
        assert!(storage.path().join("inside").is_dir());
    }

    #[cfg(unix)]
    #[test]
    fn the_file_is_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let storage = storage_in(&dir);
        // A file left readable by others (as the plugin's was) is replaced
        // by a private one.
        fs::create_dir_all(storage.path().parent().unwrap()).unwrap();
        fs::write(storage.path(), b"{}").unwrap();
        fs::set_permissions(storage.path(), fs::Permissions::from_mode(0o644)).unwrap();
        storage.save(&changed_settings()).unwrap();
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(storage.path()), 0o600);
        // A directory the save creates is private too.
        let fresh = FileStorage::at(dir.path().join("new").join(FILE));
        fresh.save(&changed_settings()).unwrap();
        assert_eq!(mode(fresh.path()), 0o600);
        assert_eq!(mode(&dir.path().join("new")), 0o700);
    }

    #[test]
    fn the_default_path_is_the_plugins_file() {
        let Some(path) = FileStorage::default_path() else {
            return;
        };
        assert!(
            path.ends_with("dev.httvps.desktop/settings.json"),
            "{}",
            path.display()
        );
    }
}
