#!/bin/sh
# Install what tests/test_browser.py needs on a fresh Debian machine:
# Debian's Chromium (/usr/bin/chromium), its chromedriver, and fonts so that
# screenshots render text. Idempotent: does nothing when already installed.
# The Python driver (playwright) comes from the project's `dev` extra; its
# own browser download (`playwright install`) is never used.
set -eu

packages="chromium chromium-driver fonts-dejavu-core fonts-liberation"

missing=""
for package in $packages; do
    if ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed"; then
        missing="$missing $package"
    fi
done

if [ -z "$missing" ]; then
    echo "browser.sh: already installed:$(printf ' %s' $packages)"
else
    if [ "$(id -u)" -eq 0 ]; then sudo=""; else sudo="sudo"; fi
    export DEBIAN_FRONTEND=noninteractive
    $sudo apt-get update
    # shellcheck disable=SC2086  # word splitting of the package list is wanted
    $sudo apt-get install -y --no-install-recommends $missing
fi

/usr/bin/chromium --version 2>/dev/null
