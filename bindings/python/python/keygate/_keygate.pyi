from os import PathLike
from typing import Iterable, List, Optional, Sequence, Tuple, Union

_Text = Union[str, bytes]

class Verdict:
    outcome: str
    principal: Optional[str]
    key_id: Optional[str]
    expires_at: Optional[int]
    deprecated_at: Optional[int]
    sunset_at: Optional[int]
    scopes: List[str]
    @property
    def valid(self) -> bool: ...

class Decision:
    status: int
    forward: bool
    body: str
    response_headers: list[Tuple[str, str]]
    strip: list[str]
    principal_header: str
    principal_value: Optional[str]
    verdict: Optional[Verdict]

class Verifier:
    @staticmethod
    def from_dir(
        path: Union[str, PathLike[str]],
        *,
        poll_interval: Optional[float] = 1.0,
        realm: str = "keygate",
        principal_header: str = "x-keygate-principal",
        retry_after: int = 5,
    ) -> "Verifier": ...
    @staticmethod
    def from_url(
        anchor: bytes,
        url: str,
        *,
        poll_interval: Optional[float] = 1.0,
        realm: str = "keygate",
        principal_header: str = "x-keygate-principal",
        retry_after: int = 5,
    ) -> "Verifier": ...
    def reload(self) -> bool: ...
    def verify(self, key: _Text, scope: Optional[str] = None) -> Verdict: ...
    def check(self, headers: Sequence[Tuple[_Text, _Text]], scope: Optional[str] = None) -> Decision: ...
    def metrics(self) -> str: ...
    def close(self) -> None: ...
