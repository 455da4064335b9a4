# `make demo` and `make test` each set everything up from scratch on a fresh machine.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install test demo bench clean demo-cpjku demo-atst demo-dcase2024

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
	rm -rf exp/demo
	@start=$$(date +%s); \
	$(PY) recipes/dcase2022_task4_baseline/train_sed.py --conf_file confs/dcase2022_task4_baseline/demo.yaml --log_dir exp/demo --gpus 0 || exit $$?; \
	$(PY) -m desed_task.utils.run_summary exp/demo --seconds $$(( $$(date +%s) - start )) --prefix "make demo (dataset generation included):"

# CP-JKU DCASE23 Task 1 on the generated mini TAU22: distillation training, then a short QAT (int8).
demo-cpjku: install
	rm -rf exp/demo_cpjku
	$(PY) recipes/cpjku_dcase23/run_training.py --conf_file confs/cpjku_dcase23/demo.yaml --log_dir exp/demo_cpjku/training --gpus 0
	$(PY) recipes/cpjku_dcase23/run_qat.py --conf_file confs/cpjku_dcase23/demo_qat.yaml --checkpoint exp/demo_cpjku/training/last.ckpt --log_dir exp/demo_cpjku/qat --gpus 0

# ATST-SED on the mini DESED: stage 1 (frozen small ATST), then stage 2 from stage 1's best checkpoint with the
# stage-2 settings of confs/atst_sed/stage2.yaml (const_max 70, fixed EMA, every ATST group trained, cosine decay).
demo-atst: install
	rm -rf exp/demo_atst
	$(PY) recipes/atst_sed/train_stage1.py --conf_file confs/atst_sed/demo.yaml --log_dir exp/demo_atst/stage1 --gpus 0
	$(PY) recipes/atst_sed/train_stage2.py --conf_file confs/atst_sed/demo.yaml --log_dir exp/demo_atst/stage2 --gpus 0 \
		--set init.model_init=$$(ls exp/demo_atst/stage1/epoch=*.ckpt | head -n 1) training.const_max=70 \
		opt.cnn_lr=0.001 opt.rnn_lr=0.002 opt.tfm_lr=0.001 opt.tfm_trainable_layers=4 training.n_epochs_warmup=1

# DCASE 2024 baseline on the mini DESED (with a strong real set) + mini MAESTRO, with a small random BEATs (e2e).
demo-dcase2024: install
	rm -rf exp/demo_dcase2024
	$(PY) recipes/dcase2024_task4_baseline/train_sed.py --conf_file confs/dcase2024_task4_baseline/demo.yaml \
		--log_dir exp/demo_dcase2024 --gpus 0 --random_beats

bench: install
	$(PY) benchmarks/train_throughput.py
	$(PY) benchmarks/eval_speed.py

clean:
	rm -rf $(VENV) exp

# The late-fusion baseline without downloads: a small random PANNs stands in for the pretrained one (proves the
# pipeline, not the scores).
.PHONY: demo-pretrained
demo-pretrained: install
	rm -rf exp/demo_pretrained
	$(PY) recipes/dcase2022_task4_baseline/demo_pretrained.py

.PHONY: demo-uclser
demo-uclser: install
	rm -rf exp/demo_uclser
	$(PY) recipes/uclser20/demo.py --log_dir exp/demo_uclser
