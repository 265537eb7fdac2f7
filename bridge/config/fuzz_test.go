package config

import (
	"errors"
	"testing"

	"github.com/intercom-bridge/bridge/rules"
)

// FuzzParse feeds arbitrary files to the config loader: it never panics,
// and a problem always comes back as positioned errors.
func FuzzParse(f *testing.F) {
	f.Add([]byte("log: {level: info}\nsources:\n  - {name: a, webhook: {auth: {scheme: none}}}\n"))
	f.Add([]byte("nats: {url: nats://x:4222, token: ${T}}\n"))
	f.Add([]byte("delivery: {dedupe_window: 7d, backoff: {initial: 1s, max: 1ms}}\n"))
	f.Add([]byte("a: &a [*a, *a]\n<<: *a\n"))
	f.Add([]byte("sources: [{name: x, nats: {subjects: ['a.>', 'bridge.in.x']}}]"))
	env := func(k string) (string, bool) {
		if k == "T" {
			return "secret-token", true
		}
		return "", false
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := Parse("/etc/bridge/c.yaml", data, env)
		if err == nil {
			if cfg == nil {
				t.Fatal("no config and no error")
			}
			if len(cfg.Validate()) != 0 {
				t.Fatal("a loaded config does not validate")
			}
			return
		}
		var list rules.ErrorList
		if errors.As(err, &list) {
			for _, e := range list {
				if e.Pos.File != "/etc/bridge/c.yaml" || e.Pos.Line < 1 {
					t.Fatalf("error without a position: %v", e)
				}
			}
		}
	})
}
