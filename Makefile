# Kairos build targets. `make demo` runs the main job on embedded defaults;
# `make test` runs every test (PostgreSQL tests run when KAIROS_TEST_POSTGRES_URL is set).
GO ?= go
BIN := bin/kairos
GOLANGCI_VERSION := v2.15.0
GOLANGCI := $(shell $(GO) env GOPATH)/bin/golangci-lint

.PHONY: build test demo eval bench lint fuzz clean

# The commit and build date `kairos version` prints (buildinfo.commit/date).
LDFLAGS := -X github.com/kairos-fl/kairos/internal/buildinfo.commit=$(shell git rev-parse HEAD 2>/dev/null) \
	-X github.com/kairos-fl/kairos/internal/buildinfo.date=$(shell date -u +%Y-%m-%dT%H:%M:%SZ)

build:
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN) ./cmd/kairos

test:
	$(GO) test -count=1 ./...

demo: build
	./$(BIN) demo

eval: build
	./$(BIN) eval

bench: build
	$(GO) test -run '^$$' -bench . -benchmem ./...
	./$(BIN) bench

$(GOLANGCI):
	$(GO) install github.com/golangci/golangci-lint/v2/cmd/golangci-lint@$(GOLANGCI_VERSION)

lint: $(GOLANGCI)
	$(GO) vet ./...
	$(GOLANGCI) run ./...

clean:
	rm -rf bin
