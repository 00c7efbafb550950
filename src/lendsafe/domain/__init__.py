"""The pure domain core of lendsafe: no I/O, no clock, no randomness, no float money."""
