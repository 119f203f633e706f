"""`python -m bench.chaos` (`make chaos`): the three-broker cluster under faults, one at a time,
then one checker in the shape of Kafka's own `transactions_test.py`.

On a cluster of its own (`bench.chaos.cluster`: three KRaft nodes and a registry on side ports,
beside the default stack), one worker serves a steady orders command load while each scenario
(`bench.chaos.scenarios`) injects its fault, waits for the cluster to heal and lets the load run
on. Afterwards `bench.chaos.check` reads the logs: every accepted command has exactly one result
and its event exactly once, versions per aggregate are contiguous, and the read_committed reader
that ran beside the load never saw a record that a read_uncommitted read shows was aborted.
"""
