# Model Factory: `make run` serves the demo, `make test` runs the test suite.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(CURDIR)/$(VENV)/bin
export PATH := $(BIN):$(PATH)
# MLflow in a venv of its own (it pins its own versions of the web stack): the tests start its tracking
# server and read what it writes; benchmarks/realtime.py serves with it.
MLFLOW_VENV := .venv-mlflow
export MF_TEST_MLFLOW_PYTHON ?= $(CURDIR)/$(MLFLOW_VENV)/bin/python

.PHONY: mlflow-venv run test test-e2e lint format migrate demo worker clean drills

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e .
	@touch $@

$(VENV)/.installed-dev: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[dev,spark]'
	@touch $@ $(VENV)/.installed

$(MLFLOW_VENV)/.installed: tests/mlflow/requirements.txt
	$(PYTHON) -m venv $(MLFLOW_VENV)
	$(MLFLOW_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(MLFLOW_VENV)/bin/pip install --quiet -r tests/mlflow/requirements.txt
	@touch $@

mlflow-venv: $(MLFLOW_VENV)/.installed

migrate: $(VENV)/.installed
	$(BIN)/python manage.py migrate --noinput
	$(BIN)/python manage.py collectstatic --noinput --verbosity 0

# The demo's retraining recipe (demo.churn:retrain) runs in load_demo and on the worker; no package may hold
# recipes by default (see the README).
demo run: export MF_RETRAINING_PACKAGES ?= demo
demo: migrate
	$(BIN)/python manage.py load_demo

## Serve the web app (gunicorn), a Celery worker and Celery beat; Ctrl-C stops all three.
# On a laptop, imports from an MLflow tracking server on its default local port are allowed (a server
# elsewhere must list its own in MF_MLFLOW_ALLOWED_HOSTS: see the README).
run: export MF_MLFLOW_ALLOWED_HOSTS ?= 127.0.0.1:5000,localhost:5000
run: demo
	@echo "Model Factory on http://$${MF_BIND:-127.0.0.1:8000} (sign in as one of the demo users above)"
	$(BIN)/honcho start -f Procfile

## Only a worker, e.g. on another machine sharing DATABASE_URL and CELERY_BROKER_URL.
worker: $(VENV)/.installed
	$(BIN)/celery -A config worker --loglevel INFO

test: $(VENV)/.installed-dev $(MLFLOW_VENV)/.installed
	$(BIN)/pytest $(PYTEST_ARGS)

## Restart drills: a private PostgreSQL (port 5440) and Redis (6390) stopped and started under load
## (a few minutes; needs PostgreSQL's server binaries and redis-server). See tests/faults/README.md.
drills: $(VENV)/.installed-dev
	$(BIN)/python tests/faults/drills.py $(DRILLS_ARGS)

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy .
	$(BIN)/lint-imports

format: $(VENV)/.installed-dev
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

clean:
	rm -rf $(VENV) $(MLFLOW_VENV) var
