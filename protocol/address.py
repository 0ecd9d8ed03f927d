"""Endpoint addresses: tcp://HOST:PORT, tls://HOST:PORT, unix:///PATH, vsock://CID:PORT."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

VMADDR_CID_ANY = 0xFFFFFFFF
VMADDR_CID_LOCAL = 1
VMADDR_CID_HOST = 2


class AddressError(ValueError):
    """An address that cannot be parsed; the message says what form was expected."""


@dataclass(frozen=True)
class Address:
    """A parsed endpoint; `str()` gives it back in canonical form."""

    scheme: str  # "tcp", "tls", "unix" or "vsock" ("memory": an in-process pipe, never parsed)
    host: str = ""
    port: int = 0
    path: str = ""
    cid: int = 0

    def __str__(self) -> str:
        if self.scheme == "memory":
            return "memory://"
        if self.scheme == "unix":
            return f"unix://{self.path}"
        if self.scheme == "vsock":
            cid = "ANY" if self.cid == VMADDR_CID_ANY else str(self.cid)
            return f"vsock://{cid}:{self.port}"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port}"


def parse_address(raw: str) -> Address:
    """Parse an endpoint; raises AddressError naming the expected forms."""
    forms = "expected tcp://HOST:PORT, tls://HOST:PORT, unix:///PATH or vsock://CID:PORT"
    if "://" not in raw:
        raise AddressError(f"address {raw!r} has no scheme; {forms}")
    scheme, rest = raw.split("://", 1)
    scheme = scheme.lower()
    if scheme == "unix":
        if not rest:
            raise AddressError(f"address {raw!r} has no socket path; {forms}")
        return Address("unix", path=rest)
    if scheme == "vsock":
        cid_text, sep, port_text = rest.rpartition(":")
        if not sep or not port_text.isdigit() or int(port_text) > 0xFFFFFFFF:
            raise AddressError(f"address {raw!r} needs a port; {forms}")
        if cid_text.upper() in ("ANY", "-1"):
            cid = VMADDR_CID_ANY
        elif cid_text.isdigit():
            cid = int(cid_text)
        else:
            raise AddressError(f"address {raw!r}: CID must be a number or ANY")
        return Address("vsock", cid=cid, port=int(port_text))
    if scheme in ("tcp", "tls"):
        parts = urlsplit(f"//{rest}")
        try:
            port = parts.port
        except ValueError:
            raise AddressError(f"address {raw!r} has a bad port; {forms}") from None
        if port is None or not parts.hostname:
            raise AddressError(f"address {raw!r} needs HOST:PORT; {forms}")
        return Address(scheme, host=parts.hostname, port=port)
    raise AddressError(f"address {raw!r} has unknown scheme {scheme!r}; {forms}")
