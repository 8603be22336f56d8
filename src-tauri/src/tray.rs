//! The tray icon: its look follows the session state; its tooltip and menu
//! show the live stream count, the rates and the busiest streams (all
//! computed by `app::TraySummary`); the menu connects, disconnects, stops
//! publishing or sharing, switches profile, shows the window and quits.

use std::sync::Mutex;

use app::{Controller, TrayIcon, TraySummary};
use tauri::image::Image;
use tauri::menu::{CheckMenuItem, Menu, MenuItem, PredefinedMenuItem, Submenu};
use tauri::tray::TrayIconBuilder;
use tauri::{AppHandle, Manager, Wry};

/// The tray icon's id (the app asks for it to know whether it has a tray).
pub const TRAY_ID: &str = "main";

/// What the tray showed last and the menu items whose text changes while
/// streams move, so that a transfer updates those texts in place: a rebuilt
/// menu closes if it is open, so it is rebuilt only when its shape changes.
#[derive(Default)]
pub struct TrayState(Mutex<Option<Rendered>>);

struct Rendered {
    summary: TraySummary,
    shape: Shape,
    items: LiveItems,
}

/// What decides which items the menu has (anything else is text).
#[derive(PartialEq)]
struct Shape {
    connected: bool,
    publishing: bool,
    sharing: bool,
    busiest: usize,
    can_connect: bool,
    profiles: Vec<String>,
    selected: Option<String>,
}

/// The items whose text follows the traffic.
struct LiveItems {
    status: MenuItem<Wry>,
    traffic: Option<MenuItem<Wry>>,
    busiest: Vec<MenuItem<Wry>>,
}

impl Shape {
    fn of(summary: &TraySummary, profiles: Vec<String>, selected: Option<String>) -> Shape {
        let connected = summary.icon == TrayIcon::Connected;
        Shape {
            connected,
            publishing: summary.publishing,
            sharing: summary.sharing,
            busiest: if connected { summary.busiest.len() } else { 0 },
            can_connect: summary.can_connect,
            profiles,
            selected,
        }
    }
}

fn icon(kind: TrayIcon) -> Image<'static> {
    let bytes: &'static [u8] = match kind {
        TrayIcon::Disconnected => include_bytes!("../../icons/tray-disconnected.png"),
        TrayIcon::Connecting => include_bytes!("../../icons/tray-connecting.png"),
        TrayIcon::Connected => include_bytes!("../../icons/tray-connected.png"),
        TrayIcon::Error => include_bytes!("../../icons/tray-error.png"),
    };
    Image::from_bytes(bytes).expect("the tray icons are valid PNGs")
}

fn menu(
    app: &AppHandle,
    summary: &TraySummary,
    shape: &Shape,
) -> tauri::Result<(Menu<Wry>, LiveItems)> {
    let (profiles, selected) = (&shape.profiles, shape.selected.as_deref());
    let menu = Menu::new(app)?;
    let status = MenuItem::with_id(app, "status", &summary.status, false, None::<&str>)?;
    menu.append(&status)?;
    let mut items = LiveItems {
        status,
        traffic: None,
        busiest: Vec::new(),
    };
    if shape.connected {
        let traffic = MenuItem::with_id(app, "traffic", &summary.traffic, false, None::<&str>)?;
        menu.append(&traffic)?;
        items.traffic = Some(traffic);
        for (i, line) in summary.busiest.iter().enumerate() {
            let item = MenuItem::with_id(
                app,
                format!("busy:{i}"),
                format!("  {line}"),
                false,
                None::<&str>,
            )?;
            menu.append(&item)?;
            items.busiest.push(item);
        }
    }
    menu.append(&PredefinedMenuItem::separator(app)?)?;
    let toggle = if summary.can_connect {
        if profiles.is_empty() {
            "Try the demo"
        } else {
            "Connect"
        }
    } else if summary.publishing {
        "Stop publishing"
    } else if summary.sharing {
        "Stop sharing"
    } else {
        "Disconnect"
    };
    menu.append(&MenuItem::with_id(
        app,
        "toggle",
        toggle,
        true,
        None::<&str>,
    )?)?;
    if !profiles.is_empty() {
        let switch = Submenu::with_id(app, "profiles", "Switch profile", summary.can_connect)?;
        for name in profiles {
            let item = CheckMenuItem::with_id(
                app,
                format!("profile:{name}"),
                name,
                true,
                Some(name.as_str()) == selected,
                None::<&str>,
            )?;
            switch.append(&item)?;
        }
        menu.append(&switch)?;
    }
    menu.append(&MenuItem::with_id(
        app,
        "show",
        "Show window",
        true,
        None::<&str>,
    )?)?;
    menu.append(&PredefinedMenuItem::separator(app)?)?;
    menu.append(&MenuItem::with_id(
        app,
        "quit",
        "Quit httvps",
        true,
        None::<&str>,
    )?)?;
    Ok((menu, items))
}

/// Creates the tray icon.
pub fn create(app: &AppHandle) -> tauri::Result<()> {
    let summary = app.state::<Controller>().tray_summary();
    let (first, _) = menu(app, &summary, &Shape::of(&summary, Vec::new(), None))?;
    TrayIconBuilder::with_id(TRAY_ID)
        .icon(icon(summary.icon))
        .tooltip(summary.tooltip())
        .menu(&first)
        .show_menu_on_left_click(true)
        .on_menu_event(|app, event| on_menu(app, event.id().as_ref()))
        .build(app)?;
    app.manage(TrayState::default());
    refresh(app);
    Ok(())
}

/// Brings the tray up to date with the engine and the settings.
pub fn refresh(app: &AppHandle) {
    let controller = app.state::<Controller>();
    let summary = controller.tray_summary();
    let settings = controller.settings();
    // Publishing profiles are started from the window, not switched to.
    let profiles: Vec<String> = settings
        .connect_profiles()
        .map(|p| p.name().to_owned())
        .collect();
    let selected = settings.current_profile().map(|p| p.name().to_owned());
    let Some(tray) = app.tray_by_id(TRAY_ID) else {
        return;
    };
    let state = app.state::<TrayState>();
    let mut last = state.0.lock().unwrap_or_else(|e| e.into_inner());
    let shape = Shape::of(&summary, profiles, selected);
    if let Some(shown) = last.as_mut()
        && shown.shape == shape
    {
        if shown.summary == summary {
            return;
        }
        // Same items: new texts in place, so an open menu stays open.
        let _ = shown.items.status.set_text(&summary.status);
        if let Some(traffic) = &shown.items.traffic {
            let _ = traffic.set_text(&summary.traffic);
        }
        for (item, line) in shown.items.busiest.iter().zip(&summary.busiest) {
            let _ = item.set_text(format!("  {line}"));
        }
        if shown.summary.icon != summary.icon {
            let _ = tray.set_icon(Some(icon(summary.icon)));
        }
        let _ = tray.set_tooltip(Some(summary.tooltip()));
        shown.summary = summary;
        return;
    }
    let icon_changed = last.as_ref().is_none_or(|s| s.summary.icon != summary.icon);
    if icon_changed {
        let _ = tray.set_icon(Some(icon(summary.icon)));
    }
    let _ = tray.set_tooltip(Some(summary.tooltip()));
    match menu(app, &summary, &shape) {
        Ok((menu, items)) => {
            let _ = tray.set_menu(Some(menu));
            *last = Some(Rendered {
                summary,
                shape,
                items,
            });
        }
        Err(e) => tracing::warn!("tray menu: {e}"),
    }
}

fn on_menu(app: &AppHandle, id: &str) {
    let app = app.clone();
    match id {
        "show" => crate::window::show(&app),
        "quit" => app.exit(0),
        "toggle" => {
            tauri::async_runtime::spawn(async move {
                let controller = app.state::<Controller>().inner().clone();
                let summary = controller.tray_summary();
                let result = if summary.publishing && !summary.can_connect {
                    controller.stop_publishing().await.map(drop)
                } else if summary.sharing && !summary.can_connect {
                    controller.stop_share().await.map(drop)
                } else if !summary.can_connect {
                    controller.disconnect().await;
                    Ok(())
                } else if controller.settings().connect_profiles().next().is_none() {
                    controller.start_demo().await.map(drop)
                } else {
                    controller.connect().await.map(drop)
                };
                if let Err(e) = result {
                    crate::notify(&app, "Cannot connect", &e.message);
                }
            });
        }
        other => {
            if let Some(name) = other.strip_prefix("profile:") {
                let name = name.to_owned();
                tauri::async_runtime::spawn(async move {
                    let controller = app.state::<Controller>().inner().clone();
                    if let Err(e) = controller.select_profile(name).await {
                        crate::notify(&app, "Cannot switch profile", &e.message);
                    }
                    refresh(&app);
                });
            }
        }
    }
}
