#!/bin/sh
# Adds Lumen to this user's application menu, pointing at the folder this script is in (the
# extracted release). `--remove` takes the entry out again. Nothing else is written.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
apps="${XDG_DATA_HOME:-$HOME/.local/share}/applications"
entry="$apps/lumen.desktop"
if [ "${1:-}" = "--remove" ]; then
  rm -f "$entry"
  echo "removed $entry"
  exit 0
fi
mkdir -p "$apps"
sed -e "s|^Exec=lumen|Exec=\"$here/lumen\"|" -e "s|^Icon=lumen|Icon=$here/lumen.svg|" \
  "$here/lumen.desktop" > "$entry.partial"
mv "$entry.partial" "$entry"
echo "added $entry (Exec=$here/lumen)"
