# Temporary: the infrastructure owner replaces this file.
VENV ?= .venv
PY := $(VENV)/bin/python
COLL := build/collections
units:
	PYTHONPATH=$(COLL) $(PY) -m pytest -q --import-mode=importlib tests/unit
