"""satedge."""
