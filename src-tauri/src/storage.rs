//! Settings persisted with tauri-plugin-store (`settings.json` in the app's
//! data directory). Only what `app::Settings` holds goes there: no
//! tokens.

use std::sync::Arc;

use app::{Settings, SettingsStorage};
use tauri::{AppHandle, Wry};
use tauri_plugin_store::{Store, StoreExt};

/// The store file, relative to the app's data directory.
const FILE: &str = "settings.json";
/// The one key under which the settings live.
const KEY: &str = "settings";

/// [`SettingsStorage`] over the plugin's store.
pub struct PluginStorage {
    store: Arc<Store<Wry>>,
}

impl PluginStorage {
    /// Opens (or creates) the store.
    pub fn open(app: &AppHandle) -> Result<PluginStorage, String> {
        let store = app
            .store(FILE)
            .map_err(|e| format!("cannot open {FILE}: {e}"))?;
        Ok(PluginStorage { store })
    }
}

impl SettingsStorage for PluginStorage {
    fn load(&self) -> Result<Option<Settings>, String> {
        match self.store.get(KEY) {
            None => Ok(None),
            Some(value) => serde_json::from_value(value)
                .map(Some)
                .map_err(|e| format!("{FILE} is not valid: {e}")),
        }
    }

    fn save(&self, settings: &Settings) -> Result<(), String> {
        let value = serde_json::to_value(settings).map_err(|e| e.to_string())?;
        self.store.set(KEY, value);
        self.store.save().map_err(|e| e.to_string())
    }
}
