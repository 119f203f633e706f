"""The query API: documents by id and by filter, aggregate history and time travel.

Each request for a key goes to the worker owning the key's partition in the stage's consumer
group (read from the group's description, whose members carry their URL as client id); a list
asks every owner and merges. `min_version` / `min_offset` make a read wait until the view has
caught up (read-your-writes), up to `timeout`, then answer 409 (`not_reached`, with `Retry-After`).
"""
