"""The table of command responses in docs/http-api.md and the OpenAPI document list the same statuses."""

from __future__ import annotations

import re

from streams import app as worker
from streams.web.openapi import openapi_document
from tests.conftest import ROOT


def test_the_readme_status_table_matches_the_openapi_document() -> None:
    readme = (ROOT / "docs" / "http-api.md").read_text()
    table = readme[readme.index("| status | meaning |") : readme.index("Every route is described in OpenAPI")]
    in_readme = {int(code) for code in re.findall(r"^\| (\d{3}) \|", table, flags=re.MULTILINE)}
    document = openapi_document(worker.settings, worker.contexts)
    responses = document["paths"]["/orders/commands/PlaceOrder"]["post"]["responses"]
    assert in_readme == {int(code) for code in responses}
