"""Stream processing: Faust app, batched window agents, dead letters and the state sink."""
