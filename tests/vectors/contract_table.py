"""Prints tests/vectors/contract.json as the markdown table in
docs/integrations/contract.md (the docs test checks the two agree):
python3 tests/vectors/contract_table.py"""
import json
import os

HERE = os.path.dirname(os.path.abspath(__file__))


def cell(text):
    return text.replace("|", "\\|")


def shown(value):
    """A tab as \\t and a byte past ASCII as \\xNN (values are sent as Latin-1 bytes)."""
    return "".join("\\t" if c == "\t" else f"\\x{ord(c):02x}" if ord(c) > 0x7e else c for c in value)


def headers(hs):
    return "<br>".join(f"`{n}: {shown(v)}`" for n, v in hs) or "—"


def expected(e):
    out = []
    for h, v in (e or {}).items():
        if v is None:
            out.append(f"no `{h}`")
        elif v == "*":
            out.append(f"`{h}` set")
        else:
            out.append(f"`{h}: {v}`")
    return "<br>".join(out) or "—"


def table():
    rows = ["| request | headers | status | response | upstream receives |", "|---|---|---|---|---|"]
    for v in json.load(open(os.path.join(HERE, "contract.json")))["vectors"]:
        sent = headers(v["headers"])
        if "path" in v:
            sent = f"`GET {v['path']}`"
        rows.append(f"| {v['name']} | {cell(sent)} | {v['status']} | {cell(expected(v.get('response')))} "
                    f"| {cell(expected(v.get('upstream')))} |")
    return "\n".join(rows)


if __name__ == "__main__":
    print(table())
