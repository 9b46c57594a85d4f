# The Python module (messenger-py, docs/PYTHON.md): `make test-python`.
#
# Builds the abi3 wheel once, through the same PEP 517 path as `pip install ./messenger-py`
# (maturin as the backend), then: installs it in a venv of the default python3 (.venv) with
# pytest and mypy from PyPI, checks the hand-written stub (mypy.stubtest) and the typing of the
# package and the tests (mypy --strict), runs the tests, and runs a smoke test with the same
# wheel on the oldest and newest CPython we support (pyenv's 3.9 and 3.13).
#
# The wheel is a debug build (PY_PROFILE=dev): it reuses what `make build` compiled, so the
# stage costs seconds rather than a release build of tokio and the core; the tests check
# behaviour, not speed. `PY_PROFILE=release make test-python` tests an optimised wheel.

PYTHON ?= python3
PY_PROFILE ?= dev
PY_VENV := .venv
PY := $(CURDIR)/$(PY_VENV)/bin/python
PY_WHEELS := target/python-wheels
PYENV_ROOT ?= $(HOME)/.pyenv
PY_SMOKE_VERSIONS ?= 3.9.18 3.13.0
PY_TOOLS := "maturin>=1.9.4,<2" "pytest>=8" "mypy>=1.11"

.PHONY: test-python python-wheel

EXTRA_TESTS += test-python

# The wheel, built once: maturin from the venv (no isolated build env to download again).
python-wheel:
	test -x $(PY) || $(PYTHON) -m venv $(PY_VENV)
	$(PY) -m pip install -q --disable-pip-version-check $(PY_TOOLS)
	rm -rf $(PY_WHEELS)
	PATH="$(CURDIR)/$(PY_VENV)/bin:$$PATH" MATURIN_PEP517_ARGS="--profile $(PY_PROFILE) --locked" \
		$(PY) -m pip wheel -q --disable-pip-version-check --no-build-isolation --no-deps \
		-w $(PY_WHEELS) ./messenger-py

test-python: python-wheel
	$(PY) -m pip install -q --disable-pip-version-check --force-reinstall --no-deps $(PY_WHEELS)/*.whl
	cd messenger-py && $(PY) -m mypy.stubtest messenger._messenger
	cd messenger-py && $(PY) -m mypy --strict -p messenger && $(PY) -m mypy --strict tests
	cd messenger-py && $(PY) -m pytest tests -q --durations=10
	set -e; for v in $(PY_SMOKE_VERSIONS); do \
		interpreter="$(PYENV_ROOT)/versions/$$v/bin/python"; \
		test -x "$$interpreter" || { echo "CPython $$v not found at $$interpreter (pyenv install $$v)"; exit 1; }; \
		"$$interpreter" -m venv --clear target/python-smoke-$$v; \
		target/python-smoke-$$v/bin/python -m pip install -q --disable-pip-version-check --no-deps $(PY_WHEELS)/*.whl; \
		(cd messenger-py/tests && $(CURDIR)/target/python-smoke-$$v/bin/python smoke.py); \
	done
