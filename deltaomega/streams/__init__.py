"""Stream processing: window consumers and store, dead letters, sinks and inference."""
