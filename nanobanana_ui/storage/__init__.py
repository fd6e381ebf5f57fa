"""Storage: the result cache and the history (SQLite plus content-addressed files)."""
