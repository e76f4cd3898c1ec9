# The two commands in the README: `make demo` and `make test`.
VENV := .venv/bin

.PHONY: setup demo test test-fast lint bench soak
setup:
	@bash scripts/setup.sh

demo: setup
	$(VENV)/audio-diffusion demo

test: setup
	$(VENV)/python -m ruff check realtime models export tests scripts
	$(VENV)/python -m pytest -q $(PYTEST_ARGS)

# The unit tests a developer runs all day: no JACK server, no Qt window, no training, no soak (< 60 s).
test-fast: setup
	$(VENV)/python -m ruff check realtime models export tests scripts
	$(VENV)/python -m pytest -q -m "not jack and not gui and not train and not slow" $(PYTEST_ARGS)

bench: setup
	$(VENV)/audio-diffusion bench --quick

soak: setup
	$(VENV)/audio-diffusion soak --seconds 600
