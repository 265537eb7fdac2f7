package main

import (
	"fmt"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"
)

// setRole makes the bridge's config run role; an intake replica's has no
// Intercom token.
func (b *e2eBridge) setRole(role string) {
	t := b.env.t
	t.Helper()
	src, err := os.ReadFile(b.config)
	if err != nil {
		t.Fatal(err)
	}
	s := "role: " + role + "\n" + string(src)
	if role == "intake" {
		s = strings.Replace(s, fmt.Sprintf("token: %q", b.env.ic.Token()), `token: ""`, 1)
		if strings.Contains(s, b.env.ic.Token()) {
			t.Fatalf("%s: the token is still in the config", b.name)
		}
	}
	if err := os.WriteFile(b.config, []byte(s), 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestE2ERolesSplit: an intake replica, holding no token and running no
// stage, takes signed webhooks while its two delivery replicas run, while
// none runs, and after one comes back; every event is sent once, by the
// delivery replicas only.
func TestE2ERolesSplit(t *testing.T) {
	const n = 300
	e := newE2E(t)
	in := e.newBridge("intake", "info", true)
	in.setRole("intake")
	d1 := e.newBridge("delivery1", "info", true)
	d1.setRole("delivery")
	d2 := e.newBridge("delivery2", "info", true)
	d2.setRole("delivery")
	in.start()
	if rd := in.readyBody(30 * time.Second); rd["role"] != "intake" || rd["rules"] != float64(0) {
		t.Errorf("intake /readyz: %v", rd)
	}
	for _, d := range []*e2eBridge{d1, d2} {
		d.launch()
		if rd := d.readyBody(30 * time.Second); rd["role"] != "delivery" || rd["rules"] != float64(1) {
			t.Errorf("%s /readyz: %v", d.name, rd)
		}
		if dialable(d.httpAddr) {
			t.Errorf("%s listens for webhooks on %s", d.name, d.httpAddr)
		}
	}

	post := func(from, to int) {
		t.Helper()
		for i := from; i < to; i++ {
			if status, body := in.webhook(fmt.Sprintf("msg_%d", i), e2eSecret, time.Now(), eventBody(i)); status != http.StatusAccepted {
				t.Fatalf("webhook %d: %d %s", i, status, body)
			}
		}
	}
	post(0, n/3)
	e.waitFor(60*time.Second, e.progress(n/3), func() bool { return e.allArrived(n / 3) })
	e.settle(60 * time.Second)

	// With no delivery replica, intake goes on: the events wait stored.
	d1.kill()
	d2.kill()
	post(n/3, 2*n/3)
	if got := len(e.ic.Messages()); got != n/3 {
		t.Errorf("%d messages with no delivery replica running, want %d", got, n/3)
	}
	d1.launch()
	d1.readyBody(30 * time.Second)
	post(2*n/3, n)
	e.waitFor(60*time.Second, e.progress(n), func() bool { return e.allArrived(n) })
	e.settle(60 * time.Second)

	lost, dups, unknown := e.tally(n)
	if len(e.ic.Messages()) != n || lost != 0 || dups != 0 || unknown != 0 {
		t.Errorf("%d messages for %d events: lost %d, duplicates %d, unknown %d", len(e.ic.Messages()), n, lost, dups, unknown)
	}
	if sent, err := in.sentMetric(); err != nil || sent != 0 {
		t.Errorf("the intake replica says it sent %d (%v)", sent, err)
	}
	if s, err := d1.sentMetric(); err != nil || s == 0 {
		t.Errorf("delivery1 says it sent %d since its restart (%v)", s, err)
	}
}
