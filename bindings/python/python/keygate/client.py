"""The client half of a rotation without refused requests: hold the key in
use and the next one, send the one in use, and switch when the gateway says
so.

    from keygate.client import RotatingKey
    keys = RotatingKey(current)            # later: keys.offer_next(new_key)
    r = keys.send(lambda key: requests.get(url, headers={"Authorization": f"Bearer {key}"}))

`send(call)` calls `call(key)` with the key in use and returns its
response (anything with `.status_code`/`.status` and `.headers`). The rules:

- the gateway answers a request with `Deprecation` (the key was rotated
  out) and a next key is held: the next requests use the next key;
- the key in use is refused as `revoked` or `expired` and a next key is
  held: the same request is sent again with the next key, which is kept if
  the gateway takes it;
- the next key is refused as `unknown` (the gateway has not loaded it yet):
  the same request is sent again with the previous key, and the switch is
  tried again on a later request (`retry_after` seconds later).

No key is ever logged or put in an exception by this class.
"""
import re
import time
from typing import Any, Callable, Optional, TypeVar

R = TypeVar("R")

_DESCRIPTION = re.compile(r'error_description="([a-z_]+)"')


def _status(r: Any) -> int:
    return getattr(r, "status_code", None) or getattr(r, "status")


def _header(r: Any, name: str) -> Optional[str]:
    h = r.headers
    return h.get(name) if hasattr(h, "get") else None


def _refusal(r: Any) -> Optional[str]:
    if _status(r) != 401:
        return None
    m = _DESCRIPTION.search(_header(r, "www-authenticate") or "")
    return m.group(1) if m else None


class RotatingKey:
    def __init__(self, current: str, next_key: Optional[str] = None, retry_after: float = 1.0) -> None:
        self._current, self._next, self._previous = current, next_key, None
        self._retry_after, self._not_before = retry_after, 0.0
        self.switches = 0

    def __repr__(self) -> str:
        return f"RotatingKey(switches={self.switches}, next_held={self._next is not None})"

    @property
    def in_use(self) -> str:
        return self._current

    def offer_next(self, key: str) -> None:
        """A new key from a rotation: used once the gateway says to."""
        self._next = key

    def _switch(self) -> None:
        self._previous, self._current, self._next = self._current, self._next, None
        self.switches += 1

    def _fall_back(self) -> None:
        # The gateway does not know the new key yet: back to the old one,
        # the new one held for a later try.
        self._current, self._next, self._previous = self._previous, self._current, None
        self.switches -= 1
        self._not_before = time.monotonic() + self._retry_after

    def send(self, call: Callable[[str], R]) -> R:
        r = call(self._current)
        why = _refusal(r)
        if why == "unknown" and self._previous is not None:
            self._fall_back()
            return call(self._current)
        if why in ("revoked", "expired") and self._next is not None:
            self._switch()
            r2 = call(self._current)
            if _refusal(r2) == "unknown" and self._previous is not None:
                self._fall_back()
                return r
            return r2
        if _header(r, "deprecation") and self._next is not None and time.monotonic() >= self._not_before:
            self._switch()
        return r
