"""SQLite (WAL) for what libvirt does not hold: jobs, undo journals, consumed imports."""
