# Two commands for a new user:  `make chat` (install, index the bundled corpus, open the chat)
# and `make test` (install, run the whole test suite); `make lint` runs ruff and mypy. Everything goes into .venv/.
# Quiet by default: pip and apt write to $(LOG), each step prints one line (the log's tail when it
# fails). `make test V=1` shows everything; `make test-fast` runs the fast layer (pytest -m "not slow").
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
LOG := $(VENV)/install.log
V ?= 0

# torch comes first and pinned, because the package's torch range would otherwise pull the newest.
# Where the wheel comes from: TORCH_INDEX empty (the default) installs torch==$(TORCH_VERSION) from pip's
# configured sources. On an ordinary Linux x86_64 machine that is PyPI, whose torch is the CUDA build
# and downloads several GB of nvidia-* packages; for the ~200 MB CPU-only build use PyTorch's index:
#   make test TORCH_INDEX=https://download.pytorch.org/whl/cpu
# (macOS and Windows wheels on PyPI are CPU-only already.)
TORCH_VERSION ?= 2.13.0
TORCH_INDEX ?=
TORCH_SOURCE := $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX),)

# $(call step,what,command): run a command into the log, then one line: "what: ok (N s)"; on failure
# the last lines of the log and a non-zero exit.
define step
	@start=$$(date +%s); \
	if [ "$(V)" = 1 ]; then ( $(2) ); else ( $(2) ) >>$(LOG) 2>&1; fi \
	  && echo "$(1): ok ($$(( $$(date +%s) - start )) s)" \
	  || { echo "$(1): FAILED (last lines of $(LOG); make V=1 shows everything)"; tail -n 30 $(LOG); exit 1; }
endef

$(STAMP): pyproject.toml
	@mkdir -p $(VENV) && : > $(LOG)
	$(call step,venv $(VENV),python3 -m venv $(VENV))
	$(call step,torch $(TORCH_VERSION)$(if $(TORCH_INDEX), from $(TORCH_INDEX),),$(BIN)/pip install torch==$(TORCH_VERSION) $(TORCH_SOURCE))
	$(call step,atlas-assistant and test tools,$(BIN)/pip install -e '.[dev]')
	@touch $(STAMP)

.PHONY: install chat test test-fast lint chromium
install: $(STAMP)

chat: $(STAMP)
	$(BIN)/atlas-assistant index
	$(BIN)/atlas-assistant serve

# The browser tests drive /usr/bin/chromium: install it on a fresh Debian/Ubuntu machine (as root,
# or through passwordless sudo); without it those tests are skipped with a message.
chromium:
	@if [ -x /usr/bin/chromium ]; then echo "chromium: present"; \
	elif ! command -v apt-get >/dev/null; then echo "chromium: no apt-get here; the browser tests will be skipped"; \
	else S=$$(test "$$(id -u)" = 0 || echo sudo -n); \
	  if ( $$S apt-get update -qq && $$S env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium ) >>$(LOG) 2>&1; \
	  then echo "chromium: installed"; \
	  else echo "chromium: could not install it (see $(LOG)); the browser tests will be skipped"; fi; \
	fi

PYTEST_QUIET := $(if $(filter 1,$(V)),,-q --disable-warnings)

test: $(STAMP) chromium
	$(if $(filter 1,$(V)),,@)$(BIN)/pytest $(PYTEST_QUIET) $(PYTEST_ARGS)

# ruff (pycodestyle + pyflakes) over the code, tests and benches; mypy over assistant/ (pyproject.toml).
lint: $(STAMP)
	$(if $(filter 1,$(V)),,@)$(BIN)/ruff check $(if $(filter 1,$(V)),,-q) assistant tests bench && echo "ruff: ok"
	$(if $(filter 1,$(V)),,@)$(BIN)/mypy $(if $(filter 1,$(V)),,--no-error-summary) && echo "mypy: ok"

test-fast: $(STAMP)
	$(if $(filter 1,$(V)),,@)$(BIN)/pytest $(PYTEST_QUIET) -m "not slow" $(PYTEST_ARGS)
