package main

import (
	"context"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/intercom-bridge/bridge/intercom"
	"github.com/intercom-bridge/bridge/internal/syncbuf"
)

func waitForOutput(t *testing.T, out *syncbuf.Buffer, re *regexp.Regexp) []string {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if m := re.FindStringSubmatch(out.String()); m != nil {
			return m
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("no %s in output:\n%s", re, out)
	return nil
}

func TestFakeIntercomCommand(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	var out, errOut syncbuf.Buffer
	done := make(chan int)
	go func() {
		done <- runFakeIntercom(ctx, []string{"-listen", "127.0.0.1:0", "-admin", "7,8"}, &out, &errOut)
	}()
	m := waitForOutput(t, &out, regexp.MustCompile(`intercom.base_url: (\S+)\n  intercom.token:    (\S+)`))
	client, err := intercom.New(intercom.Config{BaseURL: m[1], Token: m[2]})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := client.CreateMessage(ctx, intercom.Message{MessageType: "email", Subject: "Hi", Body: "<p>Hello</p>",
		From: intercom.From{Type: "admin", ID: "8"}, To: intercom.To{Type: "user", Email: "ada@example.com"}}); err != nil {
		t.Fatal(err)
	}
	_, err = client.CreateMessage(ctx, intercom.Message{MessageType: "inapp", Body: "x",
		From: intercom.From{Type: "admin", ID: "9"}, To: intercom.To{Type: "user", ID: "u1"}})
	if err == nil {
		t.Fatal("an unknown admin was accepted")
	}
	waitForOutput(t, &out, regexp.MustCompile(`message \d+: email from admin 8 to user email=ada@example.com, template plain, subject "Hi"\n  <p>Hello</p>`))
	waitForOutput(t, &out, regexp.MustCompile(`POST /messages: 404 `))
	client.CloseIdleConnections()
	cancel()
	if code := <-done; code != 0 {
		t.Errorf("exit %d: %s", code, errOut.String())
	}
	if strings.Contains(errOut.String(), "panic") {
		t.Error(errOut.String())
	}
}
