# Two commands: `make run` and `make test`. Both create the virtualenv and install first.
PYTHON ?= python3
VENV := .venv
STAMP := $(VENV)/.installed-stamp

.PHONY: run test install migrate seed lint bench clean

$(STAMP): requirements.txt requirements-dev.txt pyproject.toml
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --upgrade pip
	$(VENV)/bin/python -m pip install --quiet -r requirements-dev.txt
	touch $(STAMP)

install: $(STAMP)

run: install
	./scripts/run.sh

test: install
	./scripts/test.sh

migrate: install
	$(VENV)/bin/python manage.py migrate --noinput

seed: migrate
	$(VENV)/bin/python manage.py seed_demo

lint: install
	$(VENV)/bin/ruff check .

bench: install
	./scripts/bench.sh

clean:
	rm -rf var staticfiles
