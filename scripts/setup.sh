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
npx tsc -b
