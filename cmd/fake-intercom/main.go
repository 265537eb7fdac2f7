// Command fake-intercom serves a fake Intercom API that checks every request
// against Intercom's published description of the request's version and
// prints each message. It is for trying the bridge without an Intercom
// workspace: point intercom.base_url and intercom.token at it. It is a
// command of its own so the service binary does not ship the fake.
//
// It owns only its flags; the fake is intercomtest, and the service
// packages never import either.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"

	"github.com/intercom-bridge/bridge/intercom"
	"github.com/intercom-bridge/bridge/intercom/intercomtest"
	"github.com/intercom-bridge/bridge/internal/contactsfile"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := runFakeIntercom(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// runFakeIntercom serves a fake Intercom API until ctx is done, printing each
// request it receives. It is for trying the bridge without an Intercom
// workspace: point intercom.base_url and intercom.token at it.
func runFakeIntercom(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("fake-intercom", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: fake-intercom [flags]\n\nServe a fake Intercom API that checks each request like Intercom and prints each message.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	listen := fs.String("listen", "127.0.0.1:8089", "`address` to listen on")
	token := fs.String("token", "test-token", "access `token` clients must send")
	var admins adminIDsFlag
	fs.Var(&admins, "admin", "admin `id` that may send messages; repeatable or comma-separated (default 394051)")
	permissive := fs.Bool("permissive", true, "create the contact a search by external_id or email does not find, and accept messages to contact ids the fake does not know (admins are still checked)")
	contactsFile := fs.String("contacts", "", "JSON or YAML `file` listing contacts to seed: [{id, role, external_id, email}, ...]")
	windowLimit := fs.Int("window-limit", 0, "answer 429 beyond `N` requests per 10-second window (0: no limit)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "fake-intercom: unexpected arguments: %s\n", strings.Join(fs.Args(), " "))
		return 2
	}
	if *token == "" {
		fmt.Fprintln(stderr, "fake-intercom: -token must not be empty")
		return 2
	}
	if len(admins) == 0 {
		admins = adminIDsFlag{"394051"}
	}
	var contacts []intercom.Contact
	if *contactsFile != "" {
		var err error
		if contacts, err = contactsfile.Load(*contactsFile); err != nil {
			fmt.Fprintf(stderr, "fake-intercom: -contacts: %v\n", err)
			return 2
		}
	}

	l, err := net.Listen("tcp", *listen)
	if err != nil {
		fmt.Fprintf(stderr, "fake-intercom: %v\n", err)
		return 1
	}
	p := &fakePrinter{w: stdout}
	srv := intercomtest.NewServer(
		intercomtest.WithListener(l),
		intercomtest.WithToken(*token),
		intercomtest.WithPermissive(*permissive),
		intercomtest.WithRequestHook(p.print),
		// Nothing reads the recordings here; keep memory flat.
		intercomtest.WithRecordLimit(1),
	)
	defer srv.Close()
	for _, id := range admins {
		srv.AddAdmin(id, "Admin "+id, "admin-"+id+"@example.com")
	}
	for _, c := range contacts {
		srv.AddContact(c)
	}
	if *windowLimit > 0 {
		srv.SetWindowLimit(*windowLimit, intercomtest.DefaultWindow)
	}

	p.printf("fake Intercom listening; configure the bridge with:\n")
	p.printf("  intercom.base_url: %s\n", fakeReachableURL(srv.URL()))
	p.printf("  intercom.token:    %s\n", srv.Token())
	p.printf("  admins:            %s\n", strings.Join(admins, ", "))
	for _, c := range srv.Contacts() {
		p.printf("  contact:           %s %s%s%s\n", c.Role, c.ID, fakeAttr("external_id", c.ExternalID), fakeAttr("email", c.Email))
	}
	<-ctx.Done()
	return 0
}

func fakeAttr(name, value string) string {
	if value == "" {
		return ""
	}
	return " " + name + "=" + value
}

// adminIDsFlag is the -admin flag: repeatable, each value a comma-separated list.
type adminIDsFlag []string

func (f *adminIDsFlag) String() string { return strings.Join(*f, ",") }

func (f *adminIDsFlag) Set(v string) error {
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			*f = append(*f, s)
		}
	}
	return nil
}

// fakeReachableURL turns a listener's URL on an unspecified address
// (http://[::]:8089) into one a client can use.
func fakeReachableURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return raw
	}
	if ip := net.ParseIP(u.Hostname()); ip != nil && ip.IsUnspecified() {
		u.Host = net.JoinHostPort("127.0.0.1", u.Port())
	}
	return u.String()
}

// fakePrinter prints what the fake receives, one short block per request.
// Requests are served concurrently, hence the lock.
type fakePrinter struct {
	mu sync.Mutex
	w  io.Writer
}

func (p *fakePrinter) printf(format string, args ...any) {
	p.mu.Lock()
	defer p.mu.Unlock()
	fmt.Fprintf(p.w, format, args...)
}

func (p *fakePrinter) print(r intercomtest.Request) {
	ts := r.Time.Format("15:04:05.000")
	switch {
	case r.StatusCode == 200 && r.Message != nil && r.Path == "/messages":
		m := r.Message
		var sent struct {
			ID string `json:"id"`
		}
		json.Unmarshal(r.Response, &sent)
		line := fmt.Sprintf("%s message %s: %s from admin %s to %s", ts, sent.ID, m.MessageType, m.From.ID, fakeRecipient(m.To))
		if m.Template != "" {
			line += ", template " + m.Template
		}
		if m.Subject != "" {
			line += fmt.Sprintf(", subject %q", m.Subject)
		}
		p.printf("%s\n  %s\n", line, fakeExcerpt(m.Body, 200))
	case r.StatusCode == 0:
		p.printf("%s %s %s: no answer (connection dropped or client gone)\n", ts, r.Method, r.Path)
	case r.StatusCode >= 400:
		var list struct {
			Errors []intercom.ErrorDetail `json:"errors"`
		}
		json.Unmarshal(r.Response, &list)
		var why []string
		for _, e := range list.Errors {
			why = append(why, e.String())
		}
		if len(why) == 0 {
			why = append(why, fakeExcerpt(string(r.Response), 80))
		}
		p.printf("%s %s %s: %d %s\n", ts, r.Method, r.Path, r.StatusCode, strings.Join(why, "; "))
	default:
		p.printf("%s %s %s: %d\n", ts, r.Method, r.Path, r.StatusCode)
	}
}

func fakeRecipient(to []intercom.Recipient) string {
	var s []string
	for _, r := range to {
		s = append(s, r.Type+" "+r.ID)
	}
	return strings.Join(s, ", ")
}

// fakeExcerpt puts s on one line and cuts it to about n characters.
func fakeExcerpt(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if r := []rune(s); len(r) > n {
		s = string(r[:n]) + "…"
	}
	return s
}
