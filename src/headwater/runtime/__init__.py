"""What one running hub shares (settings, state store, outbox, keys, counters, inspector),
below every route and worker."""
