package bridge

import (
	"bytes"
	"io"
	"os"
	"strings"
	"testing"

	"github.com/intercom-bridge/bridge/bridge/config"
)

// TestConsoleLogColour: the console format writes colour codes only to a
// terminal, and never with NO_COLOR set.
func TestConsoleLogColour(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	tests := []struct {
		name    string
		out     io.Writer
		noColor string
	}{
		{"a buffer", &bytes.Buffer{}, ""},
		{"a pipe", w, ""},
		{"NO_COLOR", &bytes.Buffer{}, "1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("NO_COLOR", tt.noColor)
			if colour(tt.out) {
				t.Errorf("colour on %s", tt.name)
			}
		})
	}
	w.Close()
	var buf bytes.Buffer
	log := NewLogger(config.Log{Level: "info", Format: "console"}, &buf)
	log.Info().Str("rule", "r").Msg("sent")
	if strings.Contains(buf.String(), "\x1b[") || !strings.Contains(buf.String(), "sent rule=r") {
		t.Errorf("console line %q", buf.String())
	}
}
