#!/usr/bin/env bash
# Run as root before the stack tests (tests/stack.py): they need PostgreSQL's server
# binaries and the `postgres` OS user to run them as (initdb and postgres refuse root).
# The report's browser check (tests/test_report_browser.py) needs headless Chromium; the
# model sandbox (tests/test_sandbox.py) needs bubblewrap.
# Idempotent, and quick when everything is in place: apt runs only if something is missing,
# and `apt-get update` at most once per run.
# S3 (moto_server) and MLflow come from the project venv, not from here.
set -euo pipefail

if [ "$(id -u)" -ne 0 ]; then
    echo "stack-setup: run me as root" >&2
    exit 1
fi

find_pg_bin() {
    # The newest installed major version, e.g. /usr/lib/postgresql/15/bin
    find /usr/lib/postgresql -mindepth 3 -maxdepth 3 -path '*/bin/initdb' -executable 2>/dev/null \
        | sort -V | tail -n 1 | xargs -r dirname
}

apt_updated=""
apt_install() {
    export DEBIAN_FRONTEND=noninteractive
    if [ -z "$apt_updated" ]; then
        apt-get update -qq
        apt_updated=1
    fi
    apt-get install -y -qq --no-install-recommends -o Dpkg::Options::=--force-confold "$@" >/dev/null
}

pg_bin=$(find_pg_bin)
if [ -z "$pg_bin" ] || [ ! -x "$pg_bin/postgres" ]; then
    echo "stack-setup: installing the PostgreSQL server (apt)"
    # The tests make their own throwaway cluster; stop Debian from creating and starting
    # a system one on port 5432. --force-confold keeps this file through the install.
    mkdir -p /etc/postgresql-common
    echo "create_main_cluster = false" > /etc/postgresql-common/createcluster.conf
    apt_install postgresql
    pg_bin=$(find_pg_bin)
fi
if [ -z "$pg_bin" ]; then
    echo "stack-setup: PostgreSQL server binaries still missing" >&2
    exit 1
fi

if ! id -u postgres >/dev/null 2>&1; then
    useradd --system --user-group --home-dir /var/lib/postgresql --shell /usr/sbin/nologin postgres
fi

# Headless Chromium renders the report as GitHub would (tests/test_report_browser.py).
# Liberation Sans/Mono stand in for GitHub's Arial/Helvetica and Liberation Mono (same
# metrics), so measured widths mean what they would on github.com; Noto Color Emoji draws
# the verdict marks instead of empty boxes in the screenshots.
browser_missing=""
for pkg in chromium fonts-liberation fonts-noto-color-emoji; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "ok installed" \
        || browser_missing="$browser_missing $pkg"
done
if [ -n "$browser_missing" ]; then
    echo "stack-setup: installing$browser_missing (apt)"
    # shellcheck disable=SC2086  # one word per package
    apt_install $browser_missing
fi

# bubblewrap makes the sandbox the gate loads and scores every model in (gate/sandbox,
# tests/test_sandbox.py). Where AppArmor restricts user namespaces (Ubuntu 24.04), bwrap
# also needs .github/apparmor/bwrap loaded; `python -m gate.sandbox` says what is missing.
if ! command -v bwrap >/dev/null 2>&1; then
    echo "stack-setup: installing bubblewrap (apt)"
    apt_install bubblewrap
fi

echo "stack-setup: $("$pg_bin/postgres" --version) at $pg_bin, run as user postgres"
echo "stack-setup: $(chromium --version 2>/dev/null || echo chromium missing)"
echo "stack-setup: $(bwrap --version 2>/dev/null || echo bwrap missing)"
