# artlib: the README's two commands are `make reproduce` and `make test`.
# Both create .venv when missing and install the project into it (pinned torch/torchvision from pyproject.toml).
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PROFILE ?= reference
JOBS   ?= 1

# Developers and CI have the real subsets at ../shared/data; a fresh clone falls back to ./data (and fetched samples).
ifneq ($(wildcard ../shared/data),)
export ARTLIB_DATA ?= $(abspath ../shared/data)
endif
export MPLBACKEND ?= Agg

ISA_NOTEBOOKS ?= notebooks/03_art_table1_robustness.ipynb notebooks/20_ineq_table1_gini.ipynb \
                 notebooks/27_ineq_class_gini.ipynb
ISA_NOTEBOOKS_DEFAULT ?= notebooks/20_ineq_table1_gini.ipynb

.PHONY: install reproduce paper-check test test-isa unit notebooks clean

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	$(PY) -m ipykernel install --sys-prefix --name python3 >/dev/null
	touch $@

install: $(VENV)/.installed

# Main job: fetch real smoke images when no data root holds them, then execute every notebook of the manifest.
reproduce: install
	$(PY) -m artlib data ensure --profile $(PROFILE)
	$(PY) -m artlib reproduce --profile $(PROFILE) --jobs $(JOBS)

# The paper profile proven before a GPU run: every notebook's paper branch, cut to a few steps (outputs in
# runs/dry-run, not results); records the training requests behind `reproduce --profile paper --plan`.
paper-check: install
	$(PY) -m artlib reproduce --profile paper --dry-run

# Whole test suite: unit tests, then every notebook re-executed (smoke profile: the zoo's models on few images) and
# its checked cell compared by nbval; the smoke figures go to runs/test-figures, not over the committed figures/.
test: install
	$(PY) -m pytest tests -q
	ARTLIB_FIGURES=$(abspath runs/test-figures) $(PY) -m pytest --nbval-lax --nbval-current-env notebooks -q -p no:cacheprovider

# The checked outputs must not depend on the CPU's instruction set: a few notebooks again under forced AVX2 kernels.
test-isa: install
	ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2 ARTLIB_FIGURES=$(abspath runs/test-figures-avx2) \
	  $(PY) -m pytest --nbval-lax --nbval-current-env -q -p no:cacheprovider $(ISA_NOTEBOOKS)
	ATEN_CPU_CAPABILITY=default ARTLIB_FIGURES=$(abspath runs/test-figures-default) \
	  $(PY) -m pytest --nbval-lax --nbval-current-env -q -p no:cacheprovider $(ISA_NOTEBOOKS_DEFAULT)

clean:
	rm -rf runs .pytest_cache
