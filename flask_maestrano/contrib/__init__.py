"""Optional integrations with other Flask extensions (each needs its own extra)."""
