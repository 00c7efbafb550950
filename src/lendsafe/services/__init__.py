"""lendsafe lendsafe.services."""
