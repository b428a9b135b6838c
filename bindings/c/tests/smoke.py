"""Python ctypes smoke test over libkeygate: python3 smoke.py LIB FIXTURES_DIR"""
import ctypes
import sys
from pathlib import Path


class Verdict(ctypes.Structure):
    _fields_ = [
        ("outcome", ctypes.c_int),
        ("key_id", ctypes.c_uint8 * 16),
        ("principal", ctypes.c_char * 129),
        ("principal_len", ctypes.c_size_t),
        ("expires_at", ctypes.c_uint64),
        ("deprecated_at", ctypes.c_uint64),
        ("sunset_at", ctypes.c_uint64),
        ("snapshot_version", ctypes.c_uint64),
        ("revocation_seq", ctypes.c_uint64),
        ("stale", ctypes.c_bool),
    ]


lib = ctypes.CDLL(sys.argv[1])
d = Path(sys.argv[2])
lib.keygate_outcome_name.restype = ctypes.c_char_p
lib.keygate_result_message.restype = ctypes.c_char_p
lib.keygate_verifier_verify.argtypes = [
    ctypes.c_void_p, ctypes.c_char_p, ctypes.c_size_t, ctypes.c_char_p, ctypes.c_size_t,
    ctypes.c_uint64, ctypes.POINTER(Verdict),
]
keys = dict(line.split(" ", 1) for line in (d / "keys.txt").read_text().splitlines())
trust = (d / "trust.kgt").read_bytes()
v = ctypes.c_void_p()
assert lib.keygate_verifier_new(trust, len(trust), ctypes.byref(v)) == 0
snap = (d / "snapshot-1.kgs").read_bytes()
assert lib.keygate_verifier_load_snapshot(v, snap, len(snap)) == 0
bad = snap[:100]
code = lib.keygate_verifier_load_snapshot(v, bad, len(bad))
assert lib.keygate_result_message(code) == b"artifact truncated", lib.keygate_result_message(code)
want = {"valid": b"valid", "deprecated": b"valid_deprecated", "revoked": b"revoked",
        "expired": b"expired", "not_yet_valid": b"not_yet_valid", "unknown": b"unknown"}
out = Verdict()
for name, outcome in want.items():
    k = keys[name].encode()
    assert lib.keygate_verifier_verify(v, k, len(k), b"invoices:read", 13, int(keys["now"]), ctypes.byref(out)) == 0
    got = lib.keygate_outcome_name(out.outcome)
    assert got == outcome, (name, got, outcome)
k = keys["valid"].encode()
assert lib.keygate_verifier_verify(v, k, len(k), None, 0, int(keys["now"]), ctypes.byref(out)) == 0
assert out.principal == b"billing-service" and out.snapshot_version == 1
lib.keygate_verifier_free(v)
print(f"python ctypes smoke: {len(want)} outcomes checked")
