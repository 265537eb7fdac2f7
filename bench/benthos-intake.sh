#!/bin/sh
# An -engine for bridge-load compare -intake: the Benthos engine on
# bench/benthos-intake.yaml (see bench/benthos.sh for CONNECT).
exec "${CONNECT:-benthos}" run "$(dirname "$0")/benthos-intake.yaml"
