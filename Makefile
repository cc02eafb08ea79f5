# si4tool: the README's commands. Everything sets itself up on first use.
#
#   make firmware-assets   venv, install, train, quantize, render C assets
#   make test              venv, install dev deps, run the test suite
#   make validate-host     compile the engine for this machine, compare with TFLM/LiteRT/Keras
#   make validate-qemu     build for Cortex-M4, run under QEMU, report instructions/RAM/flash
#   make bench             side-by-side figures against LiteRT and TFLite Micro, every model on the M4
#   make fuzz              the differential fuzzer for longer (FUZZ_EXAMPLES random graphs vs TFLM)

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
SI4    := $(BIN)/si4tool
ASSETS ?= build/firmware_assets

# Offline MNIST: the shared copy beside the repository, unless SI4_MNIST is set.
SHARED_MNIST := $(abspath ../shared/data/mnist.npz)
ifeq ($(SI4_MNIST),)
ifneq ($(wildcard $(SHARED_MNIST)),)
export SI4_MNIST := $(SHARED_MNIST)
endif
endif

APT_PACKAGES := gcc-arm-none-eabi libnewlib-arm-none-eabi qemu-system-arm valgrind

.PHONY: venv firmware-assets test fuzz validate-host validate-qemu bench report docs toolchain clean distclean

venv: $(VENV)/.installed

# constraints.txt pins the versions the figures and "bit-exact" were measured with.
$(VENV)/.installed: pyproject.toml constraints.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev]'
	@touch $@

firmware-assets: venv
	$(SI4) build-firmware-assets --out $(ASSETS)

$(ASSETS)/manifest.json:
	$(MAKE) firmware-assets

validate-host: venv $(ASSETS)/manifest.json
	$(SI4) validate-host --assets $(ASSETS)

validate-qemu: venv toolchain $(ASSETS)/manifest.json
	$(SI4) validate-qemu --assets $(ASSETS)

# The seed model side by side with LiteRT and TFLite Micro, then every model (seed and the MLPerf
# Tiny models of ../shared) on the emulated Cortex-M4.
bench: venv toolchain $(ASSETS)/manifest.json
	$(SI4) bench --assets $(ASSETS)
	$(SI4) bench-models --assets $(ASSETS)

report: venv $(ASSETS)/manifest.json
	$(SI4) report --assets $(ASSETS)

# The Cortex-M cross compiler, QEMU and valgrind, and Fashion-MNIST's IDX files
# (for --dataset fashion-mnist offline): installed when missing and we are root
# (as on CI), otherwise we say what to install.
toolchain:
	@missing=""; \
	command -v arm-none-eabi-gcc >/dev/null || missing="$$missing gcc-arm-none-eabi libnewlib-arm-none-eabi"; \
	command -v qemu-system-arm >/dev/null || missing="$$missing qemu-system-arm"; \
	command -v valgrind >/dev/null || missing="$$missing valgrind"; \
	[ -d /usr/share/datasets/fashion-mnist ] || missing="$$missing dataset-fashion-mnist"; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "installing:$$missing"; \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null) \
	      || echo "warning: apt-get could not install$$missing; Cortex-M and Fashion-MNIST tests will be skipped"; \
	  else \
	    echo "missing:$$missing. Install with: sudo apt-get install$$missing (Cortex-M and Fashion-MNIST tests are skipped without them)"; \
	  fi; \
	fi

# Both cores (pytest-xdist): the session fixtures that train or build are made once for
# all workers (tests/conftest.py: file lock, cache under build/test-cache keyed by the code).
PYTEST_WORKERS ?= auto
test: venv toolchain
	$(BIN)/python -m pytest -q -n $(PYTEST_WORKERS) --dist loadscope --durations=20

# tests/test_fuzz.py with many random graphs (make test runs a small fixed set); hypothesis
# keeps what it found in build/hypothesis-fuzz, counts go to build/fuzz_stats.json.
FUZZ_EXAMPLES ?= 500
fuzz: venv
	SI4_FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) SI4_FUZZ_RANDOM=1 $(BIN)/python -m pytest -q -p no:cacheprovider \
	  tests/test_fuzz.py -k random_graphs
	@cat build/fuzz_stats.json

# docs/cli.md is generated from the Typer app (a test checks it is current).
docs: venv
	$(BIN)/python tools/cli_reference.py

clean:
	rm -rf build

distclean: clean
	rm -rf $(VENV) *.egg-info
