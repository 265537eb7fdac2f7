package rules

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func addSeeds(f *testing.F, patterns ...string) {
	for _, p := range patterns {
		files, _ := filepath.Glob(p)
		for _, name := range files {
			data, err := os.ReadFile(name)
			if err != nil {
				f.Fatal(err)
			}
			f.Add(data)
		}
	}
}

// FuzzParse feeds arbitrary bytes to the rule loader: it must never panic,
// and every problem must come back as positioned errors.
func FuzzParse(f *testing.F) {
	addSeeds(f, "../examples/rules/*.yaml", "testdata/render/rules.yaml")
	f.Add([]byte("rules:\n  - name: a\n    when: 'event.x ?? 1 >'\n"))
	f.Add([]byte("rules: [{name: a, message: {type: email, body: '{{ .x | default }}'}}]"))
	f.Add([]byte("a: &a [*a]\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		set, err := Parse([]File{{Name: "f.yaml", Data: data}}, Options{DefaultAdminID: "1"})
		if err == nil {
			if set == nil {
				t.Fatal("no set and no error")
			}
			set.Evaluate(&Event{ID: "x", Source: "s", Subject: "a.b", Data: map[string]any{"a": int64(1)}})
			return
		}
		var list ErrorList
		if !errors.As(err, &list) || len(list) == 0 {
			t.Fatalf("error is not an ErrorList: %v", err)
		}
		for _, e := range list {
			if e.Pos.File != "f.yaml" || e.Pos.Line < 1 || e.Msg == "" {
				t.Fatalf("error without a position: %#v", e)
			}
		}
	})
}

// FuzzParseTests does the same for rule test files.
func FuzzParseTests(f *testing.F) {
	addSeeds(f, "../examples/rules/*.test.yaml")
	f.Fuzz(func(t *testing.T, data []byte) {
		tf, err := ParseTests(File{Name: "f.test.yaml", Data: data})
		if err == nil && tf == nil {
			t.Fatal("no tests and no error")
		}
		var list ErrorList
		if err != nil && !errors.As(err, &list) {
			t.Fatalf("error is not an ErrorList: %v", err)
		}
	})
}

// FuzzEvaluate renders arbitrary JSON events with the example rules: no
// panic, and a rule either delivers or reports an error.
func FuzzEvaluate(f *testing.F) {
	set, err := Load([]string{"../examples/rules", "testdata/render/rules.yaml"}, Options{})
	if err != nil {
		f.Fatal(err)
	}
	f.Add([]byte(`{"type":"order.paid","amount":150,"currency":"EUR","order_id":1,"customer":{"id":"u"}}`), "shop", "orders.eu.paid")
	f.Add([]byte(`{"days_left":1,"plan":{"name":"x"},"owner":{"email":"a@b.c","name":"n"},"ends_at":"2026-01-01T00:00:00Z"}`), "billing", "billing.trial.ending")
	f.Add([]byte(`{"used":1e308,"quota":1e-308,"workspace":[1,2],"user":{"intercom_id":null}}`), "telemetry", "t")
	f.Add([]byte(`[1,"a",null]`), "", "crm.lead.created")
	f.Fuzz(func(t *testing.T, data []byte, source, subject string) {
		payload, err := DecodeJSON(data)
		if err != nil {
			return
		}
		ev := &Event{ID: "e", Source: source, Subject: subject, Data: payload}
		res := set.Evaluate(ev)
		for _, e := range res.Errors {
			if e.Rule == "" || e.Err == nil {
				t.Fatalf("error without a rule: %#v", e)
			}
		}
		for _, d := range res.Deliveries {
			if d.DedupeKey == "" || d.Message.Body == "" {
				t.Fatalf("incomplete delivery: %#v", d)
			}
		}
		set.Explain(ev)
	})
}
