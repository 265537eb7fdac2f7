package bridge

import (
	"io"
	"time"

	"github.com/rs/zerolog"

	"github.com/intercom-bridge/bridge/bridge/config"
)

// NewLogger returns the logger config asks for: JSON lines, or a console
// format for people.
func NewLogger(c config.Log, w io.Writer) zerolog.Logger {
	if c.Format == "console" {
		w = zerolog.ConsoleWriter{Out: w, TimeFormat: time.DateTime}
	}
	level, err := zerolog.ParseLevel(c.Level)
	if err != nil {
		level = zerolog.InfoLevel
	}
	return zerolog.New(w).Level(level).With().Timestamp().Logger()
}
