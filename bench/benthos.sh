#!/bin/sh
# An -engine for bridge-load compare: the Benthos engine on
# bench/benthos.yaml. CONNECT names the binary: by default benthos on the
# PATH, as bench/benthos-engine builds it; a Redpanda Connect binary
# (redpanda-connect) takes the same arguments and config. exec, so that
# the process compare measures is the engine's.
exec "${CONNECT:-benthos}" run "$(dirname "$0")/benthos.yaml"
