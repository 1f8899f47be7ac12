"""The local stack: every process of cauce on one machine, the servers it starts, health probes."""
