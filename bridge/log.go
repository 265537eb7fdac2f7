package bridge

import (
	"io"
	"os"
	"time"

	"github.com/rs/zerolog"

	"github.com/intercom-bridge/bridge/bridge/config"
)

// NewLogger returns the logger config asks for: JSON lines, or a console
// format for people, in colour only on a terminal and without NO_COLOR
// (https://no-color.org): escape codes in a file or a log collector are
// noise.
func NewLogger(c config.Log, w io.Writer) zerolog.Logger {
	if c.Format == "console" {
		w = zerolog.ConsoleWriter{Out: w, TimeFormat: time.DateTime, NoColor: !colour(w)}
	}
	level, err := zerolog.ParseLevel(c.Level)
	if err != nil {
		level = zerolog.InfoLevel
	}
	return zerolog.New(w).Level(level).With().Timestamp().Logger()
}

// colour reports whether w is a terminal and NO_COLOR is unset or empty.
func colour(w io.Writer) bool { return os.Getenv("NO_COLOR") == "" && IsTerminal(w) }

// IsTerminal reports whether w is a terminal (a character device), where
// people read, rather than a file, a pipe or a log collector.
func IsTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	info, err := f.Stat()
	return err == nil && info.Mode()&os.ModeCharDevice != 0
}
