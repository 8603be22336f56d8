//! Start on login: the XDG autostart entry
//! `$XDG_CONFIG_HOME/autostart/httvps.desktop` (or `~/.config/autostart`),
//! which starts this executable with `--minimized`, in the tray.
//!
//! Written by hand rather than with the `auto-launch` crate: auto-launch 0.6
//! always writes under `~/.config/autostart` (ignoring `$XDG_CONFIG_HOME`),
//! puts the executable's path in `Exec` unquoted (a path with a space starts
//! nothing) and cannot be pointed at another directory for tests. The file
//! name is the one tauri-plugin-autostart wrote for the single-process app
//! (its product name, `httvps`), so enabling replaces that entry and
//! disabling removes it.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

/// The entry's file name.
const ENTRY: &str = "httvps.desktop";
/// The argument that starts the app in the tray.
pub const MINIMIZED_ARG: &str = "--minimized";

/// Why the login item could not be changed.
#[derive(Debug, thiserror::Error)]
pub enum AutostartError {
    /// The running executable's path is unknown.
    #[error("cannot find this program's path: {0}")]
    NoExe(io::Error),
    /// Neither `$XDG_CONFIG_HOME` nor a home directory is known.
    #[error("no configuration directory for the autostart entry (no home directory)")]
    NoConfigDir,
    /// A desktop entry holds UTF-8 only.
    #[error("the program's path {} is not UTF-8", .0.display())]
    NotUtf8(PathBuf),
    /// Writing or removing the entry failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The entry or its directory.
        path: PathBuf,
        /// What the system said.
        source: io::Error,
    },
}

/// The login item for an executable.
#[derive(Debug, Clone)]
pub struct LoginItem {
    exe: PathBuf,
    /// The autostart directory; `None` for the user's, found when used.
    dir: Option<PathBuf>,
}

impl LoginItem {
    /// The login item starting `exe`, in the user's autostart directory.
    pub fn new(exe: PathBuf) -> LoginItem {
        LoginItem { exe, dir: None }
    }

    /// The login item starting `exe`, with its entry in `autostart_dir`.
    pub fn with_dir(exe: PathBuf, autostart_dir: PathBuf) -> LoginItem {
        LoginItem {
            exe,
            dir: Some(autostart_dir),
        }
    }

    /// The login item starting the running executable (`httvps-tray`).
    pub fn for_this_exe() -> Result<LoginItem, AutostartError> {
        std::env::current_exe()
            .map(LoginItem::new)
            .map_err(AutostartError::NoExe)
    }

    /// The user's autostart directory: `$XDG_CONFIG_HOME/autostart`, or
    /// `~/.config/autostart`.
    pub fn default_dir() -> Option<PathBuf> {
        let dirs = directories::BaseDirs::new()?;
        Some(dirs.config_dir().join("autostart"))
    }

    /// Where the entry is (whether or not it exists).
    pub fn entry_path(&self) -> Result<PathBuf, AutostartError> {
        let dir = match &self.dir {
            Some(dir) => dir.clone(),
            None => Self::default_dir().ok_or(AutostartError::NoConfigDir)?,
        };
        Ok(dir.join(ENTRY))
    }

    /// Writes the entry (replacing one that is there).
    pub fn enable(&self) -> Result<(), AutostartError> {
        let path = self.entry_path()?;
        let entry = desktop_entry(&self.exe)?;
        if let Some(dir) = path.parent() {
            fs::create_dir_all(dir).map_err(|source| AutostartError::Io {
                path: dir.to_owned(),
                source,
            })?;
        }
        fs::write(&path, entry).map_err(|source| AutostartError::Io { path, source })
    }

    /// Removes the entry (nothing to do when there is none).
    pub fn disable(&self) -> Result<(), AutostartError> {
        let path = self.entry_path()?;
        match fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(source) => Err(AutostartError::Io { path, source }),
        }
    }

    /// Whether the entry exists.
    pub fn is_enabled(&self) -> Result<bool, AutostartError> {
        Ok(self.entry_path()?.exists())
    }
}

impl app::Autostart for LoginItem {
    fn set(&self, enabled: bool) -> Result<(), String> {
        let result = if enabled {
            self.enable()
        } else {
            self.disable()
        };
        result.map_err(|e| e.to_string())
    }
}

/// The desktop entry starting `exe --minimized`.
fn desktop_entry(exe: &Path) -> Result<String, AutostartError> {
    let exe = exe
        .to_str()
        .ok_or_else(|| AutostartError::NotUtf8(exe.to_owned()))?;
    Ok(format!(
        "[Desktop Entry]\n\
         Type=Application\n\
         Version=1.0\n\
         Name=httvps\n\
         Comment=Keeps httvps in the tray from login\n\
         Exec={} {MINIMIZED_ARG}\n\
         Terminal=false\n\
         StartupNotify=false\n\
         X-GNOME-Autostart-enabled=true\n",
        exec_argument(exe)
    ))
}

/// One `Exec` argument per the Desktop Entry spec: double-quoted with `"`,
/// `` ` ``, `$` and `\` escaped by a backslash, `%` doubled (field codes),
/// then escaped once more as a string value (backslashes doubled, control
/// characters as `\n`, `\t`, `\r`). Checked with GLib's parser (`gio
/// launch`), which accepts all of these except `%%`: it looks for the
/// program before expanding it, so a path with `%` does not start under
/// GNOME (KDE follows the spec).
fn exec_argument(arg: &str) -> String {
    let mut quoted = String::with_capacity(arg.len() + 2);
    quoted.push('"');
    for c in arg.chars() {
        match c {
            '"' | '`' | '$' | '\\' => {
                quoted.push('\\');
                quoted.push(c);
            }
            '%' => quoted.push_str("%%"),
            _ => quoted.push(c),
        }
    }
    quoted.push('"');
    let mut value = String::with_capacity(quoted.len());
    for c in quoted.chars() {
        match c {
            '\\' => value.push_str("\\\\"),
            '\n' => value.push_str("\\n"),
            '\t' => value.push_str("\\t"),
            '\r' => value.push_str("\\r"),
            _ => value.push(c),
        }
    }
    value
}

#[cfg(test)]
mod tests {
    use super::*;
    use app::Autostart;

    fn exec_line(entry: &str) -> &str {
        entry
            .lines()
            .find_map(|l| l.strip_prefix("Exec="))
            .expect("an Exec line")
    }

    #[test]
    fn enable_writes_the_entry_and_disable_removes_it() {
        let dir = tempfile::tempdir().unwrap();
        let autostart = dir.path().join("config").join("autostart");
        let item = LoginItem::with_dir("/opt/httvps/httvps-tray".into(), autostart.clone());
        let path = autostart.join("httvps.desktop");
        assert_eq!(item.entry_path().unwrap(), path);
        assert!(!item.is_enabled().unwrap());

        item.set(true).unwrap();
        let entry = fs::read_to_string(&path).unwrap();
        assert!(entry.starts_with("[Desktop Entry]\n"), "{entry}");
        assert!(entry.contains("\nType=Application\n"), "{entry}");
        assert_eq!(exec_line(&entry), "\"/opt/httvps/httvps-tray\" --minimized");
        // Twice is fine and leaves one entry.
        item.set(true).unwrap();
        assert_eq!(fs::read_to_string(&path).unwrap(), entry);
        assert_eq!(fs::read_dir(&autostart).unwrap().count(), 1);

        item.set(false).unwrap();
        assert!(!path.exists());
        // Disabling what is not there is fine too.
        item.set(false).unwrap();
        assert!(!item.is_enabled().unwrap());
    }

    #[test]
    fn the_path_is_quoted_per_the_desktop_entry_spec() {
        assert_eq!(
            exec_argument("/usr/bin/httvps-tray"),
            r#""/usr/bin/httvps-tray""#
        );
        assert_eq!(
            exec_argument("/home/a b/My $HOME/100%/x\"y`z"),
            r#""/home/a b/My \\$HOME/100%%/x\\"y\\`z""#
        );
        // A literal backslash takes four.
        assert_eq!(exec_argument(r"/a\b"), r#""/a\\\\b""#);
        assert_eq!(exec_argument("/a\nb"), r#""/a\nb""#);
    }

    #[cfg(unix)]
    #[test]
    fn a_path_that_is_not_utf8_is_refused() {
        use std::ffi::OsStr;
        use std::os::unix::ffi::OsStrExt;
        let dir = tempfile::tempdir().unwrap();
        let exe = PathBuf::from(OsStr::from_bytes(b"/opt/\xff/httvps-tray"));
        let item = LoginItem::with_dir(exe, dir.path().to_owned());
        assert!(matches!(item.enable(), Err(AutostartError::NotUtf8(_))));
        assert!(!item.is_enabled().unwrap());
    }

    #[test]
    fn the_running_executable_is_found() {
        let item = LoginItem::for_this_exe().unwrap();
        assert!(item.exe.is_absolute(), "{}", item.exe.display());
    }
}
