"""What this worker's real-time feed did with given records: for `streams trace`'s last hop.

`GET /realtime/frames?context=orders&at=<topic>:<partition>:<offset>,…` (bearer token, like every
read) answers, for each record asked about, one `FrameSeen`: when the fanout dispatched its frame
(wall-clock ms) and how many subscribers it was handed to, while the record is still in the ring
of recent frames. A record that is not there says why, never silently: the ring has dropped it
(`out_of_ring`), the feed has not read that far (`not_yet_read`), the feed does not follow the
topic (`not_followed`: no client has subscribed to that view on this worker), or the context has
no feed on this worker at all (`no_feed`: no client has subscribed since it started). Nothing is
recorded per frame beyond the fanout's timestamp and counter (`FeedRecord.published_ms`,
`delivered`); this module only reads them.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from streams.web.realtime.fanout import Fanout
from streams.web.realtime.records import TopicPartition

MAX_POSITIONS = 200
"""The most records one request may ask about."""

IN_RING = "in_ring"
OUT_OF_RING = "out_of_ring"
NOT_YET_READ = "not_yet_read"
NOT_FOLLOWED = "not_followed"
NO_FEED = "no_feed"
NO_RECORD = "no_record"
"""Inside the ring's range but no record there (a transaction marker, a compacted offset)."""


@dataclass(frozen=True)
class FrameSeen:
    """One record's frame on this worker, as far as its ring remembers."""

    topic: str
    partition: int
    offset: int
    status: str
    """One of in_ring, out_of_ring, not_yet_read, not_followed, no_feed, no_record."""
    published_ms: int | None = None
    """When the fanout dispatched it (in_ring only)."""
    delivered: int | None = None
    """Subscribers it was handed to so far (in_ring only)."""

    def as_json(self) -> dict[str, Any]:
        """Its JSON form."""
        return asdict(self)


def parse_positions(text: str) -> list[tuple[str, int, int]]:
    """`topic:partition:offset,…` as tuples (ValueError: malformed, or more than MAX_POSITIONS).
    A topic name has no `:` or `,` (Kafka allows letters, digits, `.`, `_`, `-`)."""
    out = []
    for item in filter(None, text.split(",")):
        topic, partition, offset = item.rsplit(":", 2)
        if not topic or int(partition) < 0 or int(offset) < 0:
            raise ValueError(f"bad position {item!r}")
        out.append((topic, int(partition), int(offset)))
    if not out or len(out) > MAX_POSITIONS:
        raise ValueError(f"give 1 to {MAX_POSITIONS} positions as topic:partition:offset, comma-separated")
    return out


def seen(fanout: Fanout | None, topic: str, partition: int, offset: int) -> FrameSeen:
    """What `fanout` (None: the context has no feed here) remembers of one record."""
    tp: TopicPartition = (topic, partition)
    if fanout is None:
        return FrameSeen(topic, partition, offset, NO_FEED)
    if tp not in fanout.head:
        return FrameSeen(topic, partition, offset, NOT_FOLLOWED)
    if offset >= fanout.head[tp]:
        return FrameSeen(topic, partition, offset, NOT_YET_READ)
    if offset < fanout.ring_start[tp]:
        return FrameSeen(topic, partition, offset, OUT_OF_RING)
    record = fanout.kept(tp, offset)
    if record is None:
        return FrameSeen(topic, partition, offset, NO_RECORD)
    return FrameSeen(topic, partition, offset, IN_RING, record.published_ms, record.delivered)
