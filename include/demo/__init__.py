"""Demo data (*.json) and the demo services the bundled workflows, tests and benchmarks use."""
