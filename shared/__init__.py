"""Code every Non-Refoulement Watch service uses, and nothing service-specific."""
