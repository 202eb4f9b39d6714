"""Commands registered on the shared app (filled in by its owner)."""
