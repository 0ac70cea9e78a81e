"""The discrete-event simulator: replay a workload on a federation file, on simulated time,
through the exact policy code (`minga.scheduler.policy.schedule`) and three baselines.

Modules: `federation` (read the TOML file), `make_federation` (write it from the traces),
`workload` (trace reader and synthetic generator), `scenario` (named scenarios: a federation
and job groups in one TOML file), `engine` (the event loop),
`baselines` (fifo, slurm-classic, static), `metrics` (fairness, waits, utilization),
`report` (run every policy, render the table/JSON/CSV/PNG).
"""
