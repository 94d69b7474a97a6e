# Two commands for a new user:  `make chat` (install, index the bundled corpus, open the chat)
# and `make test` (install, run the whole test suite). Everything goes into .venv/.
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(BIN)/pip install -q torch==2.13.0   # the CPU build; an unpinned torch pulls CUDA
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

.PHONY: install chat test
install: $(STAMP)

chat: $(STAMP)
	$(BIN)/atlas-assistant index
	$(BIN)/atlas-assistant serve

# The browser tests drive /usr/bin/chromium: install it on a fresh Debian/Ubuntu machine (as root,
# or through passwordless sudo); without it those tests are skipped with a message.
test: $(STAMP)
	@test -x /usr/bin/chromium || ! command -v apt-get >/dev/null || \
		( S=$$(test "$$(id -u)" = 0 || echo sudo -n); $$S apt-get update -qq && \
		  $$S env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium ) || \
		echo "could not install chromium: the browser tests will be skipped"
	$(BIN)/pytest
