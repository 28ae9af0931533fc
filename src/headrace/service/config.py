"""Where the service's store is and who may call it.

A token, when set, is required on every API and UI request, as ``Authorization: Bearer <token>``
or (for the browser, after one visit of ``/?token=<token>``) as the ``headrace_token`` cookie.
Binding an address other than loopback without a token is refused: the service reads and
cancels everything in the store.
"""

from __future__ import annotations

import ipaddress
import secrets
from dataclasses import dataclass
from pathlib import Path

__all__ = ["ServiceConfig", "UnsafeBind", "check_bind", "token_matches"]


class UnsafeBind(ValueError):
    """A non-loopback address without a token."""


@dataclass(frozen=True)
class ServiceConfig:
    """The store the service opens (as every store command takes it) and its token."""

    home: Path | None = None
    db: str | None = None
    objects: str | None = None
    token: str | None = None


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # a host name: it may resolve to anything
        return False


def check_bind(host: str, token: str | None) -> None:
    """Refuse a non-loopback ``host`` without a token.

    >>> check_bind("127.0.0.1", None)
    >>> check_bind("0.0.0.0", None)
    Traceback (most recent call last):
    ...
    headrace.service.config.UnsafeBind: binding 0.0.0.0 (not loopback) without a token ...
    >>> check_bind("0.0.0.0", "s3cret")
    """
    if not token and not _is_loopback(host):
        raise UnsafeBind(
            f"binding {host} (not loopback) without a token would let anyone on the network "
            "read and cancel every job; give --token or HEADRACE_TOKEN"
        )


def token_matches(expected: str | None, given: str | None) -> bool:
    """Whether ``given`` is the token (always, when no token is set), in constant time."""
    if not expected:
        return True
    return given is not None and secrets.compare_digest(expected.encode(), given.encode())
