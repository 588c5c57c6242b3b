"""Operating what runs: signals, detectors, incidents, capacity."""
