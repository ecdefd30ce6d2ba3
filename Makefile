# Two commands on a fresh machine: `make demo` and `make test`.
# Everything the project needs is installed from here (PyPI only).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
PIP    := $(BIN)/pip install --quiet --disable-pip-version-check -c constraints.txt
STAMP  := $(VENV)/.installed

.PHONY: install demo test lint bench sync serve clean

$(STAMP): pyproject.toml constraints.txt tap-kaiten/pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(PIP) --upgrade pip
	$(PIP) -e '.[test]' -e './tap-kaiten[test]'
	touch $@

install: $(STAMP)

# pytest exits 5 when it collects nothing; that is not a failure of the project.
test: install
	$(BIN)/pytest $(PYTEST_ARGS) || { rc=$$?; [ $$rc -eq 5 ] && echo "pytest: no tests collected" || exit $$rc; }

lint: install
	$(BIN)/ruff check .

clean:
	rm -rf $(VENV) .meltano .local
