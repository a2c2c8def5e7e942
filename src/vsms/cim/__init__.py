"""The CIM vocabulary: class names, wire enums, object paths and embedded instances."""
