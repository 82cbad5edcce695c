# make test: installs what the tests need (idempotent) and runs every test.
SHELL := /bin/bash
GO ?= go
FUZZTIME ?= 8s
# Every fuzz target, as package:Target; make test runs each for FUZZTIME.
# Minimizing a new input is capped, so a brief run spends its time fuzzing.
FUZZ_TARGETS := importer:FuzzDecode importer:FuzzSpec tensorio:FuzzReadNpy \
	dataset:FuzzReadCSV dataset:FuzzReadIDX dataset:FuzzLoadPNGDir dataset:FuzzLoad \
	runtime/native:FuzzDecodePrepareRun trainer:FuzzLoadCheckpoint

.PHONY: test deps build fixtures fuzz

test: deps
	$(GO) vet ./...
	$(GO) test -count=1 ./...
	cd deploy && $(GO) test -count=1 ./...
	CGO_ENABLED=0 $(GO) test -count=1 ./graph/... ./importer/... ./runtime/native/... ./tensorio/... ./internal/membudget/... ./internal/safefile/... ./plot/...
	# The race detector over the packages whose workers share a model, a field or a batcher.
	$(GO) test -race -count=1 ./density ./serve
	$(GO) test -race -count=1 -run '^(TestDeterminism|TestDeterminismPlaceDependentScorer|TestBatchIndependent)$$' ./sampler
	GO=$(GO) scripts/fuzz-brief.sh $(FUZZTIME) $(FUZZ_TARGETS)
	@echo "ONNX conformance per backend (the suite above, counts only):"
	@set -o pipefail 2>/dev/null; $(GO) test -count=1 -v -run '^TestConformance$$' ./runtime/native ./runtime/ort | grep -E '^(runtimetest:|ok|FAIL|--- FAIL)'

deps:
	scripts/install-test-deps.sh
	scripts/install-onnxruntime.sh >/dev/null

build:
	$(GO) build -o ebmrun ./cmd/ebmrun

fixtures:
	/usr/bin/python3 testdata/make_fixtures.py
	/usr/bin/python3 testdata/pytorch/make_exports.py
	/usr/bin/python3 testdata/research/make_research.py

# fuzz runs one target long: make fuzz TARGET=dataset:FuzzReadCSV FUZZTIME=1h
fuzz:
	nice $(GO) test -run '^$$' -fuzz "^$${TARGET#*:}$$" -fuzztime $(FUZZTIME) -fuzzminimizetime 50x ./$${TARGET%%:*}
