"""lendsafe lendsafe.entrypoints.api."""
