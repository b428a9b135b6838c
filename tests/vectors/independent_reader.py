"""A second, independent reader of keygate's formats, written from
docs/format.md alone: it parses tests/vectors/{trust.kgt, snapshot.kgs,
revocations.kgr, update.kgr}, checks every signature (Ed25519 from RFC 8032,
below, no library), and decides every line of verdicts.txt by the document's
"Verdicts" rules. Where it disagrees with the recorded verdict, the document
or the Rust code is wrong.

    python3 tests/vectors/independent_reader.py [VECTORS_DIR]

Standard library only (hashlib, zlib's CRC-32)."""
import hashlib
import os
import struct
import sys
import zlib

# --- Ed25519 verification (RFC 8032, section 5.1.7) -------------------------

P = 2**255 - 19
L = 2**252 + 27742317777372353535851937790883648493
D = (-121665 * pow(121666, P - 2, P)) % P
SQRT_M1 = pow(2, (P - 1) // 4, P)


def _add(a, b):
    x1, y1, z1, t1 = a
    x2, y2, z2, t2 = b
    A = (y1 - x1) * (y2 - x2) % P
    B = (y1 + x1) * (y2 + x2) % P
    C = 2 * t1 * t2 * D % P
    Dd = 2 * z1 * z2 % P
    E, F, G, H = B - A, Dd - C, Dd + C, B + A
    return (E * F % P, G * H % P, F * G % P, E * H % P)


def _mul(s, p):
    q = (0, 1, 1, 0)
    while s:
        if s & 1:
            q = _add(q, p)
        p = _add(p, p)
        s >>= 1
    return q


def _equal(a, b):
    return (a[0] * b[2] - b[0] * a[2]) % P == 0 and (a[1] * b[2] - b[1] * a[2]) % P == 0


def _decompress(s):
    if len(s) != 32:
        return None
    y = int.from_bytes(s, "little")
    sign = y >> 255
    y &= (1 << 255) - 1
    if y >= P:
        return None
    x2 = (y * y - 1) * pow(D * y * y + 1, P - 2, P) % P
    if x2 == 0:
        if sign:
            return None
        x = 0
    else:
        x = pow(x2, (P + 3) // 8, P)
        if (x * x - x2) % P != 0:
            x = x * SQRT_M1 % P
        if (x * x - x2) % P != 0:
            return None
        if (x & 1) != sign:
            x = P - x
    return (x, y, 1, x * y % P)


G_Y = 4 * pow(5, P - 2, P) % P
G = _decompress(G_Y.to_bytes(32, "little"))


def ed25519_verify(public, msg, sig):
    A = _decompress(public)
    R = _decompress(sig[:32])
    s = int.from_bytes(sig[32:], "little")
    if A is None or R is None or s >= L:
        return False
    h = int.from_bytes(hashlib.sha512(sig[:32] + public + msg).digest(), "little") % L
    return _equal(_mul(s, G), _add(R, _mul(h, A)))


# --- Common pieces (format.md: Signatures, names) ---------------------------

def u16(b, at):
    return struct.unpack_from("<H", b, at)[0]


def u32(b, at):
    return struct.unpack_from("<I", b, at)[0]


def u64(b, at):
    return struct.unpack_from("<Q", b, at)[0]


def name_field(b, at):
    n = b[at]
    assert n <= 63 and all(x == 0 for x in b[at + 1 + n:at + 64]), "name padding"
    return b[at + 1:at + 1 + n].decode()


def signed_message(tag, body):
    return tag.encode().ljust(32, b"\0") + hashlib.sha256(body).digest()


def signer_id(public):
    return hashlib.sha256(public).digest()[:16]


# --- Trust bundle -------------------------------------------------------------

def read_trust(b):
    """The chain's signers (id -> public key) and keyset, checking each
    bundle: the first by its own keys, later ones by a key trusted before
    and one of their own."""
    at, trusted, keyset, version = 0, None, None, 0
    while at < len(b):
        assert b[at:at + 4] == b"KGT\0" and u16(b, at + 4) == 1, "trust magic/version"
        n, m = b[at + 6], b[at + 7]
        ver = u64(b, at + 8)
        assert ver > version
        ks = name_field(b, at + 24)
        signers = {}
        for i in range(n):
            o = at + 88 + 48 * i
            sid, pk = b[o:o + 16], b[o + 16:o + 48]
            assert signer_id(pk) == sid, "signer id"
            signers[sid] = pk
        body_end = at + 88 + 48 * n
        msg = signed_message("keygate/v1/trust", b[at:body_end])
        by_old = by_own = False
        for i in range(m):
            o = body_end + 80 * i
            sid, sig = b[o:o + 16], b[o + 16:o + 80]
            key = signers.get(sid) or (trusted or {}).get(sid)
            assert key is not None and ed25519_verify(key, msg, sig), "trust signature"
            by_own |= sid in signers
            by_old |= trusted is not None and sid in trusted
        assert by_own and (trusted is None or by_old), "trust chain"
        assert keyset in (None, ks)
        trusted, keyset, version = signers, ks, ver
        at = body_end + 80 * m
    return trusted, keyset


def check_signature(b, tag, signer_at, trusted):
    body, sig = b[:-64], b[-64:]
    key = trusted.get(b[signer_at:signer_at + 16])
    assert key is not None and ed25519_verify(key, signed_message(tag, body), sig), f"{tag} signature"


# --- Record tables (snapshot and update) --------------------------------------

M64 = 2**64 - 1


def fmix64(k):
    k ^= k >> 33
    k = k * 0xFF51AFD7ED558CCD & M64
    k ^= k >> 33
    k = k * 0xC4CEB9FE1A85EC53 & M64
    return k ^ (k >> 33)


class Table:
    """A record table: slots at `slots_at`, then pilots, principals, scopes."""

    def __init__(self, b, slots_at, records, buckets, slots, plen, qlen, seed, imported):
        self.b, self.slots_at = b, slots_at
        self.records, self.buckets, self.slots, self.seed, self.imported = records, buckets, slots, seed, imported
        self.pilots_at = slots_at + 64 * slots
        self.principals_at = self.pilots_at + 2 * buckets
        self.scopes_at = self.principals_at + plen
        self.end = self.scopes_at + qlen
        q = b[self.scopes_at:self.end]
        self.scopes, at = [], 1
        for _ in range(q[0]):
            n = q[at]
            self.scopes.append(q[at + 1:at + 1 + n].decode("ascii"))
            at += 1 + n
        assert at == len(q), "scopes blob"

    def lookup(self, digest):
        if self.slots == 0:
            return None
        idv = int.from_bytes(digest[:16], "big")
        hi, lo = idv >> 64, idv & M64
        bucket = hi * self.buckets >> 64
        pilot = u16(self.b, self.pilots_at + 2 * bucket)
        k = fmix64(lo ^ self.seed)
        x = (k ^ (pilot * 0x9E3779B97F4A7C15 & M64)) * 0xD6E8FEB86659FD93 & M64
        slot = x * self.slots >> 64
        rec = self.b[self.slots_at + 64 * slot:self.slots_at + 64 * slot + 64]
        if rec[:32] != digest or rec[44] == 0:
            return None
        p_at = u32(rec, 40)
        p = self.b[self.principals_at + p_at + 1:self.principals_at + p_at + 1 + self.b[self.principals_at + p_at]]
        return {
            "status": {1: "active", 2: "deprecated", 3: "revoked"}[rec[44]],
            "scopes": {s for i, s in enumerate(self.scopes) if u64(rec, 32) >> i & 1},
            "principal": p.decode(),
            "not_before": u32(rec, 48),
            "expires_at": u32(rec, 52) or None,
            "deprecated_at": u32(rec, 56) or None,
            "sunset_at": u32(rec, 60) or None,
        }


def read_snapshot(b, trusted, keyset):
    assert b[:4] == b"KGS\0" and u16(b, 4) == 2 and u16(b, 6) == 256, "snapshot magic/version"
    assert name_field(b, 128) == keyset
    check_signature(b, "keygate/v1/snapshot", 64, trusted)
    plen = b[112]
    table = Table(b, 256, u32(b, 80), u32(b, 84), u32(b, 88), u32(b, 92), u32(b, 96), u64(b, 104), u32(b, 100))
    assert table.end + 64 == len(b), "snapshot length"
    return {"version": u64(b, 8), "valid_until": u64(b, 24), "prefix": b[113:113 + plen].decode(), "table": table}


# --- Updates ------------------------------------------------------------------

def read_update(b, trusted, keyset):
    assert b[:4] == b"KGR\0", "update magic"
    version, header_len = u16(b, 4), u16(b, 6)
    assert (version, header_len) in ((1, 192), (2, 256)), "update version"
    assert name_field(b, 64) == keyset
    check_signature(b, "keygate/v1/revocations", 40, trusted)
    levels, at = [], header_len
    for i in range(b[128]):
        o = 136 + 16 * i
        seed, block, bits, kind = u64(b, o), u32(b, o + 8), b[o + 12], b[o + 13]
        size = (3 * block * bits + 7) // 8 + 3
        levels.append((seed, block, bits, kind, b[at:at + size]))
        at += size
    table = None
    if version == 2 and u32(b, 192):
        table_at = u32(b, 224)
        assert table_at == (at + 63) // 64 * 64 and not any(b[at:table_at]), "table offset"
        table = Table(b, table_at, u32(b, 192), u32(b, 200), u32(b, 204), u32(b, 208), u32(b, 212),
                      u64(b, 216), u32(b, 196))
        at = table.end
    assert at + 64 == len(b), "update length"
    return {"base": u64(b, 8), "sequence": u64(b, 16), "valid_until": u64(b, 32), "levels": levels,
            "table": table}


def filter_revoked(levels, key_id):
    idv = int.from_bytes(key_id, "big")
    hi, lo = idv >> 64, idv & M64
    for seed, block, bits, kind, data in levels:
        h = fmix64(lo ^ seed)
        rotl = lambda x, r: ((x << r) | (x >> (64 - r))) & M64  # noqa: E731
        cells = [h * block >> 64, block + (rotl(h, 21) * block >> 64), 2 * block + (rotl(h, 42) * block >> 64)]
        mask = (1 << bits) - 1
        value = 0
        for c in cells:
            bit = c * bits
            word = int.from_bytes(data[bit // 8:bit // 8 + 4].ljust(4, b"\0"), "little")
            value ^= (word >> (bit % 8)) & mask
        if kind == 1:
            fp = (fmix64(hi ^ rotl(seed, 32)) >> 32) & mask
            if value != fp:
                return False
        elif value & 1 == 0:
            return False
    return bool(levels)


# --- Keys and verdicts --------------------------------------------------------

B62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def base62(n, width):
    s = ""
    while n:
        n, r = divmod(n, 62)
        s = B62[r] + s
    return s.rjust(width, "0")


def checksum_ok(key, prefix):
    body, ck = key[:-6], key[-6:]
    return all(c in B62 for c in key[len(prefix) + 1:]) and base62(zlib.crc32(body.encode()), 6) == ck


def verdict(snap, update, key, scope, now):
    prefix = snap["prefix"]
    kb = key.encode()
    native = key.startswith(prefix + "_")
    if native:
        if len(kb) != len(prefix) + 40:
            return "malformed"
    else:
        imported = snap["table"].imported + (update["table"].imported if update and update["table"] else 0)
        if imported == 0 or not 8 <= len(kb) <= 256:
            return "malformed"
    d = hashlib.sha256(kb).digest()
    rec = update["table"].lookup(d) if update and update["table"] else None
    in_snapshot = snap["table"].lookup(d)
    rec = rec or in_snapshot
    if rec is None:
        return "malformed" if native and not checksum_ok(key, prefix) else "unknown"
    if rec["status"] == "revoked" or (in_snapshot and update and filter_revoked(update["levels"], d[:16])):
        return "revoked"
    if now < rec["not_before"]:
        return "not_yet_valid"
    ends = [t for t in (rec["expires_at"], rec["sunset_at"]) if t]
    if ends and now >= min(ends):
        return "expired"
    if scope is not None and scope not in rec["scopes"]:
        return "insufficient_scope"
    fresh = min([snap["valid_until"]] + ([update["valid_until"]] if update else []))
    if now > fresh:
        return "stale"
    return "valid_deprecated" if rec["status"] == "deprecated" else "valid"


def main():
    vectors = sys.argv[1] if len(sys.argv) > 1 else os.path.dirname(os.path.abspath(__file__))
    read = lambda n: open(os.path.join(vectors, n), "rb").read()  # noqa: E731
    trusted, keyset = read_trust(read("trust.kgt"))
    snap = read_snapshot(read("snapshot.kgs"), trusted, keyset)
    updates = [None]
    for name in ("revocations.kgr", "update.kgr"):
        u = read_update(read(name), trusted, keyset)
        assert u["base"] == snap["version"], f"{name}: base version"
        updates.append(u)
    checked = 0
    for line in read("verdicts.txt").decode().splitlines()[1:]:
        f = line.split(" ")
        key, scope, now, recorded = f[0], None if f[1] == "-" else f[1], int(f[2]), f[3:]
        assert len(recorded) == len(updates), line
        for u, want in zip(updates, recorded):
            got = verdict(snap, u, key, scope, now)
            assert got == want, f"{key} {scope} after {u and u['sequence']}: reader says {got}, recorded {want}"
            checked += 1
    print(f"independent reader: {checked} verdicts agree (4 artifacts parsed, 4 signatures checked)")


if __name__ == "__main__":
    main()
