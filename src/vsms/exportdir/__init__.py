"""The export directory format: layout, config.xml, the .exp file, manifest; read and validate."""
