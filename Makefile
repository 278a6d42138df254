# artlib: the README's two commands are `make reproduce` and `make test`.
# Both create .venv when missing and install the project into it (pinned torch/torchvision from pyproject.toml).
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PROFILE ?= smoke
JOBS   ?= 1

# Developers and CI have the real subsets at ../shared/data; a fresh clone falls back to ./data (and fetched samples).
ifneq ($(wildcard ../shared/data),)
export ARTLIB_DATA ?= $(abspath ../shared/data)
endif
export MPLBACKEND ?= Agg

.PHONY: install reproduce test unit notebooks clean

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	$(PY) -m ipykernel install --sys-prefix --name python3 >/dev/null
	touch $@

install: $(VENV)/.installed

# Main job: fetch real smoke images when no data root holds them, then execute every notebook of the manifest.
reproduce: install
	$(PY) -m artlib data ensure-smoke
	$(PY) -m artlib reproduce --profile $(PROFILE) --jobs $(JOBS)

# Whole test suite: unit tests, then every notebook re-executed and its checked outputs compared by nbval.
test: install
	$(PY) -m pytest tests -q
	$(PY) -m pytest --nbval-lax --nbval-current-env notebooks -q -p no:cacheprovider

clean:
	rm -rf runs .pytest_cache
