"""CIM providers: one module per class family, thin, on top of operations and the job manager."""
