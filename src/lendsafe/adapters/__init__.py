"""lendsafe lendsafe.adapters."""
