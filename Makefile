# claimctl: the everyday commands. CI runs `make test` through .ci/run.
GO ?= go

.PHONY: build test test-short demo vet fmt-check fuzz clean

build:
	$(GO) build -o bin/ . ./claimctl-server

# The test command (README): every test, against real etcd, with the race detector.
test:
	$(GO) test -race -count=1 -timeout 20m ./...

# Quicker local iteration: skips the slow fault scenarios.
test-short:
	$(GO) test -race -short -count=1 ./...

demo:
	./scripts/demo.sh

vet:
	$(GO) vet ./...

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

# Each fuzz target for a fixed count of executions (see scripts/fuzz.sh).
fuzz:
	./scripts/fuzz.sh 100000x

clean:
	rm -rf bin dist
