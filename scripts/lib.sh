# Shared helpers for scripts/run, scripts/test and bench/run (sourced, not run).

# The build cache: persistent across runs so repeat builds are warm.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/httvps-target}"
# No incremental compilation data unless asked for: a test run on a clean
# clone gains nothing from it and it took ~20 GB of the cache per run (CI46
# left 2.6 GB free on this machine's 252 GB disk).
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"

# Installs Debian packages that are missing. Needs root (or sudo); runs
# `apt-get update` once before the first install, as a fresh machine needs.
ensure_packages() {
  local missing=()
  for pkg in "$@"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  local sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "Installing Debian packages: ${missing[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# What the desktop app (Tauri v2 on WebKitGTK) needs to build and run, and
# Node.js for its web UI (Debian's nodejs when none is installed).
APP_PACKAGES=(libwebkit2gtk-4.1-dev librsvg2-dev libxdo-dev
  libssl-dev libsoup-3.0-dev file)
command -v node >/dev/null 2>&1 || APP_PACKAGES+=(nodejs npm)

# What the build and the test suite's real peers need: a Shadowsocks server
# (the Outline node), curl and Chromium as proxy clients, CA certificates for
# TLS roots, D-Bus headers for the keychain crate, and a real Secret Service
# (gnome-keyring in a private D-Bus session) for the keychain tests.
TEST_PACKAGES=(shadowsocks-libev curl ca-certificates chromium build-essential pkg-config
  # PySocks: an independent SOCKS5 UDP ASSOCIATE client for the local proxy tests.
  python3-socks
  # The contract-only Python gateway (python3-websockets) and its nginx target (contract_gateway.rs).
  python3-websockets nginx-light
  # dig: an independent DNS client for the local DNS server (--dns-listen).
  dnsutils
  # The Relay's real peers: a userspace WireGuard in a test namespace, and the
  # shared tunnel registry's Redis.
  wireguard-go wireguard-tools iproute2 redis-server
  libdbus-1-dev dbus dbus-x11 gnome-keyring libsecret-tools openssl
  "${APP_PACKAGES[@]}"
  # The system-proxy test uses real GSettings with the dconf backend; the
  # end-to-end test drives the tray's menu with gdbus (libglib2.0-bin).
  libglib2.0-bin gsettings-desktop-schemas dconf-gsettings-backend dconf-service
  # The desktop app's end-to-end test: a virtual display and WebKit's
  # WebDriver (driven through tauri-driver).
  xvfb xauth webkit2gtk-driver)

# Tools installed with cargo (tauri-driver) live here, outside the build cache.
export TOOLS_DIR="${TOOLS_DIR:-$HOME/.cache/httvps-tools}"

# tauri-driver, from crates.io (about 2 minutes the first time).
ensure_tauri_driver() {
  if command -v tauri-driver >/dev/null 2>&1 || [ -x "$TOOLS_DIR/bin/tauri-driver" ]; then
    return 0
  fi
  echo "Installing tauri-driver (crates.io) into $TOOLS_DIR"
  cargo install tauri-driver --locked --root "$TOOLS_DIR"
}

# The web UI's packages (npm registry), at package-lock.json's versions.
# (`npm install --no-save` rather than `npm ci`: the registry mirror here
# leaves the Tauri CLI's other-platform binaries out of the lock file, which
# `npm ci` refuses.)
ensure_node_modules() {
  if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
    npm install --no-audit --no-fund --no-save
  fi
}
