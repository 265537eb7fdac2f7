package pipeline

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"

	"github.com/intercom-bridge/bridge/internal/jsonout"
)

// marshalledEntry is what encoding/json writes for e, HTML left unescaped
// as appendJSON leaves it.
func marshalledEntry(t testing.TB, e *ledgerEntry) []byte {
	t.Helper()
	b, err := jsonout.Marshal(e)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestLedgerEntryJSON(t *testing.T) {
	at := time.Date(2026, 12, 2, 3, 4, 5, 600700800, time.UTC)
	for _, tc := range []struct {
		name  string
		entry ledgerEntry
		want  string
	}{
		{"pending", ledgerEntry{State: statePending, Key: "paid/o-1", Attempts: 1, Owner: "host-7#1", Lease: 15 * time.Second, At: at},
			`{"state":"pending","key":"paid/o-1","attempts":1,"owner":"host-7#1","lease":15000000000,"at":"2026-12-02T03:04:05.6007008Z"}`},
		{"sent", ledgerEntry{State: stateSent, Key: "paid/o-1", MessageID: "403918330", ConversationID: "5", At: at},
			`{"state":"sent","key":"paid/o-1","message_id":"403918330","conversation_id":"5","at":"2026-12-02T03:04:05.6007008Z"}`},
		{"failed", ledgerEntry{State: stateFailed, Key: "r/\"<k>\"", Error: "503 \u2028", Attempts: 3, At: at.Truncate(time.Second)},
			`{"state":"failed","key":"r/\"<k>\"","error":"503 \u2028","attempts":3,"at":"2026-12-02T03:04:05Z"}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := tc.entry.appendJSON(nil)
			if string(got) != tc.want {
				t.Errorf("appendJSON\n got %s\nwant %s", got, tc.want)
			}
			if want := marshalledEntry(t, &tc.entry); !bytes.Equal(got, want) {
				t.Errorf("appendJSON\n got %s\njson.Marshal %s", got, want)
			}
		})
	}
}

// FuzzLedgerEntryJSON checks appendJSON against encoding/json on any
// strings, counts, leases and times the ledger writes (UTC).
func FuzzLedgerEntryJSON(f *testing.F) {
	f.Add("pending", "paid/o-1", "", "", "", 1, "host#1", int64(15e9), int64(1764644645600700800))
	f.Add("sent", "\"\\\n\x00", "<&>", "\u2028", "\xff", 0, "", int64(0), int64(0))
	f.Add("failed", "", "", "", "x", -3, "\xc3\x28", int64(-1), int64(-62135596800000000))
	f.Fuzz(func(t *testing.T, state, key, messageID, conversationID, errText string, attempts int, owner string, lease, nanos int64) {
		e := ledgerEntry{State: state, Key: key, MessageID: messageID, ConversationID: conversationID, Error: errText,
			Attempts: attempts, Owner: owner, Lease: time.Duration(lease), At: time.Unix(0, nanos).UTC()}
		got := e.appendJSON(nil)
		if want := marshalledEntry(t, &e); !bytes.Equal(got, want) {
			t.Fatalf("appendJSON\n got %q\nwant %q", got, want)
		}
	})
}

func BenchmarkLedgerEntryJSON(b *testing.B) {
	e := ledgerEntry{State: statePending, Key: "paid/o-1", Attempts: 1, Owner: "host-7#1", Lease: 15 * time.Second, At: time.Now().UTC()}
	b.Run("appendJSON", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_ = e.appendJSON(make([]byte, 0, 160))
		}
	})
	b.Run("json.Marshal", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_, _ = json.Marshal(&e)
		}
	})
}
