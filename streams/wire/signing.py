"""HMAC signatures with the deployment's secret: resume tokens, advertised worker URLs, and
requests one worker forwards to another.

A signature is the first 128 bits of HMAC-SHA256 over its parts, base64url; every use has its
own first part (a purpose), so a signature made for one use is worthless for another.
"""

from __future__ import annotations

import base64
import hashlib
import hmac


def signature(secret: bytes, purpose: str, *parts: str) -> str:
    """The signature of `parts` for `purpose`."""
    message = "\n".join((purpose, *parts)).encode("utf-8", "surrogatepass")
    digest = hmac.new(secret, message, hashlib.sha256).digest()[:16]
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def verify(secret: bytes, given: str, purpose: str, *parts: str) -> bool:
    """True when `given` is the signature of `parts` for `purpose` (constant time)."""
    return hmac.compare_digest(given.encode(), signature(secret, purpose, *parts).encode())


def signed_url(secret: bytes, url: str) -> str:
    """A worker's URL with its signature, as it advertises it in its consumer groups (client id)."""
    return f"{url}#{signature(secret, 'worker-url', url)}"


def verified_url(secret: bytes, client_id: str) -> str | None:
    """The URL in a group member's client id, if a worker of this deployment signed it."""
    url, _, given = client_id.rpartition("#")
    return url if url and verify(secret, given, "worker-url", url) else None
