"""Security adapters: password hashing (argon2), signed session tokens, PII envelope encryption."""
