"""The local data server and the viewer ↔ Python event bridge (SPEC §3, §4)."""
