# Two commands for a new user:  `make chat` (install, index the bundled corpus, open the chat)
# and `make test` (install, run the whole test suite). Everything goes into .venv/.
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q torch==2.13.0   # the CPU build; an unpinned torch pulls CUDA
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

.PHONY: install chat test
install: $(STAMP)

chat: $(STAMP)
	$(BIN)/atlas-assistant index
	$(BIN)/atlas-assistant ask "Does mitochondrial dysfunction cause ME/CFS?"

test: $(STAMP)
	$(BIN)/pytest
