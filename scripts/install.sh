#!/bin/sh
# Installs a capa-imds release without Go: downloads the binary for this OS and architecture
# and SHA256SUMS, verifies the checksum, and installs capa-imds and clusterctl-imds into BINDIR.
#   curl -fsSL https://raw.githubusercontent.com/capa-imds/capa-imds/v0.1.0/scripts/install.sh | \
#     VERSION=v0.1.0 BINDIR="$HOME/.local/bin" sh
# BASE_URL replaces the GitHub release address (a mirror, or file:// in tests).
set -eu
VERSION=${VERSION:?set VERSION to a release tag, for example v0.1.0}
BINDIR=${BINDIR:-/usr/local/bin}
BASE_URL=${BASE_URL:-https://github.com/capa-imds/capa-imds/releases/download}
os=$(uname -s | tr '[:upper:]' '[:lower:]')
case $(uname -m) in
  x86_64 | amd64) arch=amd64 ;;
  aarch64 | arm64) arch=arm64 ;;
  *) echo "install.sh: no capa-imds release for $(uname -m)" >&2; exit 1 ;;
esac
asset=capa-imds_${os}_${arch}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
for f in "$asset" SHA256SUMS; do
  curl -fsSL -o "$tmp/$f" "$BASE_URL/$VERSION/$f"
done
# Only the line for this asset: a missing line must fail, not pass as "nothing to check".
grep "  $asset\$" "$tmp/SHA256SUMS" > "$tmp/sum" || { echo "install.sh: $asset is not in SHA256SUMS" >&2; exit 1; }
if command -v sha256sum >/dev/null; then
  (cd "$tmp" && sha256sum -c sum >/dev/null)
else
  (cd "$tmp" && shasum -a 256 -c sum >/dev/null)
fi || { echo "install.sh: checksum mismatch for $asset" >&2; exit 1; }
mkdir -p "$BINDIR"
install -m 0755 "$tmp/$asset" "$BINDIR/capa-imds"
ln -sf capa-imds "$BINDIR/clusterctl-imds"
"$BINDIR/capa-imds" --version
