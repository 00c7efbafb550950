"""lendsafe lendsafe.entrypoints."""
