"""lendsafe lendsafe.domain.control."""
