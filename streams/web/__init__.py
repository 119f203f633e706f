"""The worker's HTTP surface: commands, queries, real time, health and metrics."""
