"""Kafka plumbing shared by every stage: client configuration, runtime per context, RocksDB stores."""
