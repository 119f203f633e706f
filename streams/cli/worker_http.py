"""Reading a worker's HTTP API from the command line, with the bearer token (`streams top`,
`streams trace --url`)."""

from __future__ import annotations

import urllib.error
import urllib.request

import click


def get(url: str, path: str, token: str, timeout: float = 10.0) -> bytes:
    """The body of `GET <url><path>` (ClickException: the worker refused or did not answer)."""
    target = f"{url.rstrip('/')}{path}"
    request = urllib.request.Request(target)
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return bytes(response.read())
    except urllib.error.HTTPError as exc:
        raise click.ClickException(f"{target} answered {exc.code} (STREAMS_AUTH_TOKEN / --token?)") from None
    except OSError as exc:
        raise click.ClickException(f"cannot read {target}: {exc}") from None
