"""Per-person crypto-shredding: field ciphers, data keys per subject, the master key (docs/privacy.md)."""
