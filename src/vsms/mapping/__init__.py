"""The only place CIM property names meet model fields (CIMInstance <-> model)."""
