"""The console: server-rendered pages over runs, streams, dead letters, keys and schedules,
behind a login."""
