"""The embedded Maestrano platform: a sandbox for development, demos and tests."""
