"""Per-example records, the one result schema, statistics and exports."""
