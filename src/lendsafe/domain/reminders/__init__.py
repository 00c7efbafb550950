"""lendsafe lendsafe.domain.reminders."""
