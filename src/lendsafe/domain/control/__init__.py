"""Internal control: roles and permissions as data, segregation of duties, maker-checker,
masking of personal data, one-time passwords and login throttling (pure rules)."""
