"""Ledger: chart of accounts, double-entry transfers, posting rules, Merkle proofs."""
