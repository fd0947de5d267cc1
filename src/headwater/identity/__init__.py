"""Identity resolution: records from several sources that share any key are one person,
with a stable person id and a golden record (a model kind, ``identity:`` on a model)."""
