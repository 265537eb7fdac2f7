package broker

import (
	"context"
	"net"
	"strings"
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"
)

func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// TestEmbeddedListenerRequiresCredentials: with credentials configured, a
// client without them is refused, one with them gets in, and the bridge's
// own in-process connection works.
func TestEmbeddedListenerRequiresCredentials(t *testing.T) {
	cases := []struct {
		name          string
		user, pw, tok string
		good, bad     []nats.Option
	}{
		{"token", "", "", "t0ken-for-the-tools", []nats.Option{nats.Token("t0ken-for-the-tools")}, []nats.Option{nats.Token("wrong")}},
		{"user and password", "bridge", "pa55word-for-tools", "", []nats.Option{nats.UserInfo("bridge", "pa55word-for-tools")}, []nats.Option{nats.UserInfo("bridge", "nope")}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testOptions(t)
			cfg.Listen = freePort(t)
			cfg.User, cfg.Password, cfg.Token = tc.user, tc.pw, tc.tok
			b, err := Open(context.Background(), cfg, zerolog.Nop())
			if err != nil {
				t.Fatal(err)
			}
			defer b.Close()
			if _, err := b.EnsureStream(context.Background(), testEvents); err != nil {
				t.Fatalf("the in-process connection: %v", err)
			}
			url := "nats://" + cfg.Listen
			for _, opts := range [][]nats.Option{nil, tc.bad} {
				if nc, err := nats.Connect(url, opts...); err == nil {
					nc.Close()
					t.Errorf("connected with %d wrong options", len(opts))
				} else if !strings.Contains(strings.ToLower(err.Error()), "authorization") {
					t.Errorf("refused, but not for authorization: %v", err)
				}
			}
			nc, err := nats.Connect(url, tc.good...)
			if err != nil {
				t.Fatalf("with the credentials: %v", err)
			}
			defer nc.Close()
			js, _ := jetstream.New(nc)
			if _, err := js.Publish(context.Background(), "billing.x", []byte(`{}`)); err != nil {
				t.Errorf("publish with the credentials: %v", err)
			}
		})
	}
}

func TestEmbeddedPortBusySaysSo(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	cfg := testOptions(t)
	cfg.Listen = ln.Addr().String()
	b, err := Open(context.Background(), cfg, zerolog.Nop())
	if err == nil {
		b.Close()
		t.Fatal("started on a busy port")
	}
	if !strings.Contains(err.Error(), "address already in use") || !strings.Contains(err.Error(), "nats.listen") {
		t.Errorf("error %q does not say the address is in use", err)
	}
	// The lock is released: the next start works.
	cfg.Listen = ""
	b, err = Open(context.Background(), cfg, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	b.Close()
}

func TestEmbeddedMaxStore(t *testing.T) {
	cfg := testOptions(t)
	cfg.MaxStore = 8 << 20
	b, err := Open(context.Background(), cfg, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if got := b.server.JetStreamConfig().MaxStore; got != 8<<20 {
		t.Errorf("JetStream MaxStore %d, want %d", got, 8<<20)
	}
	if err := b.StoreProblem(); err != nil {
		t.Errorf("store problem while running: %v", err)
	}
}
