"""The wire format: Avro codec and schema files, record headers, topic and group names, JSON forms."""
