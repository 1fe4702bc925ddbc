"""What every team-mode connection goes through: URL checks, TLS, and secrets kept out of sight.

- TLS certificates are verified (httpx's default, never turned off here).
- Plain http is refused to anything but this machine (loopback) unless the settings say
  `allow_insecure_http = true`: a token or a document sent in clear over a network is readable
  by anyone on the path.
- Tokens live in `Secret`, whose repr and str are masked, and only ever travel in a header; URLs
  shown to the user or written to the log are stripped of any user:password part.
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit


class InsecureServer(ValueError):
    """The server URL would send data in clear over a network, or is not a URL at all."""


class ServerUnavailable(ConnectionError):
    """A team server could not be reached or stopped answering; the message says which."""


@dataclass(frozen=True)
class Secret:
    """A token: never in repr, str, f-strings or tracebacks' locals dumps of this object."""

    value: str

    def __repr__(self) -> str:
        return "Secret('***')" if self.value else "Secret('')"

    __str__ = __repr__

    def __bool__(self) -> bool:
        return bool(self.value)


def is_loopback(host: str) -> bool:
    """True for localhost and loopback addresses (the name is resolved: 'localhost' may be
    anything in /etc/hosts)."""
    host = host.strip("[]")
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        pass
    if host.lower() != "localhost":
        return False
    try:
        infos = socket.getaddrinfo(host, None)
    except OSError:
        return False
    return bool(infos) and all(ipaddress.ip_address(i[4][0]).is_loopback for i in infos)


def safe_url(url: str) -> str:
    """`url` without any user:password@ part, for messages and the log."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"[{host}]" if ":" in host else host
    if parts.port:
        netloc += f":{parts.port}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def check_url(url: str, allow_insecure_http: bool = False, what: str = "server") -> str:
    """The URL, normalised (no trailing slash); raises InsecureServer when it is not one or
    would go in clear over a network."""
    url = url.strip().rstrip("/")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InsecureServer(
            f"The {what} address '{safe_url(url)}' is not an http:// or https:// URL."
        )
    if parts.username or parts.password:
        raise InsecureServer(
            f"The {what} address must not carry a user or password: put the token in the "
            "settings' token key instead."
        )
    if parts.scheme == "http" and not allow_insecure_http and not is_loopback(parts.hostname):
        raise InsecureServer(
            f"The {what} at {safe_url(url)} would be reached over plain http, so documents and "
            "the token would cross the network unencrypted. Use https://, or allow plain http "
            "(allow_insecure_http = true) if this network is trusted."
        )
    return url


def auth_headers(token: Secret | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {token.value}"} if token else {}


def why_unreachable(exc: BaseException) -> str:
    """A failed connection in words for the person reading the note, not the exception's class
    name ("ConnectError", or chromadb's "ValueError: Could not connect...")."""
    text = f"{type(exc).__name__} {exc}".lower()
    if "timeout" in text or "timed out" in text:
        return "it did not answer in time"
    if "certificate" in text or "ssl" in text or "tls" in text:
        return "its certificate could not be verified"
    if any(w in text for w in ("name or service", "nodename", "getaddrinfo", "name resolution")):
        return "that computer name is not known on this network"
    return "nothing answers at that address"
