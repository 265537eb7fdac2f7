#!/bin/sh
# An -engine for bridge-load compare: Redpanda Connect on bench/benthos.yaml.
# CONNECT names the binary (default: redpanda-connect on the PATH; a
# benthos binary takes the same arguments). exec, so that the process
# compare measures is the engine's.
exec "${CONNECT:-redpanda-connect}" run "$(dirname "$0")/benthos.yaml"
