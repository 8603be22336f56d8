# Shared helpers for scripts/run, scripts/test and bench/run (sourced, not run).

# The build cache: persistent across runs so repeat builds are warm.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/httvps-target}"

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

# What the build and the test suite's real peers need: a Shadowsocks server
# (the Outline node), curl and Chromium as proxy clients, CA certificates for
# TLS roots, D-Bus headers for the keychain crate, and a real Secret Service
# (gnome-keyring in a private D-Bus session) for the keychain tests.
TEST_PACKAGES=(shadowsocks-libev curl ca-certificates chromium build-essential pkg-config
  libdbus-1-dev dbus dbus-x11 gnome-keyring libsecret-tools)
