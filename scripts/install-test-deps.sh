#!/usr/bin/env bash
# Installs the Debian packages the tests need, once: a second run finds them
# installed and returns at once. Run as root (or with sudo available).
#   libonnx-testdata       ONNX's own conformance tests (node tests)
#   dataset-fashion-mnist  Fashion-MNIST in IDX format, for the data loaders
#   chromium               headless, renders ebmrun report's HTML in the report test
#   npm                    to fetch onnxruntime (scripts/install-onnxruntime.sh)
set -euo pipefail
pkgs=(libonnx-testdata dataset-fashion-mnist chromium)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# npm may come from Node's own installer rather than Debian: any npm will do.
command -v npm >/dev/null 2>&1 || missing+=(npm)
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
echo "installing ${missing[*]} (apt-get)" >&2
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -q >/dev/null
$sudo apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
