# make test: installs what the tests need (idempotent) and runs every test.
SHELL := /bin/bash
GO ?= go
FUZZTIME ?= 20s

.PHONY: test deps build fixtures

test: deps
	$(GO) vet ./...
	$(GO) test -count=1 ./...
	CGO_ENABLED=0 $(GO) test -count=1 ./graph/... ./importer/... ./runtime/native/... ./tensorio/...
	$(GO) test -run '^$$' -fuzz FuzzDecode -fuzztime $(FUZZTIME) ./importer
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
