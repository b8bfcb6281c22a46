#!/usr/bin/env bash
# Builds from clean and runs every test once at the root. The last line is "N passed, N failed, N skipped".
set -euo pipefail
cd "$(dirname "$0")/.."
npm run --silent clean
npx tsc -b
exec timeout --kill-after=30 1200 npx mocha "$@"
