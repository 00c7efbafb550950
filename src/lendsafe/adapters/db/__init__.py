"""lendsafe lendsafe.adapters.db."""
