"""Agent runtime: skills, the common-ai LLM call, the offline model. Imported only at run time."""
