# Mimic — the two quick-start commands are `make run` and `make test`.
.PHONY: run test bench serve dist dist-onefile

run:            ## set up .venv and launch the app
	bash scripts/setup.sh app
	.venv/bin/python -m app $(ARGS)

test:           ## set up .venv (+ system packages) and run every test
	bash scripts/setup.sh test
	QT_QPA_PLATFORM=offscreen .venv/bin/python -m pytest $(PYTEST_ARGS)

bench:          ## per-stage speed of every runtime on this machine
	bash scripts/setup.sh app
	.venv/bin/python -m app bench $(ARGS)

serve:          ## the reenactor as a WebRTC server (browser page at /), e.g. ARGS="--target portrait.png"
	bash scripts/setup.sh app
	.venv/bin/python -m app serve $(ARGS)

dist:           ## standalone one-folder app under dist/mimic, then its smoke test
	bash scripts/setup.sh dist
	.venv/bin/pyinstaller --noconfirm --clean build_spec/mimic.spec
	bash build_spec/smoke_test.sh dist/mimic

dist-onefile:   ## standalone single executable dist/mimic-onefile, then its smoke test
	bash scripts/setup.sh dist
	MIMIC_ONEFILE=1 .venv/bin/pyinstaller --noconfirm --clean build_spec/mimic.spec
	bash build_spec/smoke_test.sh dist/mimic-onefile
