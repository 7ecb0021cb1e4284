#!/usr/bin/env bash
# Debian's headless Chromium for the page's browser test, fetched like the music (apt-get download + dpkg -x, no
# root install, nothing from any other place): the package and every shared-library package it needs that this
# machine lacks, unpacked under DIR (default .browser), with DIR/chromium: a launcher that finds those libraries.
# Usage: scripts/fetch-chromium.sh [DIR]   -> prints the launcher's path
set -euo pipefail
DIR="$(mkdir -p "${1:-.browser}" && cd "${1:-.browser}" && pwd)"
LAUNCHER="$DIR/chromium"
if [ -x "$LAUNCHER" ] && "$LAUNCHER" --version >/dev/null 2>&1; then echo "$LAUNCHER"; exit 0; fi
mkdir -p "$DIR/debs" "$DIR/root"
cd "$DIR/debs"
# the package's dependency closure, less what is installed; only libraries (fonts etc. come from the machine)
need=()
for p in $(apt-cache depends --recurse --no-recommends --no-suggests --no-conflicts --no-breaks --no-replaces \
             --no-enhances chromium-headless-shell 2>/dev/null | grep '^[a-z0-9]' | sort -u); do
  case "$p" in chromium-headless-shell|chromium-common|lib*) ;; *) continue ;; esac
  dpkg -s "$p" >/dev/null 2>&1 || need+=("$p")
done
apt-get download "${need[@]}" >/dev/null 2>&1 || { echo "apt-get download failed for: ${need[*]}" >&2; exit 1; }
for deb in *.deb; do dpkg -x "$deb" "$DIR/root"; done
LIBS="$(find "$DIR/root" -name '*.so*' -printf '%h\n' | sort -u | tr '\n' ':')"
cat > "$LAUNCHER" <<SH
#!/usr/bin/env bash
export LD_LIBRARY_PATH="$LIBS\${LD_LIBRARY_PATH:-}"
exec "$DIR/root/usr/lib/chromium/chromium-headless-shell" "\$@"
SH
chmod +x "$LAUNCHER"
missing="$(LD_LIBRARY_PATH="$LIBS" ldd "$DIR/root/usr/lib/chromium/chromium-headless-shell" | grep 'not found' || true)"
[ -z "$missing" ] || { echo "chromium-headless-shell still lacks: $missing" >&2; exit 1; }
echo "$LAUNCHER"
