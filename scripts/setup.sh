#!/usr/bin/env bash
# Installs everything the project needs on a fresh Debian 12 machine (as root): system packages, then npm packages.
set -euo pipefail
cd "$(dirname "$0")/.."
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# libpcap-dev: the cap addon; nginx: real servers in tests and the demo; tcpdump/tshark: captures and oracles;
# iproute2/ethtool/procps: network namespaces; apache2-utils: ab load; redis-server: the Redis plugin's tests;
# mariadb-server/mariadb-client: the MySQL protocol's tests (mariadbd, mariadb, mariadb-slap); nftables: packet loss planted by the fault tests.
apt-get install -y -qq libpcap-dev nginx redis-server mariadb-server mariadb-client nftables tcpdump tshark iproute2 ethtool procps apache2-utils >/dev/null
npm ci --no-audit --no-fund
# npm ci builds @tcpcopy/core's netio addon (core/engine/native: the raw capture and send sockets) with node-gyp;
# say so plainly if that did not happen (no C compiler, or scripts turned off).
if [ ! -f core/engine/build/Release/netio.node ]; then
  npm rebuild @tcpcopy/core --foreground-scripts || { echo "setup: building core/engine/native/netio.c failed (install gcc and make, then run ./scripts/setup.sh again)" >&2; exit 1; }
fi
npx tsc -b
