package event

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
)

func FuzzParseCloudEvent(f *testing.F) {
	f.Add("application/cloudevents+json", "", "", "", "", `{"specversion":"1.0","id":"a","source":"s","type":"t","data":{"x":1}}`)
	f.Add("application/cloudevents+json; charset=utf-8", "", "", "", "", `{"specversion":"1.0","id":"a","source":"s","type":"t","data_base64":"e30="}`)
	f.Add("application/cloudevents+json", "", "", "", "", `{"specversion":"1.0","id":"a","source":"s","type":"t","data":1,"data_base64":"e30="}`)
	f.Add("application/cloudevents+json", "", "", "", "", `[]`)
	f.Add("application/json", "evt", "/src", "1.0", "t", `{"a":1}`)
	f.Add("application/json", "evt%20", "%zz", "1.0", "t", `{"a":1}`)
	f.Add("text/plain", "evt", "/src", "1.0", "t", `hello`)
	f.Add("", "evt", "/src", "1.0", "t", ``)
	f.Add("application/json", "", "", "", "", `{"a":1}`)
	f.Add("application/cloudevents-batch+json", "", "", "", "", `[]`)

	f.Fuzz(func(t *testing.T, contentType, id, source, specversion, typ, body string) {
		h := http.Header{}
		for name, v := range map[string]string{
			"Content-Type": contentType, "Ce-Id": id, "Ce-Source": source,
			"Ce-Specversion": specversion, "Ce-Type": typ,
		} {
			if v != "" {
				h.Set(name, v)
			}
		}
		ce, ok, err := ParseCloudEvent(h, []byte(body))
		switch {
		case !ok:
			if ce != nil || err != nil {
				t.Fatalf("not a CloudEvent but got %+v, %v", ce, err)
			}
			if id != "" || source != "" || specversion != "" || typ != "" {
				t.Fatal("ce- headers present but not recognised as a CloudEvent")
			}
		case err != nil:
			if ce != nil {
				t.Fatalf("error %v with a non-nil event", err)
			}
		default:
			if ce.ID == "" || ce.Source == "" || ce.Type == "" || ce.SpecVersion != "1.0" {
				t.Fatalf("accepted event lacks required attributes: %+v", ce)
			}
			if !json.Valid(ce.Data) {
				t.Fatalf("accepted event has invalid JSON data %q", ce.Data)
			}
		}
	})
}

func FuzzCheckJSON(f *testing.F) {
	f.Add([]byte(`{"a":[1,2,{"b":"[["}]}`), 2)
	f.Add([]byte(`[[[[]]]]`), 3)
	f.Add([]byte(`{"a":1} {"b":2}`), 64)
	f.Add([]byte(`"\\"`), 1)
	f.Add([]byte(`"\"[["`), 1)
	f.Add([]byte(`]][[`), 1)
	f.Add([]byte(`1e400`), 0)
	f.Add([]byte(strings.Repeat("[", 100)), 64)
	f.Add([]byte(" "), 1)

	f.Fuzz(func(t *testing.T, body []byte, maxDepth int) {
		maxDepth %= 100
		limit := maxDepth
		if limit < 1 {
			limit = DefaultMaxDepth
		}
		err := CheckJSON(body, maxDepth)
		valid := json.Valid(body)
		if valid {
			depth := tokenDepth(t, body)
			if (err == nil) != (depth <= limit) {
				t.Fatalf("CheckJSON(depth %d, limit %d) = %v", depth, limit, err)
			}
			if err != nil && !errors.Is(err, ErrTooDeep) {
				t.Fatalf("valid JSON refused for something other than depth: %v", err)
			}
		} else if err == nil {
			t.Fatalf("CheckJSON accepted invalid JSON %q", body)
		}
	})
}

// tokenDepth measures the nesting depth of valid JSON with json.Decoder, an
// implementation independent of CheckJSON's byte scan.
func tokenDepth(t *testing.T, body []byte) int {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	depth, deepest := 0, 0
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			return deepest
		}
		if err != nil {
			t.Fatalf("Decoder.Token on valid JSON: %v", err)
		}
		switch tok {
		case json.Delim('['), json.Delim('{'):
			depth++
			deepest = max(deepest, depth)
		case json.Delim(']'), json.Delim('}'):
			depth--
		}
	}
}
