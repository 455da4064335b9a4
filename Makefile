# `make demo` and `make test` each set everything up from scratch on a fresh machine.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install test demo bench clean

$(STAMP): setup.py requirements.txt
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e ".[test]"
	touch $(STAMP)

install: $(STAMP)

test: install
	$(PY) -m pytest -q tests

demo: install
	@start=$$(date +%s); \
	$(PY) recipes/dcase2022_task4_baseline/train_sed.py --conf_file confs/dcase2022_task4_baseline/demo.yaml --log_dir exp/demo --gpus 0 || exit $$?; \
	$(PY) -m desed_task.utils.run_summary exp/demo --seconds $$(( $$(date +%s) - start )) --prefix "make demo (dataset generation included):"

bench: install
	$(PY) benchmarks/train_throughput.py
	$(PY) benchmarks/eval_speed.py

clean:
	rm -rf $(VENV) exp
