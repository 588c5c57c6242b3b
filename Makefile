# The two commands of README.md.
.PHONY: run test
run:  ## Airflow with the bundled workflows at http://localhost:8080 (SQLite, offline model, no keys); MODEL=local: a real one
	BATON_MODEL=$(MODEL) bash scripts/run.sh
test: ## install, ruff, and the whole test suite (unit + DAG integrity + integration)
	bash scripts/test.sh
