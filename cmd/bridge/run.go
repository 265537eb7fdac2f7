package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/intercom-bridge/bridge/bridge"
	"github.com/intercom-bridge/bridge/bridge/config"
	"github.com/intercom-bridge/bridge/internal/heapfloor"
)

// heapFloor is how much the heap of a bridge that keeps little alive may
// grow between collections (see heapfloor): 14–24 MB more resident memory
// under load for 3–18 % less CPU per event (BENCHMARKS.md, (l) run 6).
const heapFloor = 32 << 20

// runRun runs the service until SIGINT or SIGTERM; SIGHUP reloads the
// rules.
func runRun(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("run", "-config FILE", stderr)
	configPath := fs.String("config", "config.yaml", "configuration `file`")
	if code, ok := parseFlags(fs, args, stdout); !ok {
		return code
	}
	defer heapfloor.Start(heapFloor)()
	// SIGHUP is taken from the start, watching or not: its default action
	// would end the process.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	reload := make(chan struct{}, 1)
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
				select {
				case reload <- struct{}{}:
				default: // one is already waiting
				}
			}
		}
	}()
	cfg, err := config.Load(*configPath)
	if err != nil {
		printErrors(stderr, err)
		return 1
	}
	log := bridge.NewLogger(cfg.Log, stderr)
	log.Info().Str("version", versionString()).Str("config", *configPath).Msg("starting")
	svc, err := bridge.Start(ctx, cfg, log, bridge.Options{Version: versionString(), Reload: reload})
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
