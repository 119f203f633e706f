"""`DELETE /privacy/subjects/{subject}`: forget a data subject (docs/privacy.md).

Deletes the subject's data key and appends `SubjectForgotten` to the audited privacy topic
(`streams.kafka.forgetting`). Erasure cannot be undone, so the endpoint answers only on a worker
with a bearer token (`STREAMS_AUTH_TOKEN`, which the guard checks before this handler runs).
"""

from __future__ import annotations

import asyncio

from aiohttp import web

from streams.config import Settings
from streams.kafka.forgetting import forget_subject
from streams.web.responses import ok, problem
from streams.wire.identifiers import InvalidIdentifier, check_identifier


class PrivacyEndpoints:
    """Erasure of a data subject's personal fields."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def routes(self) -> list[web.AbstractRouteDef]:
        """This group's routes."""
        return [web.delete("/privacy/subjects/{subject}", self.forget)]

    async def forget(self, request: web.Request) -> web.Response:
        """Forget the subject: 200 with whether a key was deleted and the audit record's offset."""
        if not self.settings.auth_token:
            detail = "erasure needs a worker with a bearer token (STREAMS_AUTH_TOKEN)"
            return problem(403, detail, reason="erasure_needs_token")
        subject = request.match_info["subject"]
        try:
            check_identifier("subject", subject)
        except InvalidIdentifier as exc:
            return problem(400, str(exc), reason=exc.reason, field="subject")
        loop = asyncio.get_running_loop()
        done = await loop.run_in_executor(None, lambda: forget_subject(self.settings, subject, "http"))
        return ok(
            {
                "subject": done.subject,
                "key_deleted": done.key_deleted,
                "audit": {"topic": done.topic, "offset": done.offset},
            }
        )
