"""Reading a worker's HTTP API from the command line, with the bearer token (`streams top`,
`streams trace --url`); an https worker's certificate is verified against `STREAMS_WEB_CA_FILE`
(streams.web.tls)."""

from __future__ import annotations

import functools
import ssl
import urllib.error
import urllib.request

import click

from streams.config import Settings
from streams.web.tls import client_context


@functools.cache
def _tls() -> ssl.SSLContext:
    return client_context(Settings())


def get(url: str, path: str, token: str, timeout: float = 10.0) -> bytes:
    """The body of `GET <url><path>` (ClickException: the worker refused or did not answer)."""
    target = f"{url.rstrip('/')}{path}"
    request = urllib.request.Request(target)
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=timeout, context=_tls()) as response:
            return bytes(response.read())
    except urllib.error.HTTPError as exc:
        raise click.ClickException(f"{target} answered {exc.code} (STREAMS_AUTH_TOKEN / --token?)") from None
    except OSError as exc:
        raise click.ClickException(f"cannot read {target}: {exc}") from None
