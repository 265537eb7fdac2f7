package main

import (
	"context"
	"fmt"
	"io"

	"github.com/intercom-bridge/bridge/bridge"
	"github.com/intercom-bridge/bridge/bridge/config"
)

// runRun runs the service until SIGINT or SIGTERM.
func runRun(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("run", "-config FILE", stderr)
	configPath := fs.String("config", "config.yaml", "configuration `file`")
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	cfg, err := config.Load(*configPath)
	if err != nil {
		printErrors(stderr, err)
		return 1
	}
	log := bridge.NewLogger(cfg.Log, stderr)
	log.Info().Str("version", versionString()).Str("config", *configPath).Msg("starting")
	svc, err := bridge.Start(ctx, cfg, log, bridge.Options{Version: versionString()})
	if err != nil {
		log.Error().Err(err).Msg("cannot start")
		fmt.Fprintln(stderr, err)
		return 1
	}
	<-ctx.Done()
	log.Info().Msg("stopping")
	stopCtx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout.D())
	defer cancel()
	if err := svc.Stop(stopCtx); err != nil {
		log.Error().Err(err).Msg("stopped with errors")
		return 1
	}
	log.Info().Msg("stopped")
	return 0
}
