"""The control plane: Faust agents, tables and timers for low-volume, stateful work
(parameter expiry now; orchestration and alert dispatch next)."""
