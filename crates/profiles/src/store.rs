//! The profiles file: `default = "name"` and one `[[profile]]` table per
//! profile, kept in the platform's config directory. Secrets are never in it.

use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// A profile could not be loaded, saved or used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProfileError {
    /// The file could not be read or written.
    #[error("{action} {path}: {source}")]
    Io {
        /// What we were doing.
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not valid TOML of the expected shape.
    #[error("{path} is not a valid profiles file: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The parser's explanation (with line and column).
        message: String,
    },
    /// A profile's fields do not make sense together.
    #[error("profile {name:?}: {message}")]
    Invalid {
        /// The profile.
        name: String,
        /// What is wrong and how to fix it.
        message: String,
    },
    /// No profile by that name.
    #[error("no profile named {0:?} (see `httvps profiles`)")]
    NotFound(String),
    /// The platform has no config directory (no home directory).
    #[error("cannot find a configuration directory for this user")]
    NoConfigDir,
}

impl ProfileError {
    /// An [`ProfileError::Invalid`] for profile `name`.
    pub fn invalid(name: &str, message: impl Into<String>) -> ProfileError {
        ProfileError::Invalid {
            name: name.to_owned(),
            message: message.into(),
        }
    }
}

/// What the store needs of a profile type.
pub trait StoredProfile: Serialize + DeserializeOwned + Clone {
    /// The unique name (also the keychain account prefix).
    fn name(&self) -> &str;
    /// Checks that the fields make sense together; [`ProfileStore::load`]
    /// refuses a file with an invalid profile.
    fn validate(&self) -> Result<(), ProfileError>;
}

/// Checks a profile name: non-empty, and no `/` (the keychain account
/// separator).
pub fn check_name(name: &str) -> Result<(), ProfileError> {
    if name.trim().is_empty() || name.contains('/') {
        return Err(ProfileError::invalid(
            name,
            "the name must be non-empty and contain no '/'",
        ));
    }
    Ok(())
}

/// The whole file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, bound = "P: StoredProfile")]
pub struct ProfilesFile<P> {
    /// The profile used when none is named.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<String>,
    /// The profiles.
    #[serde(default, rename = "profile")]
    pub profiles: Vec<P>,
}

impl<P> Default for ProfilesFile<P> {
    fn default() -> Self {
        ProfilesFile {
            default: None,
            profiles: Vec::new(),
        }
    }
}

impl<P: StoredProfile> ProfilesFile<P> {
    /// The named profile, or the default one, or the only one.
    pub fn pick(&self, name: Option<&str>) -> Result<&P, ProfileError> {
        let wanted = name.or(self.default.as_deref());
        match wanted {
            Some(name) => self
                .profiles
                .iter()
                .find(|p| p.name() == name)
                .ok_or_else(|| ProfileError::NotFound(name.to_owned())),
            None if self.profiles.len() == 1 => Ok(&self.profiles[0]),
            None => Err(ProfileError::NotFound(
                "(none given; use --profile NAME)".into(),
            )),
        }
    }

    /// Adds or replaces a profile by name.
    pub fn upsert(&mut self, profile: P) {
        match self
            .profiles
            .iter_mut()
            .find(|p| p.name() == profile.name())
        {
            Some(existing) => *existing = profile,
            None => self.profiles.push(profile),
        }
    }

    /// Removes a profile; returns whether it existed.
    pub fn remove(&mut self, name: &str) -> bool {
        let before = self.profiles.len();
        self.profiles.retain(|p| p.name() != name);
        if self.default.as_deref() == Some(name) {
            self.default = None;
        }
        self.profiles.len() != before
    }
}

/// Reads and writes the profiles file.
#[derive(Debug, Clone)]
pub struct ProfileStore {
    path: PathBuf,
}

impl ProfileStore {
    /// The file at `path`.
    pub fn at(path: impl Into<PathBuf>) -> Self {
        ProfileStore { path: path.into() }
    }

    /// `profiles.toml` in the platform config dir (e.g. `~/.config/httvps/`).
    pub fn default_location() -> Result<Self, ProfileError> {
        let dirs =
            directories::ProjectDirs::from("", "", "httvps").ok_or(ProfileError::NoConfigDir)?;
        Ok(ProfileStore::at(dirs.config_dir().join("profiles.toml")))
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Loads the file; a missing file is an empty one. Every profile is
    /// validated, so a bad one is reported here, with the file's name.
    pub fn load<P: StoredProfile>(&self) -> Result<ProfilesFile<P>, ProfileError> {
        let text = match std::fs::read_to_string(&self.path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(ProfilesFile::default());
            }
            Err(source) => {
                return Err(ProfileError::Io {
                    action: "reading",
                    path: self.path.clone(),
                    source,
                });
            }
        };
        let file: ProfilesFile<P> = toml::from_str(&text).map_err(|e| ProfileError::Parse {
            path: self.path.clone(),
            message: e.to_string(),
        })?;
        for profile in &file.profiles {
            profile.validate()?;
        }
        Ok(file)
    }

    /// Saves atomically (write a temporary file, then rename).
    pub fn save<P: StoredProfile>(&self, file: &ProfilesFile<P>) -> Result<(), ProfileError> {
        let io = |action, source| ProfileError::Io {
            action,
            path: self.path.clone(),
            source,
        };
        if let Some(dir) = self.path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| io("creating the directory of", e))?;
        }
        let text = toml::to_string_pretty(file).map_err(|e| ProfileError::Parse {
            path: self.path.clone(),
            message: e.to_string(),
        })?;
        let tmp = self.path.with_extension("toml.tmp");
        std::fs::write(&tmp, text).map_err(|e| io("writing", e))?;
        std::fs::rename(&tmp, &self.path).map_err(|e| io("replacing", e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Plain {
        name: String,
        port: u16,
    }

    impl StoredProfile for Plain {
        fn name(&self) -> &str {
            &self.name
        }
        fn validate(&self) -> Result<(), ProfileError> {
            check_name(&self.name)?;
            if self.port == 0 {
                return Err(ProfileError::invalid(&self.name, "port 0"));
            }
            Ok(())
        }
    }

    fn plain(name: &str, port: u16) -> Plain {
        Plain {
            name: name.into(),
            port,
        }
    }

    #[test]
    fn round_trips_and_picks() {
        let dir = tempfile::tempdir().unwrap();
        let store = ProfileStore::at(dir.path().join("sub/profiles.toml"));
        assert_eq!(store.load::<Plain>().unwrap(), ProfilesFile::default());
        let mut file = ProfilesFile::default();
        file.upsert(plain("a", 1));
        file.upsert(plain("b", 2));
        file.upsert(plain("a", 3));
        file.default = Some("b".into());
        store.save(&file).unwrap();
        let back: ProfilesFile<Plain> = store.load().unwrap();
        assert_eq!(back, file);
        assert_eq!(back.profiles.len(), 2);
        assert_eq!(back.pick(None).unwrap().port, 2);
        assert_eq!(back.pick(Some("a")).unwrap().port, 3);
        assert!(matches!(
            back.pick(Some("zz")),
            Err(ProfileError::NotFound(_))
        ));
        let mut back = back;
        assert!(back.remove("b"));
        assert_eq!(back.default, None);
        assert!(!back.remove("b"));
    }

    #[test]
    fn load_refuses_invalid_profiles_and_names_the_file_and_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("profiles.toml");
        std::fs::write(&path, "[[profile]]\nname = \"a\"\nport = 0\n").unwrap();
        let err = ProfileStore::at(&path).load::<Plain>().unwrap_err();
        assert!(err.to_string().contains("port 0"), "{err}");
        std::fs::write(&path, "[[profile]]\nname = \"a\"\nport = \"x\"\n").unwrap();
        let err = ProfileStore::at(&path)
            .load::<Plain>()
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("profiles.toml") && err.contains("line"),
            "{err}"
        );
    }

    #[test]
    fn names_are_checked() {
        assert!(check_name("work").is_ok());
        assert!(check_name(" ").is_err());
        assert!(check_name("a/b").is_err());
    }
}
