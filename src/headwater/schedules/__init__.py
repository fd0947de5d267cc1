"""Schedules: when jobs fire (``timing``), what the project file may say (``checks``), and
the loop ``headwater serve`` runs them with (``scheduler``)."""
