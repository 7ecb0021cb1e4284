# ditto2 — every target installs what it needs on first use (a virtualenv in .venv).
SHELL := /bin/bash
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
# CPU machines get the CPU build of torch that pip finds locally; on a GPU machine the stock wheel
# (CUDA) is used. Override with e.g. `make TORCH="torch==2.5.1" test`.
TORCH ?= $(shell command -v nvidia-smi >/dev/null 2>&1 && echo torch || echo torch==2.13.0)
PRESET ?= tiny
SHARDS ?= data/shards/debian-$(PRESET)
DEMO_SHARDS ?= data/shards/demo-$(PRESET)

.PHONY: install lint test demo shards shards-synth bench-data bench-ito bench bench-paper-speed pretrain export-teacher distill-cm distill-ctm export-students bench-distill clap export-clap tagger clap-judge bench-table3 bench-scale ito clean browser serve test-browser bench-interactive

$(BIN)/.stamp-install: pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q "$(TORCH)"
	$(BIN)/pip install -q -e ".[dev,text,serve]"
	# litdata (streaming shards): without its torchvision requirement, whose wheel would replace a CPU torch
	$(BIN)/pip install -q --no-deps "litdata>=0.2.70,<0.3"
	$(BIN)/pip install -q "boto3>=1.30" filelock requests urllib3
	touch $@

install: $(BIN)/.stamp-install

# Style and import order (ruff, configured in pyproject.toml); `make test` runs it first, so CI does too.
lint: install
	$(BIN)/ruff check src tests examples

# two workers on two cores (tests run one torch thread each); a file's tests stay on one worker (its fixtures once)
test: install lint browser
	$(BIN)/python -m pytest tests -n 2 --dist loadfile --durations=15

# Debian's headless Chromium for the page's browser test (apt-get download + dpkg -x into .browser/, no root);
# where apt cannot fetch it, the browser test is skipped and says why
browser:
	@scripts/fetch-chromium.sh .browser || echo "no headless Chromium (apt-get download failed): tests/serve/test_browser.py will be skipped"

# The interactive page on the committed tiny models: http://127.0.0.1:7860
serve: install
	$(BIN)/ditto2 serve $(ARGS)

# The browser test alone, keeping its screenshot for the README
test-browser: install browser
	DITTO2_SCREENSHOT=docs/serve-page.png $(BIN)/python -m pytest tests/serve/test_browser.py -v

# ITO steps vs adherence per control: validation items pick the interactive preset (K = 8, what fits 1 s on 2 cores,
# and its best step size and Adam betas), other items (test split, seed 1000: other synth melodies and noise) report it
# The page's preset: text's grade is noisier, so it is chosen and checked on 96 items, the others on 32
INTERACTIVE_FIVE := intensity melody structure outpainting inpainting
bench-interactive: install
	$(BIN)/python -m ditto2.bench.interactive --split val --n 32 --ks 8 --lrs 0.04 0.08 0.16 0.24 --decays constant \
		--betas 0.9,0.999 0.5,0.9 --out results/interactive/val-adam --repeats 0 --controls $(INTERACTIVE_FIVE)
	$(BIN)/python -m ditto2.bench.interactive --split val --n 96 --ks 8 --lrs 0.02 0.03 0.04 0.06 --decays constant \
		--betas 0.9,0.999 0.5,0.9 --out results/interactive/val-text96 --repeats 0 --controls text
	$(BIN)/python -m ditto2.bench.interactive --repick results/interactive/val-adam/results.json \
		results/interactive/val-text96/results.json --out results/interactive/val-picks --pick 0.9 --max-k 8 --fill --write-preset
	$(BIN)/python -m ditto2.bench.interactive --split test --n 32 --seed 1000 --out results/interactive/test \
		--preset experiments/serve/interactive.yaml --controls $(INTERACTIVE_FIVE)
	$(BIN)/python -m ditto2.bench.interactive --split test --n 96 --seed 2000 --out results/interactive/test-text96 \
		--preset experiments/serve/interactive.yaml --controls text

# Real-music shards for training: Debian's game-music packages (≈8.7 h), tiny mel preset by default.
shards: install
	$(BIN)/ditto2 shards debian-music --out $(SHARDS) --preset $(PRESET) --workers 2

shards-synth: install
	$(BIN)/ditto2 shards synth --out data/shards/synth-$(PRESET) --preset $(PRESET) --n-tracks 64

# Base model. Resume an interrupted run with `make pretrain ARGS="--ckpt_path last"`.
pretrain: install
	@test -f $(SHARDS)/index.json || $(MAKE) shards PRESET=$(PRESET)
	$(BIN)/ditto2 fit --config experiments/pretrain/$(PRESET).yaml --data.root $(SHARDS) $(ARGS)

# EMA weights of the last pretraining checkpoint -> checkpoints/$(PRESET)/teacher.{safetensors,json}
export-teacher: install
	$(BIN)/ditto2 export lightning_logs/pretrain-$(PRESET)/main/checkpoints/last.ckpt checkpoints/$(PRESET)/teacher

# Students from the teacher bundle (TEACHER=path to override). Resume with ARGS="--ckpt_path last".
TEACHER ?= checkpoints/$(PRESET)/teacher
distill-cm distill-ctm: distill-%: install
	@test -f $(TEACHER).safetensors || { echo "no teacher at $(TEACHER): run 'make pretrain' then 'make export-teacher'"; exit 1; }
	$(BIN)/ditto2 fit --config experiments/distill/$*-$(PRESET).yaml --data.root $(SHARDS) \
		--model.init_args.teacher $(TEACHER) $(ARGS)

export-students: install
	$(BIN)/ditto2 export lightning_logs/distill-cm-$(PRESET)/main/checkpoints/last.ckpt checkpoints/$(PRESET)/cm
	$(BIN)/ditto2 export lightning_logs/distill-ctm-$(PRESET)/main/checkpoints/last.ckpt checkpoints/$(PRESET)/ctm

# In-domain CLAP (mel CNN + frozen MiniLM, InfoNCE on the shards' captions) -> checkpoints/$(PRESET)/clap
clap: install
	@test -f $(SHARDS)/index.json || $(MAKE) shards PRESET=$(PRESET)
	$(BIN)/ditto2 fit --config experiments/clap/$(PRESET).yaml --data.root $(SHARDS) $(ARGS)

export-clap: install
	$(BIN)/ditto2 export lightning_logs/clap-$(PRESET)/main/checkpoints/last.ckpt checkpoints/$(PRESET)/clap

# Graders of text control that no control optimizes: the genre / mood / tempo tagger and the judging CLAP
# (another audio tower, another seed) -> checkpoints/$(PRESET)/{tagger,clap-judge}
tagger: install
	@test -f $(SHARDS)/index.json || $(MAKE) shards PRESET=$(PRESET)
	$(BIN)/ditto2 fit --config experiments/tagger/$(PRESET).yaml --data.root $(SHARDS) $(ARGS)
	$(BIN)/ditto2 export lightning_logs/tagger-$(PRESET)/main/checkpoints/last.ckpt checkpoints/$(PRESET)/tagger

clap-judge: install
	@test -f $(SHARDS)/index.json || $(MAKE) shards PRESET=$(PRESET)
	$(BIN)/ditto2 fit --config experiments/clap/judge-$(PRESET).yaml --data.root $(SHARDS) $(ARGS)
	$(BIN)/ditto2 export lightning_logs/clap-judge-$(PRESET)/main/checkpoints/last.ckpt checkpoints/$(PRESET)/clap-judge

# Table 3 with those graders (tagged, null-tag and U-DITTO-2 rows + real clips) -> results/bench-table3/
bench-table3: install
	$(BIN)/ditto2 bench --config experiments/bench/table3-tiny.yaml
	$(BIN)/ditto2 bench --config experiments/bench/text-uncond-tiny.yaml
	$(BIN)/python -m ditto2.bench.ito --merge results/bench-table3/tagged results/bench-table3/uncond --out results/bench-table3

# The paper preset's training / ITO speed under bf16-mixed and torch.compile -> results/bench-scale/ (a GPU's job)
bench-scale: install
	$(BIN)/python -m ditto2.bench.scale $(ARGS)

# Students vs the teacher's 20-step output on 64 fixed noises -> results/bench-distill/
bench-distill: install
	$(BIN)/python -m ditto2.bench.distill $(ARGS)

# One ITO run: make ito CONTROL=melody ARGS="method=ditto batch=2"
CONTROL ?= intensity
ito: install
	$(BIN)/ditto2 ito --config experiments/ito/$(CONTROL).yaml $(ARGS)

# DITTO vs DITTO-2 per control + the (M, T) sweep -> results/bench-ito/
bench-ito: install
	$(BIN)/python -m ditto2.bench.ito --config experiments/bench/ito-$(PRESET).yaml $(ARGS)

# Paper Tables 1-3 with FAD / CLAP / control metrics -> results/bench-tables/ (MD, CSV, PNG, TensorBoard).
# BENCH=tables-gpu: the full tables incl. the DITTO baseline on one GPU (results/bench-gpu/, 512 held-out clips).
BENCH ?= tables-$(PRESET)
bench: install
	@test -f $(DEMO_SHARDS)/index.json || $(BIN)/python -m ditto2.demo --models checkpoints/$(PRESET) --shards $(DEMO_SHARDS) --shards-only
	@test -f data/shards/eval-512/index.json || $(BIN)/ditto2 shards-subset $(DEMO_SHARDS) data/shards/eval-512 --n 512
	$(BIN)/ditto2 bench --config experiments/bench/$(BENCH).yaml $(ARGS)

# DITTO vs DITTO-2 time and memory at the paper preset's model size (random weights) -> results/bench-paper-speed/
bench-paper-speed: install
	$(BIN)/python -m ditto2.bench.paper_speed $(ARGS)

# Shard-building speed on real music as a multiple of real time -> results/bench-data.json
bench-data: install
	$(BIN)/python -m ditto2.bench.data --preset $(PRESET) --out results/bench-data.json

# The main job: DITTO vs DITTO-2 for every control on held-out real music, with the committed tiny
# models. Writes results/demo/ (index.html, README.md, wavs, plots, TensorBoard logs).
demo: install
	$(BIN)/python -m ditto2.demo --models checkpoints/$(PRESET) --shards $(DEMO_SHARDS) $(ARGS)

clean:
	rm -rf results .pytest_cache
