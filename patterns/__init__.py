"""Rule files shipped with vertebro (see manifest.toml)."""
