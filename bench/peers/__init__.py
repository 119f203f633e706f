"""The two peers a user would pick instead of our write path, on the same traffic (issue 15).

g. Quix Streams (`quix_app`): our `decide`/`evolve` in a stateful `StreamingDataFrame` on its
   RocksDB state, exactly once.
h. Kafka Streams (`kafka_streams`, Java sources and pom under `kstreams/`): the same two rules as a
   processor over a RocksDB key-value store, `exactly_once_v2`.

Both read JSON commands and write one JSON record per command, the event or the rejection
(`wire`); `run` pre-loads the traffic, starts a peer in a child process and times it on its output
topic.
"""
