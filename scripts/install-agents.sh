#!/usr/bin/env bash
# Install the real ACP agents the integration tests and benchmarks drive (opencode, qwen-code)
# from the npm registry into a cache outside the repository, only when missing.
#
#   scripts/install-agents.sh [opencode] [qwen]     (default: both)
#
# Cache: ${BOOCODE_AGENT_CACHE:-$HOME/.cache/boocode-agents}/<name>; binaries end up in
# <cache>/<name>/node_modules/.bin/. Idempotent: an agent whose binary runs is left alone.
# Exit status is non-zero when an install fails; npm's own message (e.g. ENOTFOUND when the
# registry is unreachable) is on stderr.
set -euo pipefail

cache="${BOOCODE_AGENT_CACHE:-$HOME/.cache/boocode-agents}"
agents=("$@")
[ ${#agents[@]} -eq 0 ] && agents=(opencode qwen)

package_of() {
  case "$1" in
    # opencode's native binary ships inside the registry package (opencode-linux-x64).
    opencode) echo "opencode-ai" ;;
    # On Node 20 npm resolves 0.15.x (newer releases need Node 22); both speak ACP.
    qwen) echo "@qwen-code/qwen-code" ;;
    *) echo "unknown agent '$1' (known: opencode qwen)" >&2; return 2 ;;
  esac
}

if ! command -v npm >/dev/null 2>&1; then
  echo "install-agents: npm is not on PATH; install Node.js 20+ with npm" >&2
  exit 1
fi

status=0
for name in "${agents[@]}"; do
  pkg="$(package_of "$name")" || { status=2; continue; }
  dir="$cache/$name"
  bin="$dir/node_modules/.bin/$name"
  if [ -x "$bin" ] && "$bin" --version >/dev/null 2>&1; then
    echo "install-agents: $name $("$bin" --version 2>/dev/null | head -n1) already in $dir"
    continue
  fi
  mkdir -p "$dir"
  echo "install-agents: installing $pkg into $dir"
  started=$(date +%s)
  if npm install --prefix "$dir" --no-audit --no-fund --loglevel=error "$pkg" >&2; then
    echo "install-agents: $name $("$bin" --version 2>/dev/null | head -n1) installed in $(( $(date +%s) - started ))s"
  else
    echo "install-agents: installing $pkg failed" >&2
    status=1
  fi
done
exit $status
