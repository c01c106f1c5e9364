#!/usr/bin/env bash
# The browser the fleet UI's test drives (francis/tests/ui.rs): Chromium and chromedriver, from
# Debian's packages.
#
#   bash tests/browser.sh install   # install them with apt-get when missing
#   bash tests/browser.sh status    # are they there? prints their versions
#
# `install` does nothing when /usr/bin/chromium and chromedriver are there already; otherwise it
# needs root (or password-less sudo) and apt-get, and installs `chromium` and `chromium-driver`
# without their recommended packages. tests/check.sh runs it, then makes the test fail rather
# than skip (FRANCIS_REQUIRE_BROWSER=1).
set -euo pipefail

CHROMIUM=/usr/bin/chromium

_fb_log() { printf 'browser.sh: %s\n' "$*" >&2; }

_fb_present() {
    [ -x "$CHROMIUM" ] && command -v chromedriver >/dev/null 2>&1
}

_fb_versions() {
    "$CHROMIUM" --version 2>/dev/null || echo "chromium: no version (does it run?)"
    chromedriver --version 2>/dev/null || echo "chromedriver: no version (does it run?)"
}

_fb_install() {
    local sudo=()
    if _fb_present; then
        _fb_log "Chromium and chromedriver are installed"
        _fb_versions
        return 0
    fi
    if [ "$(id -u)" -ne 0 ]; then
        if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
            sudo=(sudo -n)
        else
            _fb_log "Chromium or chromedriver is missing, and this is not root to install them."
            _fb_log "Install them: apt-get install chromium chromium-driver"
            return 1
        fi
    fi
    if ! command -v apt-get >/dev/null 2>&1; then
        _fb_log "Chromium or chromedriver is missing, and apt-get is unavailable; install them."
        return 1
    fi
    _fb_log "installing chromium and chromium-driver with apt-get"
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q >&2
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
        --no-install-recommends chromium chromium-driver >&2
    if ! _fb_present; then
        _fb_log "Chromium or chromedriver is still missing after installing them"
        return 1
    fi
    _fb_versions
}

case "${1:-}" in
    install) _fb_install ;;
    status)
        if _fb_present; then
            _fb_versions
        else
            _fb_log "Chromium or chromedriver is missing (bash tests/browser.sh install)"
            exit 1
        fi
        ;;
    *)
        _fb_log "usage: bash tests/browser.sh install | status"
        exit 2
        ;;
esac
