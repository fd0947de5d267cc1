"""Triggers: send a Braze campaign or canvas (or update the profile only) when a person
enters an audience or a matching event arrives, exactly once per entry."""
