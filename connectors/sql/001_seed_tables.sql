-- The seed's EventStore, GenericReadModel and GenericSnapshots, filled by the JDBC sinks in
-- connectors/*.json. Applied (idempotently) by `streams connect deploy`; ${schema} is
-- STREAMS_SINK_SCHEMA. Identifiers are unquoted, so PostgreSQL folds them to lower case, which is
-- what the Debezium JDBC sink (quote.identifiers=false) writes to; queries may use either case.
-- Differences from the seed, and why:
--   EventID UUID instead of SERIAL: our events carry a uuid event id (header event_id); the
--     sink upserts on it, so a record copied twice (at-least-once) stays one row.
--   AggregateID/EntityID VARCHAR instead of UUID: aggregate ids are caller-chosen strings such
--     as "order-1" (the Kafka record key), not necessarily uuids.
--   GenericReadModel's key is (EntityID, EntityType): several views may hold a document for the
--     same entity; EntityType is the read-model topic without prefix, e.g. orders.order-summary.
--   Timestamps are UTC.
CREATE SCHEMA IF NOT EXISTS ${schema};

CREATE TABLE IF NOT EXISTS ${schema}.EventStore (
    EventID UUID PRIMARY KEY,
    AggregateID VARCHAR(255) NOT NULL,
    AggregateType VARCHAR(255) NOT NULL,
    EventType VARCHAR(255) NOT NULL,
    EventData JSONB NOT NULL,
    Metadata JSONB,
    Timestamp TIMESTAMP DEFAULT NOW(),
    Version INT NOT NULL
);
CREATE INDEX IF NOT EXISTS idx_aggregate_id ON ${schema}.EventStore (AggregateID);
CREATE INDEX IF NOT EXISTS idx_aggregate_type ON ${schema}.EventStore (AggregateType);
CREATE INDEX IF NOT EXISTS idx_event_type ON ${schema}.EventStore (EventType);
-- not in the seed: the per-aggregate history query (WHERE AggregateID = ? ORDER BY Version)
CREATE INDEX IF NOT EXISTS idx_aggregate_version ON ${schema}.EventStore (AggregateID, Version);

CREATE TABLE IF NOT EXISTS ${schema}.GenericReadModel (
    EntityID VARCHAR(255) NOT NULL,
    EntityType VARCHAR(255) NOT NULL,
    State JSONB NOT NULL,
    LastEventVersion INT NOT NULL,
    LastUpdated TIMESTAMP DEFAULT NOW(),
    PRIMARY KEY (EntityID, EntityType)
);
CREATE INDEX IF NOT EXISTS idx_entity_type ON ${schema}.GenericReadModel (EntityType);
CREATE INDEX IF NOT EXISTS idx_last_event_version ON ${schema}.GenericReadModel (LastEventVersion);

CREATE TABLE IF NOT EXISTS ${schema}.GenericSnapshots (
    AggregateID VARCHAR(255) PRIMARY KEY,
    AggregateType VARCHAR(255) NOT NULL,
    SnapshotData JSONB NOT NULL,
    LastEventVersion INT NOT NULL,
    Timestamp TIMESTAMP DEFAULT NOW()
);
CREATE INDEX IF NOT EXISTS idx_snapshot_type ON ${schema}.GenericSnapshots (AggregateType);
