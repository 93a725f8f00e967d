# The two set-up commands of the README, plus helpers. Every target creates the environment if it is missing.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
# Bit-reproducible notebook outputs need one BLAS thread and a fixed hash seed, both when outputs are stored and
# when nbval checks them.
export OPENBLAS_NUM_THREADS := 1
export OMP_NUM_THREADS := 1
export MKL_NUM_THREADS := 1
export PYTHONHASHSEED := 0

.PHONY: env book test outputs bench clean

$(BIN)/activate: requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements.txt
	$(BIN)/pip install --quiet --no-deps -e .
	touch $(BIN)/activate

## env: create .venv (the library, Jupyter Book, the test tools) without building or testing anything
env: $(BIN)/activate

## book: execute every chapter and write the HTML book to _build/html
book: $(BIN)/activate
	$(BIN)/jupyter-book build . --all -W -n --keep-going
	@echo "Open the book: file://$(CURDIR)/_build/html/index.html"

## test: unit tests, notebook guards, offline-build check, and nbval (strict) over every chapter
test: $(BIN)/activate
	$(BIN)/pytest tests book --nbval --nbval-current-env --nbval-sanitize-with tests/nbval_sanitize.cfg \
		-n 2 --dist loadfile

## outputs: re-execute notebooks and store their outputs (NB=book/01-model.ipynb for one chapter)
outputs: $(BIN)/activate
	$(BIN)/python tools/execute_notebooks.py $(NB)

## bench: the spectral-step benchmark, short run (prints a table; see benchmarks/bench_spectral.py --help)
bench: $(BIN)/activate
	$(BIN)/python benchmarks/bench_spectral.py --quick

clean:
	rm -rf _build
