"""lendsafe lendsafe."""
