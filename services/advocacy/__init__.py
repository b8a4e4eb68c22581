"""The advocacy service."""
