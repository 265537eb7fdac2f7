package event

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"time"
	"unicode/utf8"

	"github.com/intercom-bridge/bridge/internal/jsonout"
)

// appendJSON appends the envelope's JSON: what json.Marshal writes for it,
// field for field, without its reflection and without a second pass over
// the payload. Every webhook and every bind copy is one of these, so it is
// on the intake's hot path. Data is appended as it is: the sources that
// build an envelope have checked it is JSON (FromNATS, the webhook
// handler), and json.Marshal would only have compacted it.
func (e *Envelope) appendJSON(b []byte) ([]byte, error) {
	if y := e.Time.Year(); y < 0 || y > 9999 {
		return nil, fmt.Errorf("event %s: time %s: year outside [0,9999]", e.ID, e.Time)
	}
	b = append(b, `{"id":`...)
	b = jsonout.AppendString(b, e.ID)
	b = append(b, `,"source":`...)
	b = jsonout.AppendString(b, e.Source)
	b = append(b, `,"subject":`...)
	b = jsonout.AppendString(b, e.Subject)
	if e.Type != "" {
		b = append(b, `,"type":`...)
		b = jsonout.AppendString(b, e.Type)
	}
	b = append(b, `,"time":"`...)
	b = e.Time.AppendFormat(b, time.RFC3339Nano)
	b = append(b, '"')
	if len(e.Headers) > 0 {
		b = append(b, `,"headers":{`...)
		for i, k := range slices.Sorted(maps.Keys(e.Headers)) {
			if i > 0 {
				b = append(b, ',')
			}
			b = jsonout.AppendString(b, k)
			b = append(b, ':')
			b = jsonout.AppendString(b, e.Headers[k])
		}
		b = append(b, '}')
	}
	b = append(b, `,"data":`...)
	if len(e.Data) == 0 {
		b = append(b, "null"...)
	} else {
		b = append(b, e.Data...)
	}
	return append(b, '}'), nil
}

// decodeEnvelope reads the envelopes appendJSON writes, and those
// json.Marshal wrote before it, without encoding/json's reflection: stage 1
// decodes every stored webhook and bind copy. It reports false for any
// other shape (a string with an escape, a key it does not know or twice,
// data that is not the last field), which json.Unmarshal then reads; what
// it accepts, json.Unmarshal reads the same.
func decodeEnvelope(b []byte) (Envelope, bool) {
	var e Envelope
	p := envelopeReader{b: b}
	if !p.byte('{') {
		return e, false
	}
	var seen uint8
	for first := true; ; first = false {
		if !first && !p.byte(',') {
			return e, false
		}
		key, ok := p.plainString()
		if !ok || !p.byte(':') {
			return e, false
		}
		var bit uint8
		switch key {
		case "id":
			bit = 1
			e.ID, ok = p.plainString()
		case "source":
			bit = 2
			e.Source, ok = p.plainString()
		case "subject":
			bit = 4
			e.Subject, ok = p.plainString()
		case "type":
			bit = 8
			e.Type, ok = p.plainString()
		case "time":
			bit = 16
			start := p.skipSpace()
			if _, ok = p.plainString(); ok {
				ok = e.Time.UnmarshalJSON(b[start:p.i]) == nil
			}
		case "headers":
			bit = 32
			e.Headers, ok = p.headers()
		case "data":
			// Last, as both writers put it: the value is what is left
			// before the closing brace.
			end := len(b)
			for end > p.i && isSpace(b[end-1]) {
				end--
			}
			if end == p.i || b[end-1] != '}' {
				return e, false
			}
			data := b[p.skipSpace() : end-1]
			for len(data) > 0 && isSpace(data[len(data)-1]) {
				data = data[:len(data)-1]
			}
			if !json.Valid(data) {
				return e, false
			}
			e.Data = data
			return e, true
		default:
			return e, false
		}
		if !ok || seen&bit != 0 {
			return e, false
		}
		seen |= bit
	}
}

// envelopeReader is decodeEnvelope's position in its input.
type envelopeReader struct {
	b []byte
	i int
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

// skipSpace moves past white space and returns the position.
func (p *envelopeReader) skipSpace() int {
	for p.i < len(p.b) && isSpace(p.b[p.i]) {
		p.i++
	}
	return p.i
}

// byte reads c, after white space.
func (p *envelopeReader) byte(c byte) bool {
	if p.skipSpace() < len(p.b) && p.b[p.i] == c {
		p.i++
		return true
	}
	return false
}

// plainString reads a JSON string without escapes, of valid UTF-8.
func (p *envelopeReader) plainString() (string, bool) {
	if !p.byte('"') {
		return "", false
	}
	start := p.i
	for ; p.i < len(p.b); p.i++ {
		switch c := p.b[p.i]; {
		case c == '"':
			s := p.b[start:p.i]
			p.i++
			return string(s), utf8.Valid(s)
		case c == '\\' || c < 0x20:
			return "", false
		}
	}
	return "", false
}

// headers reads an object of plain strings.
func (p *envelopeReader) headers() (map[string]string, bool) {
	if !p.byte('{') {
		return nil, false
	}
	h := map[string]string{}
	if p.byte('}') {
		return h, true
	}
	for {
		k, ok := p.plainString()
		if !ok || !p.byte(':') {
			return nil, false
		}
		if _, dup := h[k]; dup {
			return nil, false
		}
		if h[k], ok = p.plainString(); !ok {
			return nil, false
		}
		if p.byte('}') {
			return h, true
		}
		if !p.byte(',') {
			return nil, false
		}
	}
}
