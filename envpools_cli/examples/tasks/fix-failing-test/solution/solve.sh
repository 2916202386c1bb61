#!/bin/bash
# Reference solution: match words on the lower-cased text.
set -euo pipefail
cd /app
python3 - <<'PY'
from pathlib import Path

path = Path("textutils.py")
source = path.read_text()
fixed = source.replace('re.findall(r"[a-z0-9]+", text)', 're.findall(r"[a-z0-9]+", text.lower())')
assert fixed != source, "the expected line was not found"
path.write_text(fixed)
PY
echo "patched textutils.slugify"
