"""Asynchronous jobs: Msvm_ConcreteJob / Msvm_StorageJob state machine, persistence, recovery."""
