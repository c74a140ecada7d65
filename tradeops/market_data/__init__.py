"""Market data: sources, calendars, validation, features, the feature store, drift."""
