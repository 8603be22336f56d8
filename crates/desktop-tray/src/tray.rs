//! The tray icon: a StatusNotifierItem with a `com.canonical.dbusmenu` menu
//! (ksni, pure Rust over zbus: no GTK). Its look follows the session state;
//! its tooltip and menu show the live stream count, the rates and the
//! busiest streams (all computed by `app::TraySummary`); the menu connects,
//! disconnects, stops publishing or sharing, switches profile, shows the
//! window and quits. A left click shows the window.

use std::sync::{Arc, OnceLock};

use app::{Controller, TrayIcon, TraySummary};
use ksni::TrayMethods as _;
use ksni::menu::{CheckmarkItem, StandardItem, SubMenu};
use tokio::sync::watch;

/// The item's id and title.
const APP_NAME: &str = "httvps";
/// A theme icon, used only if an embedded icon could not be decoded.
const FALLBACK_ICON_NAME: &str = "network-vpn";

/// What the tray asks of the rest of the process.
///
/// Both are called on tokio's blocking pool, never on the tray's D-Bus
/// task, so they may block and may shut the tray down.
pub trait TrayShell: Send + Sync + 'static {
    /// Shows the window (starting the window process when there is none).
    fn show_window(&self);
    /// Quits the app: the window, the tunnel, the tray.
    fn quit(&self);
}

/// Why the tray could not be put on the bus.
#[derive(Debug, thiserror::Error)]
pub enum TrayError {
    /// No session bus, or the item could not be served on it.
    #[error("no tray icon: {0}")]
    Spawn(#[from] ksni::Error),
}

/// The running tray icon. Cheap to clone; the item leaves the bus when the
/// last clone is dropped or on [`Tray::shutdown`].
#[derive(Clone)]
pub struct Tray {
    shared: Arc<Shared>,
}

struct Shared {
    views: Arc<Views>,
    handle: ksni::Handle<Item>,
    updater: tokio::task::JoinHandle<()>,
}

impl Drop for Shared {
    fn drop(&mut self) {
        self.updater.abort();
        // Only queues the request: the D-Bus task removes the item.
        drop(self.handle.shutdown());
    }
}

/// Puts the tray icon on the session bus. Without a tray host (no
/// `StatusNotifierWatcher`: a desktop without a tray, a test bus) the item
/// is still served, and shows once a host appears.
pub async fn spawn(controller: Controller, shell: Arc<dyn TrayShell>) -> Result<Tray, TrayError> {
    let view = View::of(&controller);
    let (sender, mut receiver) = watch::channel(view.clone());
    let views = Arc::new(Views { controller, sender });
    let item = Item {
        view,
        views: views.clone(),
        shell,
        runtime: tokio::runtime::Handle::current(),
    };
    let handle = item.assume_sni_available(true).spawn().await?;
    // One task applies the newest view: refreshes never wait on D-Bus, and
    // a burst of them becomes one update.
    let item_handle = handle.clone();
    let updater = tokio::spawn(async move {
        while receiver.changed().await.is_ok() {
            let view = receiver.borrow_and_update().clone();
            if item_handle.update(|item| item.view = view).await.is_none() {
                return;
            }
        }
    });
    Ok(Tray {
        shared: Arc::new(Shared {
            views,
            handle,
            updater,
        }),
    })
}

impl Tray {
    /// Brings the tray up to date with the engine and the settings. Cheap
    /// when nothing changed; never waits for D-Bus.
    pub fn refresh(&self) {
        self.shared.views.refresh();
    }

    /// Removes the item from the bus and waits until it is gone.
    pub async fn shutdown(&self) {
        self.shared.updater.abort();
        self.shared.handle.shutdown().await;
    }
}

/// The views the tray shows: the newest one, and who recomputes it.
struct Views {
    controller: Controller,
    sender: watch::Sender<View>,
}

impl Views {
    fn refresh(&self) {
        let view = View::of(&self.controller);
        self.sender.send_if_modified(|shown| {
            if *shown == view {
                return false;
            }
            *shown = view;
            true
        });
    }
}

/// Everything the item shows.
#[derive(Debug, Clone, PartialEq)]
struct View {
    summary: TraySummary,
    /// The profiles "Switch profile" lists (publishing profiles are started
    /// from the window, not switched to).
    profiles: Vec<String>,
    selected: Option<String>,
}

impl View {
    fn of(controller: &Controller) -> View {
        let summary = controller.tray_summary();
        let settings = controller.settings();
        View {
            summary,
            profiles: settings
                .connect_profiles()
                .map(|p| p.name().to_owned())
                .collect(),
            selected: settings.current_profile().map(|p| p.name().to_owned()),
        }
    }

    /// The item that connects or stops, as the state has it.
    fn toggle_label(&self) -> &'static str {
        Toggle::of(&self.summary, !self.profiles.is_empty()).label()
    }
}

/// What the toggle item does: one decision for its label (when the menu is
/// built) and its action (on the state at the click).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Toggle {
    Demo,
    Connect,
    StopPublishing,
    StopSharing,
    Disconnect,
}

impl Toggle {
    fn of(summary: &TraySummary, has_profiles: bool) -> Toggle {
        if summary.can_connect {
            if has_profiles {
                Toggle::Connect
            } else {
                Toggle::Demo
            }
        } else if summary.publishing {
            Toggle::StopPublishing
        } else if summary.sharing {
            Toggle::StopSharing
        } else {
            Toggle::Disconnect
        }
    }

    fn label(self) -> &'static str {
        match self {
            Toggle::Demo => "Try the demo",
            Toggle::Connect => "Connect",
            Toggle::StopPublishing => "Stop publishing",
            Toggle::StopSharing => "Stop sharing",
            Toggle::Disconnect => "Disconnect",
        }
    }
}

/// The ksni item: the view shown and what the menu acts on.
struct Item {
    view: View,
    views: Arc<Views>,
    shell: Arc<dyn TrayShell>,
    runtime: tokio::runtime::Handle,
}

impl Item {
    fn controller(&self) -> Controller {
        self.views.controller.clone()
    }

    fn show_window(&self) {
        let shell = self.shell.clone();
        self.runtime.spawn_blocking(move || shell.show_window());
    }

    fn quit(&self) {
        let shell = self.shell.clone();
        self.runtime.spawn_blocking(move || shell.quit());
    }

    /// Connects, or stops what runs, deciding on the state at the click.
    fn toggle(&self) {
        let controller = self.controller();
        let views = self.views.clone();
        self.runtime.spawn(async move {
            let has_profiles = controller.settings().connect_profiles().next().is_some();
            let result = match Toggle::of(&controller.tray_summary(), has_profiles) {
                Toggle::StopPublishing => controller.stop_publishing().await.map(drop),
                Toggle::StopSharing => controller.stop_share().await.map(drop),
                Toggle::Disconnect => {
                    controller.disconnect().await;
                    Ok(())
                }
                Toggle::Demo => controller.start_demo().await.map(drop),
                Toggle::Connect => controller.connect().await.map(drop),
            };
            if let Err(e) = result {
                crate::notify::notify("Cannot connect", &e.message);
            }
            views.refresh();
        });
    }

    fn select_profile(&self, name: String) {
        let controller = self.controller();
        let views = self.views.clone();
        self.runtime.spawn(async move {
            if let Err(e) = controller.select_profile(name).await {
                crate::notify::notify("Cannot switch profile", &e.message);
            }
            views.refresh();
        });
    }
}

/// A menu label shown as is: dbusmenu takes `_` for an access key.
fn label(text: &str) -> String {
    text.replace('_', "__")
}

/// A line of the menu that only informs.
fn info_line(text: &str) -> ksni::MenuItem<Item> {
    StandardItem {
        label: label(text),
        enabled: false,
        ..Default::default()
    }
    .into()
}

/// A menu item that acts.
fn action(text: &str, activate: fn(&mut Item)) -> ksni::MenuItem<Item> {
    StandardItem {
        label: label(text),
        activate: Box::new(activate),
        ..Default::default()
    }
    .into()
}

impl ksni::Tray for Item {
    fn id(&self) -> String {
        APP_NAME.into()
    }

    fn title(&self) -> String {
        APP_NAME.into()
    }

    fn activate(&mut self, _x: i32, _y: i32) {
        self.show_window();
    }

    fn icon_name(&self) -> String {
        if icons::pixmap(self.view.summary.icon).is_some() {
            String::new()
        } else {
            FALLBACK_ICON_NAME.into()
        }
    }

    fn icon_pixmap(&self) -> Vec<ksni::Icon> {
        icons::pixmap(self.view.summary.icon)
            .cloned()
            .into_iter()
            .collect()
    }

    /// `TraySummary::tooltip`: its first line as the title, the traffic
    /// line (when connected) as the description.
    fn tool_tip(&self) -> ksni::ToolTip {
        let tooltip = self.view.summary.tooltip();
        let (title, description) = tooltip.split_once('\n').unwrap_or((tooltip.as_str(), ""));
        ksni::ToolTip {
            title: title.to_owned(),
            description: description.to_owned(),
            ..Default::default()
        }
    }

    fn menu(&self) -> Vec<ksni::MenuItem<Self>> {
        let view = &self.view;
        let summary = &view.summary;
        let mut menu = vec![info_line(&summary.status)];
        if summary.icon == TrayIcon::Connected {
            menu.push(info_line(&summary.traffic));
            for line in &summary.busiest {
                menu.push(info_line(&format!("  {line}")));
            }
        }
        menu.push(ksni::MenuItem::Separator);
        menu.push(action(view.toggle_label(), |item| item.toggle()));
        if !view.profiles.is_empty() {
            let submenu = view
                .profiles
                .iter()
                .map(|name| {
                    let chosen = name.clone();
                    CheckmarkItem {
                        label: label(name),
                        checked: view.selected.as_ref() == Some(name),
                        activate: Box::new(move |item: &mut Item| {
                            item.select_profile(chosen.clone())
                        }),
                        ..Default::default()
                    }
                    .into()
                })
                .collect();
            menu.push(
                SubMenu {
                    label: "Switch profile".into(),
                    enabled: summary.can_connect,
                    submenu,
                    ..Default::default()
                }
                .into(),
            );
        }
        menu.push(action("Show window", |item| item.show_window()));
        menu.push(ksni::MenuItem::Separator);
        menu.push(action("Quit httvps", |item| item.quit()));
        menu
    }

    fn watcher_online(&self) {
        tracing::info!("a tray host appeared: the tray icon is shown");
    }

    fn watcher_offline(&self, reason: ksni::OfflineReason) -> bool {
        tracing::info!(
            "no tray host is visible ({reason:?}); the tray icon will show when one starts"
        );
        // Keep serving the item: a host may start later (a desktop still
        // starting up), and the app keeps running either way.
        true
    }
}

/// The embedded icons as StatusNotifierItem pixmaps, decoded on first use.
mod icons {
    use super::*;

    /// Why a PNG could not become a pixmap.
    #[derive(Debug, thiserror::Error)]
    pub(super) enum IconError {
        #[error("cannot decode the PNG: {0}")]
        Decode(#[from] png::DecodingError),
        #[error("the PNG is too large")]
        TooLarge,
    }

    fn png(kind: TrayIcon) -> &'static [u8] {
        match kind {
            TrayIcon::Disconnected => include_bytes!("../../../icons/tray-disconnected.png"),
            TrayIcon::Connecting => include_bytes!("../../../icons/tray-connecting.png"),
            TrayIcon::Connected => include_bytes!("../../../icons/tray-connected.png"),
            TrayIcon::Error => include_bytes!("../../../icons/tray-error.png"),
        }
    }

    fn slot(kind: TrayIcon) -> usize {
        match kind {
            TrayIcon::Disconnected => 0,
            TrayIcon::Connecting => 1,
            TrayIcon::Connected => 2,
            TrayIcon::Error => 3,
        }
    }

    /// The pixmap for `kind`; `None` (logged once) if its PNG is broken.
    pub(super) fn pixmap(kind: TrayIcon) -> Option<&'static ksni::Icon> {
        static DECODED: [OnceLock<Option<ksni::Icon>>; 4] = [const { OnceLock::new() }; 4];
        DECODED[slot(kind)]
            .get_or_init(|| match decode(png(kind)) {
                Ok(icon) => Some(icon),
                Err(e) => {
                    tracing::warn!("tray icon {kind:?}: {e}");
                    None
                }
            })
            .as_ref()
    }

    /// A PNG as ARGB32 in network byte order, what `IconPixmap` carries.
    pub(super) fn decode(bytes: &[u8]) -> Result<ksni::Icon, IconError> {
        let mut decoder = png::Decoder::new(std::io::Cursor::new(bytes));
        decoder.set_transformations(png::Transformations::normalize_to_color8());
        let mut reader = decoder.read_info()?;
        let size = reader.output_buffer_size().ok_or(IconError::TooLarge)?;
        let mut buffer = vec![0; size];
        let info = reader.next_frame(&mut buffer)?;
        buffer.truncate(info.buffer_size());
        let pixels = (info.width as usize) * (info.height as usize);
        let mut data = Vec::with_capacity(pixels * 4);
        let mut push = |r, g, b, a| data.extend_from_slice(&[a, r, g, b]);
        match info.color_type {
            png::ColorType::Rgba => {
                for p in buffer.chunks_exact(4) {
                    push(p[0], p[1], p[2], p[3]);
                }
            }
            png::ColorType::Rgb => {
                for p in buffer.chunks_exact(3) {
                    push(p[0], p[1], p[2], 0xff);
                }
            }
            png::ColorType::GrayscaleAlpha => {
                for p in buffer.chunks_exact(2) {
                    push(p[0], p[0], p[0], p[1]);
                }
            }
            // EXPAND leaves no palette: Indexed does not occur.
            png::ColorType::Grayscale | png::ColorType::Indexed => {
                for &v in &buffer {
                    push(v, v, v, 0xff);
                }
            }
        }
        Ok(ksni::Icon {
            width: i32::try_from(info.width).map_err(|_| IconError::TooLarge)?,
            height: i32::try_from(info.height).map_err(|_| IconError::TooLarge)?,
            data,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn summary(icon: TrayIcon, can_connect: bool) -> TraySummary {
        TraySummary {
            icon,
            status: "Connected to wss://gw_1/ws".into(),
            traffic: "2 streams · ↓ 1.0 kB/s ↑ 0 B/s".into(),
            busiest: vec!["a.example:443 · ↓ 1.0 kB/s".into()],
            can_connect,
            publishing: false,
            sharing: false,
        }
    }

    fn view(summary: TraySummary, profiles: &[&str]) -> View {
        View {
            summary,
            profiles: profiles.iter().map(|p| (*p).to_owned()).collect(),
            selected: profiles.first().map(|p| (*p).to_owned()),
        }
    }

    #[test]
    fn the_toggle_follows_the_state() {
        let idle = summary(TrayIcon::Disconnected, true);
        assert_eq!(view(idle.clone(), &[]).toggle_label(), "Try the demo");
        assert_eq!(view(idle, &["work"]).toggle_label(), "Connect");
        let mut running = summary(TrayIcon::Connected, false);
        assert_eq!(
            view(running.clone(), &["work"]).toggle_label(),
            "Disconnect"
        );
        running.sharing = true;
        assert_eq!(view(running.clone(), &[]).toggle_label(), "Stop sharing");
        running.publishing = true;
        assert_eq!(view(running, &[]).toggle_label(), "Stop publishing");
    }

    #[test]
    fn labels_keep_their_underscores() {
        assert_eq!(label("wss://gw_1/ws"), "wss://gw__1/ws");
        assert_eq!(label("plain"), "plain");
    }

    #[test]
    fn every_icon_decodes_to_argb() {
        for kind in [
            TrayIcon::Disconnected,
            TrayIcon::Connecting,
            TrayIcon::Connected,
            TrayIcon::Error,
        ] {
            let icon = icons::pixmap(kind).expect("the embedded icon decodes");
            assert!(icon.width > 0 && icon.height > 0);
            assert_eq!(icon.data.len(), (icon.width * icon.height * 4) as usize);
        }
        // The four looks differ.
        let connected = icons::pixmap(TrayIcon::Connected).unwrap();
        let error = icons::pixmap(TrayIcon::Error).unwrap();
        assert_ne!(connected.data, error.data);
    }

    #[test]
    fn pixels_are_reordered_to_argb() {
        // A 2×1 RGBA PNG: opaque red, half-transparent blue.
        let mut bytes = Vec::new();
        {
            let mut encoder = png::Encoder::new(&mut bytes, 2, 1);
            encoder.set_color(png::ColorType::Rgba);
            encoder.set_depth(png::BitDepth::Eight);
            let mut writer = encoder.write_header().unwrap();
            writer
                .write_image_data(&[255, 0, 0, 255, 0, 0, 255, 128])
                .unwrap();
        }
        let icon = icons::decode(&bytes).unwrap();
        assert_eq!((icon.width, icon.height), (2, 1));
        assert_eq!(icon.data, [255, 255, 0, 0, 128, 0, 0, 255]);
        assert!(icons::decode(b"not a png").is_err());
    }
}
