# slotscaler — run `make help` for the targets.
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w -X main.version=$(VERSION)
GO      ?= go
GOBIN   ?= $(shell $(GO) env GOPATH)/bin
STATICCHECK_VERSION := v0.8.2

.PHONY: help setup build images test sim fuzz bench lint check-deps demo clean

help: ## list targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

setup: ## install haproxy, gcc, prometheus, nginx, systemd-analyze, docker-compose when missing; start dockerd when no engine answers
	@bash scripts/setup.sh

build: ## build bin/slotscaler and bin/lbctl
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/slotscaler .
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/lbctl ./lbctl

images: build ## docker images slotscaler:local (from bin/slotscaler) and slotscaler-echo:demo
	docker build -t slotscaler:local .
	$(GO) run ./examples/demo --build-only

test: setup ## all tests with -race (real haproxy and Docker included), plus short fuzz runs
	$(GO) test -race -count=1 -timeout 20m ./...
	$(MAKE) fuzz FUZZTIME=10000x # a count, not a duration: Go 1.26's fuzz coordinator can fail a run at a -fuzztime deadline (go.dev/issue/75804)

SEEDS ?= 2000
SEED  ?=
sim: ## the deterministic simulator: SEEDS random worlds (2000) and the scenarios; SEED=N replays one with its whole trail
	@if [ -n "$(SEED)" ]; then \
		$(GO) test -count=1 -v -run '^TestSim$$' ./internal/sim -sim.seed=$(SEED) -sim.log=$(CURDIR)/sim-$(SEED).log; \
	else \
		$(GO) test -count=1 -v -timeout 60m -run '^(TestSim|TestScenario.*|TestReplayIsExact)$$' ./internal/sim -sim.seeds=$(SEEDS); \
	fi

FUZZTIME ?= 60s
fuzz: ## fuzz the stats, servers-state, info and config parsers, render and the HTTP API (FUZZTIME each)
	$(GO) test ./runtimeapi -run '^$$' -fuzz '^FuzzParseStats$$' -fuzztime $(FUZZTIME)
	$(GO) test ./runtimeapi -run '^$$' -fuzz '^FuzzParseServersState$$' -fuzztime $(FUZZTIME)
	$(GO) test ./runtimeapi -run '^$$' -fuzz '^FuzzParseInfo$$' -fuzztime $(FUZZTIME)
	$(GO) test ./scaler/config -run '^$$' -fuzz '^FuzzParse$$' -fuzztime $(FUZZTIME)
	$(GO) test ./templates -run '^$$' -fuzz '^FuzzRender$$' -fuzztime $(FUZZTIME)
	$(GO) test ./scaler/api -run '^$$' -fuzz '^FuzzAPI$$' -fuzztime $(FUZZTIME)

bench: setup build ## stats read, batched commands, tick vs bare read, RSS, membership churn table, reaction time, cold start from zero
	$(GO) test -run '^$$' -bench . -benchmem -benchtime 20x ./runtimeapi
	$(GO) test -run '^$$' -bench '^BenchmarkTick$$' -benchtime 20x ./internal/bench
	SLOTSCALER_BIN=$(CURDIR)/bin/slotscaler $(GO) test -run '^$$' -bench 'RunRSS|MembershipChurn' -benchtime 1x -timeout 20m ./internal/bench
	$(GO) test -run '^$$' -bench ReactionTime -benchtime 1x ./e2e
	$(GO) test -run '^$$' -bench ColdStart -benchtime 1x ./e2e

lint: ## go vet, gofmt and staticcheck
	$(GO) vet ./...
	@out=$$(gofmt -l $$(git ls-files -co --exclude-standard '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	@test -x $(GOBIN)/staticcheck || $(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)
	$(GOBIN)/staticcheck ./...

check-deps: ## prove that the core (scaler, scaler/config) never imports an adapter: Docker, Prometheus, client-native or runtimeapi
	@bad=$$($(GO) list -deps ./scaler ./scaler/config | grep -E 'haproxytech/client-native|docker/docker|prometheus/client_golang|^github\.com/slotscaler/slotscaler/runtimeapi(/|$$)' || true); \
	if [ -n "$$bad" ]; then echo "scaler depends on adapters:"; echo "$$bad"; exit 1; fi; echo "check-deps: ok"

demo: setup build ## HAProxy + slotscaler + Docker + a load step on loopback: watch 1 -> N -> 1
	$(GO) run ./examples/demo

clean: ## remove build output
	rm -rf bin
