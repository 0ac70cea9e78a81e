"""The shared kernel: domain values, the job state machine, the clock, the lending rules,
the federation PKI, archives and paths. Broker, agent and CLI all build on it; it imports
nothing of theirs."""
