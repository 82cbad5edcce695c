# make test: installs what the tests need (idempotent) and runs every test.
GO ?= go
FUZZTIME ?= 20s

.PHONY: test deps build fuzz bench fixtures

test: deps
	$(GO) vet ./...
	$(GO) test -count=1 ./...
	CGO_ENABLED=0 $(GO) test -count=1 ./graph/... ./importer/... ./runtime/native/... ./tensorio/...
	$(GO) test -run '^$$' -fuzz FuzzDecode -fuzztime $(FUZZTIME) ./importer

deps:
	scripts/install-test-deps.sh
	scripts/install-onnxruntime.sh >/dev/null

build:
	$(GO) build -o ebmrun ./cmd/ebmrun

fixtures:
	/usr/bin/python3 testdata/make_fixtures.py
