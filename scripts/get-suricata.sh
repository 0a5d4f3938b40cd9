#!/bin/sh
# get-suricata.sh [DEST]: unpacks Debian bookworm-backports' Suricata 7.0.10 and the libraries it needs
# under DEST (default /tmp/isogate-suricata) and prints the binary's path. Nothing is installed
# system-wide: apt runs with its own state, list and cache directories below DEST.apt and only
# downloads; the packages are extracted with dpkg -x. A second run with a working binary in DEST does
# nothing, so CI and tests may call it freely. The differential tests need this exact version:
# SURICATA_DEB_VERSION overrides it for a machine whose mirror no longer carries it.
set -eu
DEST=${1:-${ISOGATE_SURICATA:-/tmp/isogate-suricata}}
VERSION=${SURICATA_DEB_VERSION:-1:7.0.10-1~bpo12+1}
BIN=$DEST/usr/bin/suricata
LIBS=$DEST/usr/lib/x86_64-linux-gnu:$DEST/usr/lib

if [ -x "$BIN" ] && LD_LIBRARY_PATH=$LIBS "$BIN" -V >/dev/null 2>&1; then
  echo "$BIN"
  exit 0
fi

STATE=$DEST.apt
SOURCES=/etc/apt/sources.list.d/debian.sources
[ -f "$SOURCES" ] || { echo "get-suricata: $SOURCES not found (a Debian bookworm machine is expected)" >&2; exit 1; }
# The backports suite comes from the same mirror as the machine's own bookworm suite.
MIRROR=$(awk '/^URIs:/ { uri = $2 } /^Suites:/ { for (i = 2; i <= NF; i++) if ($i == "bookworm") { print uri; exit } }' "$SOURCES")
[ -n "$MIRROR" ] || { echo "get-suricata: no bookworm suite in $SOURCES" >&2; exit 1; }

mkdir -p "$STATE/sources" "$STATE/lists/partial" "$STATE/cache/partial" "$STATE/debs/partial" "$DEST"
cp "$SOURCES" "$STATE/sources/"
cat >"$STATE/sources/backports.sources" <<SRC
Types: deb
URIs: $MIRROR
Suites: bookworm-backports
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC

APT_PRIVATE="-o Dir::Etc::SourceList=/dev/null -o Dir::Etc::SourceParts=$STATE/sources -o Dir::State::Lists=$STATE/lists -o Dir::Cache=$STATE/cache -o Dir::Cache::archives=$STATE/debs"
# shellcheck disable=SC2086 # the options are meant to split into words
apt-get $APT_PRIVATE update -qq
# --download-only with an empty private cache fetches suricata and every dependency the machine lacks.
# shellcheck disable=SC2086
apt-get $APT_PRIVATE install -y -qq --download-only -t bookworm-backports "suricata=$VERSION" >/dev/null

for deb in "$STATE"/debs/*.deb; do dpkg -x "$deb" "$DEST"; done
LD_LIBRARY_PATH=$LIBS "$BIN" -V >&2
echo "$BIN"
