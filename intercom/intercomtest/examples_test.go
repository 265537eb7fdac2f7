package intercomtest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/intercom-bridge/bridge/intercom"
	"gopkg.in/yaml.v3"
)

// requestExample is one example of a request body in a description, with
// what the description says the answer is.
type requestExample struct {
	file, method, path, name, summary string
	value                             any

	// status, code and message come from the response example of the same
	// name (its summary): the error the description gives for it, or 200.
	status        int
	code, message string
}

// requestExamples walks the request bodies of every path in a description.
func requestExamples(t *testing.T, file string) []requestExample {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := yaml.Unmarshal(data, &doc); err != nil {
		t.Fatal(err)
	}
	var out []requestExample
	paths, _ := doc["paths"].(map[string]any)
	for _, path := range sortedKeys(paths) {
		ops, _ := paths[path].(map[string]any)
		for _, method := range sortedKeys(ops) {
			op, _ := ops[method].(map[string]any)
			content, ok := dig(op, "requestBody", "content", "application/json")
			if !ok {
				continue
			}
			examples, _ := content["examples"].(map[string]any)
			if ex, ok := content["example"]; ok {
				examples = map[string]any{"example": map[string]any{"value": ex}}
			}
			for _, name := range sortedKeys(examples) {
				ex, _ := examples[name].(map[string]any)
				summary, _ := ex["summary"].(string)
				e := requestExample{file: filepath.Base(file), method: strings.ToUpper(method), path: path, name: name, summary: summary, value: toJSON(t, ex["value"])}
				e.status, e.code, e.message = describedAnswer(op, cmpOr(summary, name))
				out = append(out, e)
			}
		}
	}
	return out
}

// describedAnswer finds the response example named like a request example.
func describedAnswer(op map[string]any, name string) (status int, code, message string) {
	responses, _ := op["responses"].(map[string]any)
	for _, st := range sortedKeys(responses) {
		examples, ok := dig(responses[st].(map[string]any), "content", "application/json", "examples")
		if !ok {
			continue
		}
		for exName, ex := range examples {
			if !strings.EqualFold(exName, name) {
				continue
			}
			fmt.Sscan(st, &status)
			v, _ := ex.(map[string]any)["value"].(map[string]any)
			if errs, ok := v["errors"].([]any); ok && len(errs) > 0 {
				e := errs[0].(map[string]any)
				code, _ = e["code"].(string)
				message, _ = e["message"].(string)
			}
			return status, code, message
		}
	}
	return 0, "", ""
}

// toJSON turns a YAML value into what decoding its JSON gives.
func toJSON(t *testing.T, v any) any {
	t.Helper()
	data, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var out any
	if err := dec.Decode(&out); err != nil {
		t.Fatal(err)
	}
	return out
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// version is the Intercom-Version a description file is served at.
func version(file string) string {
	return strings.TrimSuffix(strings.TrimPrefix(filepath.Base(file), "intercom-"), ".yaml")
}

// TestDescriptionExamples sends every request example of every shipped
// description to the fake, at the file's version: an example the
// description answers with an error is refused with that error; the others
// are accepted, unless exampleVerdicts says why they break the schema.
func TestDescriptionExamples(t *testing.T) {
	// exampleVerdicts says how the fake must answer the request examples whose
	// own description gives no error for them but whose bodies break the
	// description's schema. Each is refused for that reason; fix, when set,
	// mends the one thing wrong, after which the example must be accepted.
	exampleVerdicts := map[string]struct {
		field, message string // of one of the errors
		fix            func(map[string]any)
	}{
		// A message from a user or a lead, without message_type or to: not an
		// admin message, and from.id is not an admin id.
		"user_message_created": {field: "to", message: "to: is required"},
		"lead_message_created": {field: "to", message: "to: is required"},
		// message_type "conversation" is in no version's enum.
		"admin_message_created": {field: "message_type", message: `not "conversation"`,
			fix: func(m map[string]any) { m["message_type"] = "inapp" }},
		// A WhatsApp recipient is a phone number, which the recipient schema
		// does not describe.
		"admin_whatsapp_message_created": {field: "to.id", message: "to.id: is required"},
	}
	files, err := filepath.Glob("openapi/*.yaml")
	if err != nil || len(files) != 3 {
		t.Fatalf("descriptions: %v %v", files, err)
	}
	for _, file := range files {
		for _, e := range requestExamples(t, file) {
			t.Run(version(file)+"/"+e.method+" "+e.path+"/"+e.name, func(t *testing.T) {
				if e.method == http.MethodPut {
					// The fake does not update contacts: it answers 404, as
					// Intercom does for a method a path lacks. The body
					// must still fit the schema, or the validator is wrong.
					cs, err := contracts()
					if err != nil {
						t.Fatal(err)
					}
					if e := cs[version(file)].checkBody(e.method, e.path, e.value); e != nil {
						t.Errorf("valid example refused by the validator: %+v", e.details)
					}
					if r := sendExample(t, file, e, e.value); r.status != http.StatusNotFound {
						t.Errorf("PUT answered %d, want 404", r.status)
					}
					return
				}
				verdict, contradicts := exampleVerdicts[e.name]
				r := sendExample(t, file, e, e.value)
				switch {
				case e.status >= 400:
					if r.status != e.status || !hasError(r.errors, e.code, "", e.message) {
						t.Errorf("answer %d %+v, want %d %s %q as the description gives", r.status, r.errors, e.status, e.code, e.message)
					}
				case contradicts:
					if r.status != http.StatusBadRequest || !hasError(r.errors, "parameter_invalid", verdict.field, verdict.message) {
						t.Errorf("answer %d %+v, want 400 with %s: %q", r.status, r.errors, verdict.field, verdict.message)
					}
					if verdict.fix != nil {
						fixed := toJSON(t, e.value).(map[string]any)
						verdict.fix(fixed)
						if r := sendExample(t, file, e, fixed); r.status != http.StatusOK {
							t.Errorf("mended example answered %d %+v, want 200", r.status, r.errors)
						}
					}
				default:
					if r.status != http.StatusOK {
						t.Errorf("valid example answered %d %+v, want 200", r.status, r.errors)
					}
				}
			})
		}
	}
}

type exampleAnswer struct {
	status int
	errors []intercom.ErrorDetail
}

func hasError(errs []intercom.ErrorDetail, code, field, message string) bool {
	for _, e := range errs {
		if (code == "" || e.Code == code) && (field == "" || e.Field == field) && strings.Contains(e.Message, message) {
			return true
		}
	}
	return false
}

// sendExample sends body as e's request to a fake that knows the example's
// admin and recipients, so that only the example's own faults are refused.
func sendExample(t *testing.T, file string, e requestExample, body any) exampleAnswer {
	t.Helper()
	srv := NewServer(WithToken("tok"))
	defer srv.Close()
	if m, ok := body.(map[string]any); ok {
		if from, ok := m["from"].(map[string]any); ok {
			srv.AddAdmin(scalar(from["id"]), "Example admin", "admin@example.com")
		}
		for _, f := range []string{"to", "cc", "bcc"} {
			for _, r := range recipientsOf(m[f]) {
				if r.ID != "" && (r.Type == "user" || r.Type == "lead") {
					srv.AddContact(intercom.Contact{ID: r.ID, Role: r.Type})
				}
			}
		}
	}
	data, err := json.Marshal(body)
	if err != nil {
		t.Fatal(err)
	}
	path := strings.NewReplacer("{contact_id}", "6762f0cd1bb69f9f2193bb7c").Replace(e.path)
	req, err := http.NewRequest(e.method, srv.URL()+path, bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer tok")
	req.Header.Set("Accept", "application/json")
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Intercom-Version", version(file))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out := exampleAnswer{status: resp.StatusCode}
	var list struct {
		Errors []intercom.ErrorDetail `json:"errors"`
	}
	b, _ := io.ReadAll(resp.Body)
	json.Unmarshal(b, &list)
	out.errors = list.Errors
	return out
}
