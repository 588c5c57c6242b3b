"""Multi-agent coordination: routing, load slots, circuit breakers, fan-out and escalation to a person."""
