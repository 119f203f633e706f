"""The bounded contexts shipped with streams: each one module of plain data and pure functions.

`streams.contexts.registry` finds every installed context (these, the entry points of other
packages, and `STREAMS_CONTEXT_MODULES`); only the composition root and the CLI ask it.
"""
