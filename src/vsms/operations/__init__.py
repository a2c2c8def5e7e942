"""Long operations (define, export, import, ...): prepare without side effects, run, roll back."""
