package main

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/intercom-bridge/bridge/intercom"
	"github.com/intercom-bridge/bridge/internal/poll"
	"github.com/intercom-bridge/bridge/internal/syncbuf"
)

// waitForOutput waits for re to match what the fake printed and returns the
// match.
func waitForOutput(t *testing.T, out *syncbuf.Buffer, re *regexp.Regexp) []string {
	t.Helper()
	var m []string
	if !poll.Until(10*time.Second, func() bool { m = re.FindStringSubmatch(out.String()); return m != nil }) {
		t.Fatalf("no %s in output:\n%s", re, out)
	}
	return m
}

func TestFakeIntercomCommand(t *testing.T) {
	contacts := filepath.Join(t.TempDir(), "contacts.yaml")
	if err := os.WriteFile(contacts, []byte("- {id: 6762f2391bb69f9f2193bc19, role: user, external_id: ada, email: ada@example.com}\n- {role: lead, email: grace@example.com}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var out, errOut syncbuf.Buffer
	done := make(chan int)
	go func() {
		done <- runFakeIntercom(ctx, []string{"-listen", "127.0.0.1:0", "-admin", "7,8", "-contacts", contacts, "-permissive=false"}, &out, &errOut)
	}()
	m := waitForOutput(t, &out, regexp.MustCompile(`intercom.base_url: (\S+)\n  intercom.token:    (\S+)`))
	waitForOutput(t, &out, regexp.MustCompile(`contact: +user 6762f2391bb69f9f2193bc19 external_id=ada email=ada@example.com\n  contact: +lead [0-9a-f]{24} email=grace@example.com\n`))
	client, err := intercom.New(intercom.Config{BaseURL: m[1], Token: m[2]})
	if err != nil {
		t.Fatal(err)
	}
	defer client.CloseIdleConnections()
	found, err := client.SearchContacts(ctx, "external_id", "ada")
	if err != nil || len(found) != 1 || found[0].ID != "6762f2391bb69f9f2193bc19" {
		t.Fatalf("SearchContacts = %+v, %v", found, err)
	}
	if found, err := client.SearchContacts(ctx, "email", "nobody@example.com"); err != nil || len(found) != 0 {
		t.Errorf("search without -permissive created %+v (%v)", found, err)
	}
	if _, err := client.CreateMessage(ctx, intercom.Message{MessageType: "email", Subject: "Hi", Body: "<p>Hello</p>",
		From: intercom.From{Type: "admin", ID: "8"}, To: []intercom.Recipient{found[0].Recipient()}}); err != nil {
		t.Fatal(err)
	}
	_, err = client.CreateMessage(ctx, intercom.Message{MessageType: "inapp", Body: "x",
		From: intercom.From{Type: "admin", ID: "9"}, To: []intercom.Recipient{found[0].Recipient()}})
	if err == nil {
		t.Fatal("an unknown admin was accepted")
	}
	waitForOutput(t, &out, regexp.MustCompile(`message \d+: email from admin 8 to user 6762f2391bb69f9f2193bc19, template plain, subject "Hi"\n  <p>Hello</p>`))
	waitForOutput(t, &out, regexp.MustCompile(`POST /messages: 404 `))
	cancel()
	if code := <-done; code != 0 {
		t.Errorf("exit %d: %s", code, errOut.String())
	}
	if strings.Contains(errOut.String(), "panic") {
		t.Error(errOut.String())
	}
}
