"""Everything that imports libvirt: connection, domain XML with our metadata, state changes."""
