"""Audiences: a SQL condition over a model, synced as boolean attributes per audience and
split; only entries and exits are sent, membership history kept."""
