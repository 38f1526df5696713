# The two commands a new user needs (both install what is missing first):
#   make run    build and run the host with its embedded default config
#   make test   build and run every test (Rust unit/integration tests, lints, end-to-end tests
#               with the real Moonlight client library)
CARGO ?= cargo
ARGS ?=

.PHONY: run test build lint e2e

run:
	./scripts/setup.sh
	$(CARGO) run --release --bin hati -- serve $(ARGS)

build:
	$(CARGO) build --workspace --all-targets

test:
	./scripts/setup.sh --test
	./scripts/test.sh

# Installable forms (docs/install.md): the container image hati:<version>, built from Debian
# packages only, and the Debian package hati_<version>_<arch>.deb with its systemd unit.
.PHONY: image deb
image:
	./scripts/setup.sh --package
	./scripts/image.sh image

deb:
	./scripts/setup.sh --package
	./scripts/deb.sh
