"""PostgreSQL through Kafka Connect: flat sink rows derived from the log, and the connectors."""
