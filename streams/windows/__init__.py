"""Windowed aggregation: high-rate inputs folded into event-time windows, exactly once.

`stage.py` (the loop and its transaction), `intake.py` (deciding a batch, no Kafka),
`records.py` (reading a raw record), `state.py` (RocksDB state and its changelog). The
declaration is plain data in the context (`streams.core.windows.WindowedAggregation`).
"""
