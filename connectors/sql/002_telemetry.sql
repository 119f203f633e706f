-- telemetry_10s: the devices context's `telemetry-10s` read model (one row per device, metric and
-- 10 s window) as typed columns, beside the seed's tables. The rows are upserted by the
-- read-model JDBC sink into GenericReadModel (EntityType 'devices.telemetry-10s', EntityID
-- '<device>|<metric>|<window start ms>'); this view and the index under it make them a time
-- series: SELECT * FROM telemetry_10s WHERE device_id = 'dev-1' ORDER BY window_start.
CREATE OR REPLACE VIEW ${schema}.telemetry_10s AS
SELECT
    State->>'device_id' AS device_id,
    State->>'metric' AS metric,
    to_timestamp((State->>'window_start')::bigint / 1000.0) AS window_start,
    to_timestamp((State->>'window_end')::bigint / 1000.0) AS window_end,
    (State->>'count')::bigint AS count,
    (State->>'min')::double precision AS min,
    (State->>'max')::double precision AS max,
    (State->>'mean')::double precision AS mean,
    (State->>'sum')::double precision AS sum,
    LastUpdated AS last_updated
FROM ${schema}.GenericReadModel
WHERE EntityType = 'devices.telemetry-10s';

CREATE INDEX IF NOT EXISTS idx_telemetry_10s ON ${schema}.GenericReadModel
    ((State->>'device_id'), ((State->>'window_start')::bigint))
    WHERE EntityType = 'devices.telemetry-10s';
