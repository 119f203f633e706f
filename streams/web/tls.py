"""TLS for the worker's web server and for the clients that call workers: one place that turns
the settings into `ssl.SSLContext`s.

The server presents `STREAMS_WEB_TLS_CERT` / `STREAMS_WEB_TLS_KEY` (PEM; both or neither) and then
serves HTTPS only: a plain HTTP request to its port fails the handshake. Clients (a worker
forwarding a query to the partition's owner, `streams top`, `streams trace`) verify the worker's
certificate and host name against `STREAMS_WEB_CA_FILE`, or the system's trust store when it is
empty. TLS 1.2 is the floor on both sides.
"""

from __future__ import annotations

import ssl
from pathlib import Path

from streams.config import Settings


class TlsSettingsError(ValueError):
    """The web server's TLS settings cannot be used (one of the pair missing, a file unreadable)."""


def server_context(settings: Settings) -> ssl.SSLContext | None:
    """The web server's context, None when it serves plain HTTP."""
    cert, key = settings.web_tls_cert, settings.web_tls_key
    if not cert and not key:
        return None
    if not cert or not key:
        raise TlsSettingsError("STREAMS_WEB_TLS_CERT and STREAMS_WEB_TLS_KEY must be set together")
    for name, path in (("STREAMS_WEB_TLS_CERT", cert), ("STREAMS_WEB_TLS_KEY", key)):
        if not Path(path).is_file():
            raise TlsSettingsError(f"{name}: no file at {path}")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(cert, key)
    except (ssl.SSLError, OSError) as exc:
        raise TlsSettingsError(f"STREAMS_WEB_TLS_CERT / STREAMS_WEB_TLS_KEY: {exc}") from None
    return context


def client_context(settings: Settings) -> ssl.SSLContext:
    """What a client of workers verifies their certificates with."""
    ca = settings.web_ca_file or None
    if ca is not None and not Path(ca).is_file():
        raise TlsSettingsError(f"STREAMS_WEB_CA_FILE: no file at {ca}")
    context = ssl.create_default_context(cafile=ca)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context
