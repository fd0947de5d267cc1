"""The HTTP surface ``headwater serve`` runs: wires the jobs' routes and workers into one app."""
