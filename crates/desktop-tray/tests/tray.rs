//! The tray icon on a real (private) session bus, read and clicked the way
//! a tray host does: its properties, its menu over `com.canonical.dbusmenu`,
//! menu clicks reaching the shell and the controller (the demo connects and
//! disconnects), and the item leaving the bus on shutdown. The bus has no
//! `StatusNotifierWatcher`, as on a desktop without a tray host: the item
//! must be served anyway.

mod common;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use app::{Controller, MemoryStorage, Parts, Settings, SettingsStorage};
use common::eventually;
use desktop_tray::tray::{self, TrayShell};
use profiles::{MemoryStore, SecretStore};
use zbus::zvariant::{OwnedObjectPath, OwnedValue, Value};

const ITEM_PATH: &str = "/StatusNotifierItem";
const ITEM_INTERFACE: &str = "org.kde.StatusNotifierItem";
const MENU_INTERFACE: &str = "com.canonical.dbusmenu";
/// Long enough for the demo's gateway to start on a busy machine.
const PATIENCE: Duration = Duration::from_secs(30);

/// Counts what the tray asked for.
#[derive(Default)]
struct Shell {
    shown: AtomicUsize,
    quit: AtomicUsize,
}

impl TrayShell for Shell {
    fn show_window(&self) {
        self.shown.fetch_add(1, Ordering::SeqCst);
    }
    fn quit(&self) {
        self.quit.fetch_add(1, Ordering::SeqCst);
    }
}

/// One menu item as a host sees it.
#[derive(Debug, Clone)]
struct Entry {
    id: i32,
    label: String,
    enabled: bool,
    separator: bool,
    /// A checkmark item's state.
    checked: Option<bool>,
    children: Vec<Entry>,
}

type Layout = (i32, HashMap<String, OwnedValue>, Vec<OwnedValue>);

fn entry(layout: Layout) -> Entry {
    let (id, properties, children) = layout;
    let text = |key: &str| {
        properties
            .get(key)
            .map(|v| String::try_from(v.try_clone().unwrap()).unwrap())
    };
    Entry {
        id,
        label: text("label").unwrap_or_default(),
        enabled: properties
            .get("enabled")
            .is_none_or(|v| bool::try_from(v.try_clone().unwrap()).unwrap()),
        separator: text("type").as_deref() == Some("separator"),
        checked: (text("toggle-type").as_deref() == Some("checkmark")).then(|| {
            properties
                .get("toggle-state")
                .is_some_and(|v| i32::try_from(v.try_clone().unwrap()).unwrap() == 1)
        }),
        children: children
            .into_iter()
            .map(|child| entry(Layout::try_from(child).unwrap()))
            .collect(),
    }
}

/// A tray host's view of the item.
struct Host {
    conn: zbus::Connection,
    name: String,
    menu: OwnedObjectPath,
}

impl Host {
    async fn property(&self, property: &str) -> OwnedValue {
        let reply = self
            .conn
            .call_method(
                Some(self.name.as_str()),
                ITEM_PATH,
                Some("org.freedesktop.DBus.Properties"),
                "Get",
                &(ITEM_INTERFACE, property),
            )
            .await
            .unwrap_or_else(|e| panic!("Get {property}: {e}"));
        reply.body().deserialize::<OwnedValue>().unwrap()
    }

    async fn tooltip_title(&self) -> String {
        let (_icon, _pixmaps, title, _description): (String, Vec<OwnedValue>, String, String) =
            self.property("ToolTip").await.try_into().unwrap();
        title
    }

    /// The first pixmap: width, height, ARGB bytes.
    async fn pixmap(&self) -> (i32, i32, Vec<u8>) {
        let pixmaps: Vec<(i32, i32, Vec<u8>)> =
            self.property("IconPixmap").await.try_into().unwrap();
        pixmaps.into_iter().next().expect("an icon pixmap")
    }

    /// The menu's items (the root's children).
    async fn menu(&self) -> Vec<Entry> {
        let properties: &[&str] = &[];
        let reply = self
            .conn
            .call_method(
                Some(self.name.as_str()),
                &self.menu,
                Some(MENU_INTERFACE),
                "GetLayout",
                &(0i32, -1i32, properties),
            )
            .await
            .expect("GetLayout");
        let (_revision, root): (u32, Layout) = reply.body().deserialize().unwrap();
        entry(root).children
    }

    async fn click(&self, label: &str) {
        let menu = self.menu().await;
        let item = find(&menu, label).unwrap_or_else(|| panic!("no {label:?} in {menu:#?}"));
        self.conn
            .call_method(
                Some(self.name.as_str()),
                &self.menu,
                Some(MENU_INTERFACE),
                "Event",
                &(item.id, "clicked", Value::from(0i32), 0u32),
            )
            .await
            .expect("Event");
    }
}

fn find<'a>(menu: &'a [Entry], label: &str) -> Option<&'a Entry> {
    menu.iter().find_map(|e| {
        (e.label == label)
            .then_some(e)
            .or_else(|| find(&e.children, label))
    })
}

fn labels(menu: &[Entry]) -> Vec<&str> {
    menu.iter()
        .map(|e| if e.separator { "---" } else { e.label.as_str() })
        .collect()
}

#[test]
fn the_tray_is_served_read_and_clicked_over_dbus() {
    let Some(bus) = common::Bus::start() else {
        return;
    };
    bus.make_session_bus();
    let runtime = bus.runtime();
    runtime.block_on(async {
        // The demo's local proxy on a free port, not the default 1080.
        let storage = MemoryStorage::default();
        storage
            .save(&Settings {
                proxy_port: testkit::free_port(),
                ..Settings::default()
            })
            .unwrap();
        let controller = Controller::new(Parts {
            storage: Box::new(storage),
            secrets: Arc::new(MemoryStore::default()) as Arc<dyn SecretStore>,
            system_proxy: None,
            autostart: None,
        });
        let shell = Arc::new(Shell::default());
        let tray = tray::spawn(controller.clone(), shell.clone())
            .await
            .expect("the tray is served without a tray host");

        let conn = zbus::Connection::session().await.unwrap();
        let dbus = zbus::fdo::DBusProxy::new(&conn).await.unwrap();
        let item_names = || async {
            dbus.list_names()
                .await
                .unwrap()
                .into_iter()
                .map(|n| n.to_string())
                .filter(|n| n.starts_with("org.kde.StatusNotifierItem-"))
                .collect::<Vec<_>>()
        };
        let name = eventually(PATIENCE, "the item's bus name", || async {
            item_names().await.into_iter().next()
        })
        .await;
        let mut host = Host {
            conn: conn.clone(),
            name,
            menu: OwnedObjectPath::default(),
        };
        host.menu = host.property("Menu").await.try_into().unwrap();

        // What a host shows.
        let title: String = host.property("Title").await.try_into().unwrap();
        assert_eq!(title, "httvps");
        assert_eq!(host.tooltip_title().await, "httvps — Disconnected");
        let (width, height, idle_icon) = host.pixmap().await;
        assert!(width > 0 && height > 0);
        assert_eq!(idle_icon.len(), (width * height * 4) as usize);
        let menu = host.menu().await;
        assert_eq!(
            labels(&menu),
            [
                "Disconnected",
                "---",
                "Try the demo",
                "Show window",
                "---",
                "Quit httvps"
            ]
        );
        assert!(!menu[0].enabled, "the status line is not clickable");
        assert!(menu[2].enabled);

        // The shell's items.
        host.click("Show window").await;
        eventually(PATIENCE, "show_window", || async {
            (shell.shown.load(Ordering::SeqCst) == 1).then_some(())
        })
        .await;
        host.click("Quit httvps").await;
        eventually(PATIENCE, "quit", || async {
            (shell.quit.load(Ordering::SeqCst) == 1).then_some(())
        })
        .await;
        assert_eq!(shell.shown.load(Ordering::SeqCst), 1);

        // The toggle starts the demo; refreshes (the app's, on engine
        // events) bring the tray along.
        host.click("Try the demo").await;
        let menu = eventually(PATIENCE, "the demo to connect", || async {
            tray.refresh();
            let menu = host.menu().await;
            menu[0].label.starts_with("Connected to").then_some(menu)
        })
        .await;
        assert!(
            menu[1].label.contains("stream") && !menu[1].enabled,
            "the traffic line: {menu:#?}"
        );
        assert!(find(&menu, "Disconnect").is_some(), "{menu:#?}");
        assert!(
            host.tooltip_title()
                .await
                .starts_with("httvps — Connected to")
        );
        assert_ne!(
            host.pixmap().await.2,
            idle_icon,
            "the icon follows the state"
        );
        // Nothing changed: a refresh is a no-op (the menu stays the same).
        tray.refresh();
        assert_eq!(labels(&host.menu().await), labels(&menu));

        host.click("Disconnect").await;
        eventually(PATIENCE, "the demo to stop", || async {
            tray.refresh();
            let menu = host.menu().await;
            (menu[0].label == "Disconnected" && find(&menu, "Try the demo").is_some()).then_some(())
        })
        .await;
        assert_eq!(host.pixmap().await.2, idle_icon);

        // Saved profiles: Connect, and a submenu to switch between them
        // (labels shown as they are, underscores included).
        for name in ["work", "home_lab"] {
            let input = serde_json::from_value(serde_json::json!({
                "name": name,
                "kind": "gateway",
                "server": "wss://gw.example/ws",
            }))
            .unwrap();
            controller.save_profile(input).await.unwrap();
        }
        let menu = eventually(PATIENCE, "the profiles", || async {
            tray.refresh();
            let menu = host.menu().await;
            find(&menu, "Switch profile").is_some().then_some(menu)
        })
        .await;
        assert_eq!(
            labels(&menu),
            [
                "Disconnected",
                "---",
                "Connect",
                "Switch profile",
                "Show window",
                "---",
                "Quit httvps"
            ]
        );
        let switch = find(&menu, "Switch profile").unwrap();
        assert!(switch.enabled);
        let choices: Vec<_> = switch
            .children
            .iter()
            .map(|e| (e.label.as_str(), e.checked))
            .collect();
        // Sorted by name; the last saved is selected.
        assert_eq!(choices, [("home__lab", Some(true)), ("work", Some(false))]);
        host.click("work").await;
        eventually(PATIENCE, "the switch to \"work\"", || async {
            let menu = host.menu().await;
            (find(&menu, "work")?.checked == Some(true)).then_some(())
        })
        .await;
        assert_eq!(controller.settings().selected.as_deref(), Some("work"));

        // Shutdown takes the item off the bus.
        tray.shutdown().await;
        eventually(PATIENCE, "the item to leave the bus", || async {
            item_names().await.is_empty().then_some(())
        })
        .await;
        controller.shutdown().await;
    });
}
