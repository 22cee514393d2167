"""Drop-in replacements for hand-written ``fcntl.flock`` modules: one module per legacy API, each with
the legacy names, signatures, messages and files on disk, and none of its races (see each module's
"Differences" section)."""
