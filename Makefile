# Set-up and the two README commands. `make demo` installs and runs the main job on the embedded
# EuroSAT subset; `make test` installs and runs the tests. Both work on a fresh machine.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell sha256sum pyproject.toml | cut -c1-12)

.PHONY: install demo quickstart test test-all lint figures figures-quick

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install --upgrade pip
	$(VENV)/bin/pip install torch==2.14.1 torchvision==0.29.1
	$(VENV)/bin/pip install -e '.[dev]'
	rm -f $(VENV)/.installed-* && touch $@

install: $(STAMP)

demo: install
	$(VENV)/bin/satedge demo

quickstart: install
	$(VENV)/bin/satedge fit --config experiments/foundation/quickstart.yaml
	$(VENV)/bin/satedge test --config experiments/foundation/quickstart.yaml --ckpt_path outputs/quickstart/checkpoints/best.ckpt

test: install
	$(PY) -m pytest

test-all: install
	$(PY) -m pytest -m ""

lint: install
	$(VENV)/bin/ruff check .

# Every README figure, one script each (full mode; the codec sweep wants a GPU or a few CPU hours).
FIGURES := fig_orbit fig_rate_accuracy fig_codec_frontier fig_snn_energy fig_fed_time fig_serving fig_serving_load fig_serving_downlink fig_ledger fig_load fig_policy fig_policy_headroom fig_policy_compute fig_leakage fig_snn_cut fig_spike_link_rate fig_fed_privacy fig_fed_secagg
figures: install
	for f in $(FIGURES); do $(PY) scripts/$$f.py --out outputs/figures/$${f#fig_} || exit 1; done

figures-quick: install
	for f in $(FIGURES); do $(PY) scripts/$$f.py --quick --out outputs/figures-quick/$${f#fig_} || exit 1; done
