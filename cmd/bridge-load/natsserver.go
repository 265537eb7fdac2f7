package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

// serveNATS is the hidden subcommand "serve-nats -listen ADDR -store DIR
// [-prof ADDR]": a NATS server with JetStream in a process of its own, the
// external server of a soak or a compare, so that neither the bridge's
// process nor this one's measurements hold its state. -prof serves the
// server's net/http/pprof, for compare -cpuprofile.
func serveNATS(ctx context.Context, args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("bridge-load serve-nats", flag.ContinueOnError)
	fs.SetOutput(stderr)
	listen := fs.String("listen", "127.0.0.1:4222", "host:port to listen on")
	store := fs.String("store", "", "JetStream store `dir`")
	prof := fs.String("prof", "", "serve net/http/pprof on `host:port` (the host must be -listen's)")
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	host, portStr, err := net.SplitHostPort(*listen)
	port, perr := strconv.Atoi(portStr)
	if err != nil || perr != nil || *store == "" {
		fmt.Fprintln(stderr, "bridge-load serve-nats: need -listen host:port and -store dir")
		return 2
	}
	opts := &server.Options{
		Host: host, Port: port, JetStream: true, StoreDir: *store,
		JetStreamMaxStore: 1 << 40, NoSigs: true, NoLog: true,
	}
	if *prof != "" {
		profHost, profPort, err := net.SplitHostPort(*prof)
		if opts.ProfPort, perr = strconv.Atoi(profPort); err != nil || perr != nil || profHost != host {
			fmt.Fprintln(stderr, "bridge-load serve-nats: -prof needs host:port, on -listen's host")
			return 2
		}
	}
	srv, err := server.NewServer(opts)
	if err != nil {
		fmt.Fprintf(stderr, "bridge-load serve-nats: %v\n", err)
		return 1
	}
	go srv.Start()
	if !srv.ReadyForConnections(30 * time.Second) {
		fmt.Fprintln(stderr, "bridge-load serve-nats: not ready after 30 s")
		return 1
	}
	<-ctx.Done()
	srv.Shutdown()
	srv.WaitForShutdown()
	return 0
}

// natsProc is an external NATS server: this command run as serve-nats.
type natsProc struct {
	*child
	url     string
	store   string
	profURL string // its net/http/pprof; "" unless started with prof
}

// startNATS starts an external NATS server storing under dir/nats and
// waits until it takes connections. With prof the server also serves its
// net/http/pprof, at profURL.
func startNATS(ctx context.Context, dir string, prof bool) (*natsProc, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("external NATS: %w", err)
	}
	addr, err := freePort()
	if err != nil {
		return nil, err
	}
	store := filepath.Join(dir, "nats")
	args := []string{"serve-nats", "-listen", addr, "-store", store}
	profURL := ""
	if prof {
		profAddr, err := freePort()
		if err != nil {
			return nil, err
		}
		args, profURL = append(args, "-prof", profAddr), "http://"+profAddr
	}
	ch, err := startChild("the NATS server", exe, args, nil, filepath.Join(dir, "nats.log"))
	if err != nil {
		return nil, err
	}
	n := &natsProc{child: ch, url: "nats://" + addr, store: store, profURL: profURL}
	for deadline := time.Now().Add(30 * time.Second); ; {
		nc, err := nats.Connect(n.url, nats.Name("bridge-load probe"))
		if err == nil {
			nc.Close()
			return n, nil
		}
		select {
		case <-n.exited:
			return nil, fmt.Errorf("the NATS server exited at start: %v\n%s", n.exitErr, n.logTail(20))
		case <-ctx.Done():
			n.stop()
			return nil, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			n.stop()
			return nil, fmt.Errorf("the NATS server took no connection within 30 s: %w", err)
		}
	}
}
