package event

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"net/url"
	"strings"
	"time"
	"unicode/utf8"
)

// CloudEvent is a CloudEvents 1.0 event received over HTTP. Data is always
// JSON: the bridge's rules evaluate JSON payloads only.
type CloudEvent struct {
	ID              string
	Source          string
	SpecVersion     string
	Type            string
	Subject         string
	DataContentType string
	Time            time.Time       // zero when the event has no time
	Data            json.RawMessage // JSON null when the event has no data
}

const (
	mediaTypeStructured = "application/cloudevents+json"
	mediaTypeBatch      = "application/cloudevents-batch+json"
	specVersion10       = "1.0"
)

var jsonNull = json.RawMessage("null")

// ParseCloudEvent recognises a CloudEvent sent with the HTTP protocol
// binding, in structured mode (Content-Type application/cloudevents+json,
// the event is the JSON body) or binary mode (attributes in ce-* headers,
// the body is the data).
//
// ok is false, with a nil error, when the request does not claim to be a
// CloudEvent at all; the caller then treats the body as a plain JSON
// payload. When it does claim to be one but is malformed, ok is true and
// the error says what is wrong.
//
// The body should already have passed CheckJSON (structured mode) so that
// its size and depth are bounded.
func ParseCloudEvent(h http.Header, body []byte) (ce *CloudEvent, ok bool, err error) {
	switch mediaType(h.Get("Content-Type")) {
	case mediaTypeStructured:
		ce, err = parseStructured(body)
		return ce, true, err
	case mediaTypeBatch:
		// Several events: ParseCloudEventBatch, where a request may carry them.
		return nil, true, errors.New("cloudevents: a batch holds several events; here, send one event per message")
	}
	if !IsBinaryCloudEvent(h) {
		return nil, false, nil
	}
	ce, err = parseBinary(h, body)
	return ce, true, err
}

// IsCloudEventBatch reports whether a request's Content-Type says its body
// is a CloudEvents batch (application/cloudevents-batch+json).
func IsCloudEventBatch(h http.Header) bool {
	return mediaType(h.Get("Content-Type")) == mediaTypeBatch
}

// ParseCloudEventBatch parses a batch in the JSON batch format: an array of
// structured events, possibly empty. Every member must be a valid event;
// the error of a bad one names its index ("event [2]: ..."), so the sender
// can tell which. body should already have passed CheckJSON.
func ParseCloudEventBatch(body []byte) ([]*CloudEvent, error) {
	var members []json.RawMessage
	if err := json.Unmarshal(body, &members); err != nil || members == nil {
		return nil, errors.New("cloudevents: a batch must be a JSON array of events")
	}
	out := make([]*CloudEvent, len(members))
	for i, m := range members {
		ce, err := parseStructured(m)
		if err != nil {
			return nil, fmt.Errorf("event [%d]: %w", i, err)
		}
		out[i] = ce
	}
	return out, nil
}

// mediaType returns the lower-case media type of a Content-Type value
// without its parameters, or "" if there is none.
func mediaType(contentType string) string {
	switch contentType {
	case "", "application/json", mediaTypeStructured, mediaTypeBatch:
		return contentType // what nearly every event carries, as ParseMediaType gives it
	}
	mt, _, err := mime.ParseMediaType(contentType)
	if err != nil && !errors.Is(err, mime.ErrInvalidMediaParameter) {
		return ""
	}
	return mt
}

// isJSONMediaType reports whether mt is application/json or a +json type.
func isJSONMediaType(mt string) bool {
	return mt == "application/json" || strings.HasSuffix(mt, "+json")
}

// The required context attributes as binary-mode headers.
var binaryRequired = []struct{ header, attr string }{
	{"Ce-Id", "id"},
	{"Ce-Source", "source"},
	{"Ce-Specversion", "specversion"},
	{"Ce-Type", "type"},
}

// IsBinaryCloudEvent reports whether any required ce- header is present: a
// request carrying some of them means to be a binary-mode CloudEvent (whose
// body may be empty), so a missing one is an error worth reporting rather
// than a reason to treat it as plain JSON.
func IsBinaryCloudEvent(h http.Header) bool {
	for _, r := range binaryRequired {
		if len(h.Values(r.header)) > 0 {
			return true
		}
	}
	return false
}

func parseBinary(h http.Header, body []byte) (*CloudEvent, error) {
	var missing []string
	attrs := make(map[string]string, len(binaryRequired))
	for _, r := range binaryRequired {
		v, err := binaryHeader(h, r.header)
		if err != nil {
			return nil, err
		}
		if v == "" {
			missing = append(missing, r.attr)
		}
		attrs[r.attr] = v
	}
	if err := missingError(missing); err != nil {
		return nil, err
	}
	ce := &CloudEvent{
		ID:              attrs["id"],
		Source:          attrs["source"],
		SpecVersion:     attrs["specversion"],
		Type:            attrs["type"],
		DataContentType: h.Get("Content-Type"),
	}
	if ce.SpecVersion != specVersion10 {
		return nil, errSpecVersion
	}
	var err error
	if ce.Subject, err = binaryHeader(h, "Ce-Subject"); err != nil {
		return nil, err
	}
	t, err := binaryHeader(h, "Ce-Time")
	if err != nil {
		return nil, err
	}
	if ce.Time, err = parseTime(t); err != nil {
		return nil, err
	}

	// An event may have no data: an empty body.
	if len(body) == 0 {
		ce.Data = jsonNull
		return ce, nil
	}
	if !isJSONMediaType(mediaType(ce.DataContentType)) {
		return nil, errors.New("cloudevents: binary mode needs a JSON body (Content-Type application/json or */*+json)")
	}
	if !json.Valid(body) {
		return nil, errors.New("cloudevents: body is not valid JSON")
	}
	ce.Data = json.RawMessage(body)
	return ce, nil
}

// binaryHeader returns a ce- header value, percent-decoded as the HTTP
// binding requires.
func binaryHeader(h http.Header, name string) (string, error) {
	raw := h.Get(name)
	v, err := url.PathUnescape(raw)
	if err != nil {
		return "", fmt.Errorf("cloudevents: %s header has an invalid percent-encoding", strings.ToLower(name))
	}
	if !utf8.ValidString(v) {
		return "", fmt.Errorf("cloudevents: %s header is not valid UTF-8", strings.ToLower(name))
	}
	return v, nil
}

func parseStructured(body []byte) (*CloudEvent, error) {
	var members map[string]json.RawMessage
	if err := json.Unmarshal(body, &members); err != nil {
		var typeErr *json.UnmarshalTypeError
		if errors.As(err, &typeErr) {
			return nil, errors.New("cloudevents: structured event must be a JSON object")
		}
		return nil, fmt.Errorf("cloudevents: invalid JSON: %w", err)
	}
	if members == nil { // the body was "null"
		return nil, errors.New("cloudevents: structured event must be a JSON object")
	}

	attr := func(name string) (string, error) {
		raw, ok := members[name]
		if !ok || string(raw) == "null" {
			return "", nil
		}
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return "", fmt.Errorf("cloudevents: attribute %s must be a string", name)
		}
		return s, nil
	}
	var ce CloudEvent
	var missing []string
	for _, a := range []struct {
		name     string
		dst      *string
		required bool
	}{
		{"id", &ce.ID, true},
		{"source", &ce.Source, true},
		{"specversion", &ce.SpecVersion, true},
		{"type", &ce.Type, true},
		{"subject", &ce.Subject, false},
		{"datacontenttype", &ce.DataContentType, false},
	} {
		v, err := attr(a.name)
		if err != nil {
			return nil, err
		}
		if a.required && v == "" {
			missing = append(missing, a.name)
		}
		*a.dst = v
	}
	if err := missingError(missing); err != nil {
		return nil, err
	}
	if ce.SpecVersion != specVersion10 {
		return nil, errSpecVersion
	}
	t, err := attr("time")
	if err != nil {
		return nil, err
	}
	if ce.Time, err = parseTime(t); err != nil {
		return nil, err
	}

	data, hasData := members["data"]
	encoded, hasBase64 := members["data_base64"]
	switch {
	case hasData && hasBase64:
		return nil, errors.New("cloudevents: event has both data and data_base64")
	case hasData:
		ce.Data = data
	case hasBase64:
		if ce.Data, err = decodeDataBase64(encoded, ce.DataContentType); err != nil {
			return nil, err
		}
	default:
		ce.Data = jsonNull
	}
	return &ce, nil
}

// decodeDataBase64 accepts data_base64 only when it holds JSON: the rules
// cannot do anything useful with opaque bytes, and refusing them at the
// door beats dead-lettering them later.
func decodeDataBase64(raw json.RawMessage, contentType string) (json.RawMessage, error) {
	if contentType != "" && !isJSONMediaType(mediaType(contentType)) {
		return nil, errors.New("cloudevents: data_base64 is only supported with a JSON datacontenttype")
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return nil, errors.New("cloudevents: data_base64 must be a string")
	}
	data, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("cloudevents: data_base64 is not valid base64: %w", err)
	}
	if !json.Valid(data) {
		return nil, errors.New("cloudevents: data_base64 does not hold JSON")
	}
	return json.RawMessage(data), nil
}

var errSpecVersion = errors.New(`cloudevents: specversion must be "1.0"`)

func missingError(missing []string) error {
	if len(missing) == 0 {
		return nil
	}
	return fmt.Errorf("cloudevents: missing required attributes: %s", strings.Join(missing, ", "))
}

// parseTime parses an optional RFC 3339 time attribute.
func parseTime(s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, errors.New("cloudevents: time attribute is not an RFC 3339 timestamp")
	}
	return t, nil
}
