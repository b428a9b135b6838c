#!/usr/bin/env bash
# The independent reader on the committed vectors (it must agree with every
# recorded verdict), then on copies it must refuse — a flipped byte of
# update.kgr's record table, a verdict recorded wrong — so the check is one
# that can fail.
set -euo pipefail
cd "$(dirname "$0")"
python3 independent_reader.py .
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cp trust.kgt snapshot.kgs revocations.kgr update.kgr verdicts.txt "$tmp/"
python3 - "$tmp/update.kgr" <<'PY'
import sys
p = sys.argv[1]
b = bytearray(open(p, "rb").read())
b[len(b) - 100] ^= 1  # inside the table, before the signature
open(p, "wb").write(b)
PY
if python3 independent_reader.py "$tmp" >/dev/null 2>&1; then
    echo "independent reader: accepted a tampered update.kgr" >&2; exit 1
fi
cp update.kgr "$tmp/"
sed -i '2s/ revoked$/ valid/' "$tmp/verdicts.txt"
if python3 independent_reader.py "$tmp" >/dev/null 2>&1; then
    echo "independent reader: agreed with a wrong verdict" >&2; exit 1
fi
echo "independent reader: refuses a tampered update and a wrong verdict"
