"""Postmortems and action items (built on incidents). Models arrive with the postmortems work."""
