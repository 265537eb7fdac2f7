package config

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/intercom-bridge/bridge/rules"
)

// Load reads, expands, decodes and validates a configuration file. Every
// problem is reported, at its line and column, as a rules.ErrorList. Values
// are never quoted in errors about keys that may hold secrets.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	return Parse(path, data, os.LookupEnv)
}

// Parse is Load for a file already read, with the environment given.
//
// Every problem is collected before any is reported: unset variables,
// unknown and duplicate keys, values of the wrong type and invalid values,
// so that one run of bridge validate shows them all. A value whose problem
// was found while reading it is not reported again by the checks after.
func Parse(path string, data []byte, lookupEnv func(string) (string, bool)) (*Config, error) {
	l := &loader{file: path, pos: map[string]rules.Pos{}, fallbacks: map[string]string{}, byLine: map[int][]*yaml.Node{}, paths: map[*yaml.Node]string{}}
	cfg := Default()
	cfg.path = path
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		l.errs = append(l.errs, syntaxError(path, data, err))
		return nil, l.errs
	}
	if len(doc.Content) == 0 { // an empty file: all defaults
		return finish(l, &cfg)
	}
	root := doc.Content[0]
	l.expand(root, lookupEnv)
	l.checkKeys(root, reflect.TypeOf(cfg), "")
	if err := root.Decode(&cfg); err != nil {
		var te *yaml.TypeError
		if !errors.As(err, &te) {
			l.add(l.lineOf(err.Error()), "%s", stripYAMLPrefix(err.Error()))
			l.errs.Sort()
			return nil, l.errs
		}
		for _, msg := range te.Errors {
			if strings.Contains(msg, "already defined at line") {
				continue // checkKeys reported the duplicate key
			}
			pos, path := l.valueAt(msg)
			l.add(pos, "%s", typeMessage(path, stripYAMLPrefix(msg)))
		}
	}
	return finish(l, &cfg)
}

// syntaxError is a YAML syntax error at the line that is wrong. A ${VAR}
// unquoted inside {...} or [...] is the likeliest cause of a flow
// collection that does not end where it should: its { reads as YAML.
func syntaxError(path string, data []byte, err error) *rules.Error {
	e := rules.YAMLError(rules.File{Name: path, Data: data}, err)
	if !strings.Contains(e.Msg, "did not find expected ',' or") {
		return e
	}
	lines := strings.Split(string(data), "\n")
	for i := e.Pos.Line - 1; i >= 0 && i < len(lines); i++ {
		if j := strings.Index(lines[i], "${"); j >= 0 && j > 0 && !strings.ContainsAny(lines[i][j-1:j], `"'`) {
			e.Pos.Line, e.Pos.Col = i+1, j+1
			e.Msg += `: a ${VAR} inside {...} or [...] must be quoted: "${VAR}"`
			break
		}
	}
	return e
}

func finish(l *loader, cfg *Config) (*Config, error) {
	cfg.fallbacks = l.fallbacks
	cfg.applySourceDefaults()
	cfg.resolvePaths()
	reported := map[rules.Pos]bool{}
	for _, e := range l.errs {
		reported[e.Pos] = true
	}
	for _, fe := range append(cfg.readSecretFiles(), cfg.Validate()...) {
		if pos := l.where(fe.Path); !reported[pos] {
			l.errs = append(l.errs, &rules.Error{Pos: pos, Msg: fe.Error()})
		}
	}
	if len(l.errs) > 0 {
		l.errs.Sort()
		return nil, l.errs
	}
	for _, fe := range cfg.Lint() {
		cfg.warnings = append(cfg.warnings, &rules.Error{Pos: l.where(fe.Path), Msg: fe.Error()})
	}
	cfg.warnings.Sort()
	return cfg, nil
}

// Warnings are the weak settings Lint finds, at their place in the file.
func (c *Config) Warnings() rules.ErrorList { return c.warnings }

// secretFile is a key that names a file holding a secret, read in place
// of the value it stands for: Alertmanager's convention, so that a mounted
// Kubernetes or Docker secret needs no environment variable.
type secretFile struct {
	key      string // "nats.password_file"
	file     string
	valueSet bool // the value is written out too
	lines    bool // one secret a line (webhook secrets: several while rotating)
	store    func([]string)
}

// secretFiles lists the *_file keys the file sets.
func (c *Config) secretFiles() []secretFile {
	one := func(dst *string) func([]string) { return func(v []string) { *dst = v[0] } }
	var out []secretFile
	for _, f := range []secretFile{
		{key: "nats.password_file", file: c.NATS.PasswordFile, valueSet: c.NATS.Password != "", store: one(&c.NATS.Password)},
		{key: "nats.token_file", file: c.NATS.TokenFile, valueSet: c.NATS.Token != "", store: one(&c.NATS.Token)},
		{key: "intercom.token_file", file: c.Intercom.TokenFile, valueSet: c.Intercom.Token != "", store: one(&c.Intercom.Token)},
		{key: "admin.auth.bearer_file", file: c.Admin.Auth.BearerFile, valueSet: c.Admin.Auth.Bearer != "", store: one(&c.Admin.Auth.Bearer)},
		{key: "admin.auth.basic.password_file", file: c.Admin.Auth.Basic.PasswordFile, valueSet: c.Admin.Auth.Basic.Password != "",
			store: one(&c.Admin.Auth.Basic.Password)},
	} {
		if f.file != "" {
			out = append(out, f)
		}
	}
	for i := range c.Sources {
		if w := c.Sources[i].Webhook; w != nil && w.Auth.SecretFile != "" {
			a := &w.Auth
			out = append(out, secretFile{key: fmt.Sprintf("sources[%d].webhook.auth.secret_file", i), file: a.SecretFile,
				valueSet: len(a.AllSecrets()) > 0, lines: true, store: func(v []string) { a.Secrets = v }})
		}
	}
	return out
}

// readSecretFiles reads every *_file key into the value it stands for.
func (c *Config) readSecretFiles() []FieldError {
	var errs []FieldError
	for _, f := range c.secretFiles() {
		if f.valueSet {
			errs = append(errs, FieldError{Path: f.key, Msg: "set either the value or the file, not both"})
			continue
		}
		v, err := readSecret(f.file, f.lines)
		if err != nil {
			errs = append(errs, FieldError{Path: f.key, Msg: err.Error()})
			continue
		}
		f.store(v)
	}
	return errs
}

// ReadWebhookSecretFiles reads the secret_file of every webhook source
// again, for SIGHUP: the secrets by source, or every problem at its key.
// The Config is left as it is.
func (c *Config) ReadWebhookSecretFiles() (map[string][]string, error) {
	out := map[string][]string{}
	var errs []error
	for _, s := range c.Sources {
		if s.Webhook == nil || s.Webhook.Auth.SecretFile == "" {
			continue
		}
		v, err := readSecret(s.Webhook.Auth.SecretFile, true)
		if err != nil {
			errs = append(errs, fmt.Errorf("source %s: secret_file: %w", s.Name, err))
			continue
		}
		out[s.Name] = v
	}
	return out, errors.Join(errs...)
}

// readSecret reads a secret file: the whole of it but a trailing line
// break, or with lines every line that is not blank. A missing or empty
// file is an error that names it.
func readSecret(file string, lines bool) ([]string, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, err // names the file
	}
	var out []string
	if lines {
		for _, l := range strings.Split(string(data), "\n") {
			if l = strings.TrimRight(l, "\r"); strings.TrimSpace(l) != "" {
				out = append(out, l)
			}
		}
	} else if v := strings.TrimRight(string(data), "\r\n"); v != "" {
		out = []string{v}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s is empty", file)
	}
	return out, nil
}

// resolvePaths makes relative paths in the file relative to its directory,
// so that the bridge finds its rules wherever it is started from.
func (c *Config) resolvePaths() {
	dir := filepath.Dir(c.path)
	abs := func(p *string) {
		if *p != "" && !filepath.IsAbs(*p) {
			*p = filepath.Join(dir, *p)
		}
	}
	abs(&c.DataDir)
	abs(&c.NATS.Creds)
	abs(&c.NATS.PasswordFile)
	abs(&c.NATS.TokenFile)
	abs(&c.NATS.TLS.CA)
	abs(&c.NATS.TLS.Cert)
	abs(&c.NATS.TLS.Key)
	abs(&c.Intercom.TokenFile)
	abs(&c.Admin.Auth.BearerFile)
	abs(&c.Admin.Auth.Basic.PasswordFile)
	for _, s := range c.Sources {
		if s.Webhook != nil {
			abs(&s.Webhook.Auth.SecretFile)
		}
	}
	for i := range c.Rules.Paths {
		abs(&c.Rules.Paths[i])
	}
}

type loader struct {
	file      string
	errs      rules.ErrorList
	pos       map[string]rules.Pos  // key path -> position of its value
	byLine    map[int][]*yaml.Node  // line -> the values that start on it
	paths     map[*yaml.Node]string // value -> its key path
	fallbacks map[string]string     // value taken from a ${VAR:-fallback} -> VAR
}

func (l *loader) add(pos rules.Pos, format string, args ...any) {
	l.errs = append(l.errs, &rules.Error{Pos: pos, Msg: fmt.Sprintf(format, args...)})
}

func (l *loader) at(n *yaml.Node) rules.Pos {
	return rules.Pos{File: l.file, Line: n.Line, Col: n.Column}
}

var (
	lineRe       = regexp.MustCompile(`line (\d+)`)
	linePrefixRe = regexp.MustCompile(`^line \d+: `)
)

func (l *loader) lineOf(msg string) rules.Pos {
	var line int
	if m := lineRe.FindStringSubmatch(msg); m != nil {
		fmt.Sscan(m[1], &line)
	}
	return rules.Pos{File: l.file, Line: max(line, 1)}
}

// valueAt places a decoder message ("line 5: cannot unmarshal !!str `abc`
// into int") at the value it is about, the one on its line whose text it
// quotes, else the line's first, and returns that value's key path.
func (l *loader) valueAt(msg string) (rules.Pos, string) {
	pos, path := l.lineOf(msg), ""
	text := stripYAMLPrefix(msg)
	for i, n := range l.byLine[pos.Line] {
		quoted := n.Kind == yaml.ScalarNode && (strings.Contains(text, "`"+n.Value+"`") || strings.Contains(text, strconv.Quote(n.Value)))
		collection := (n.Kind == yaml.SequenceNode && strings.Contains(text, "!!seq")) || (n.Kind == yaml.MappingNode && strings.Contains(text, "!!map"))
		if i == 0 || quoted || (collection && l.paths[n] != "") {
			pos, path = l.at(n), l.paths[n]
		}
	}
	return pos, path
}

var unmarshalRe = regexp.MustCompile("^cannot unmarshal !!(\\w+) (`[^`]*` )?into (\\S+)$")

// typeMessage names the key of a decoder message and, for "cannot
// unmarshal !!str `many` into int", says what the key wants instead.
func typeMessage(path, msg string) string {
	if path == "" {
		return msg
	}
	m := unmarshalRe.FindStringSubmatch(msg)
	if m == nil {
		return path + ": " + msg
	}
	want := "a " + m[3]
	switch {
	case strings.HasPrefix(m[3], "int"), strings.HasPrefix(m[3], "uint"):
		want = "a whole number"
	case m[3] == "bool":
		want = "true or false"
	case strings.HasPrefix(m[3], "[]"):
		want = "a list"
	case strings.HasPrefix(m[3], "config."), strings.HasPrefix(m[3], "map["):
		want = "a mapping"
	}
	got := map[string]string{"seq": "a list", "map": "a mapping", "null": "nothing"}[m[1]]
	if got == "" {
		got = strconv.Quote(strings.Trim(m[2], "` "))
	}
	return fmt.Sprintf("%s: wants %s, not %s", path, want, got)
}

func stripYAMLPrefix(msg string) string {
	msg = strings.TrimPrefix(msg, "yaml: ")
	return linePrefixRe.ReplaceAllString(msg, "")
}

// where finds the position of a key path, or of its closest parent that the
// file has; a key the file leaves out is reported at the file's start.
func (l *loader) where(path string) rules.Pos {
	for p := path; p != ""; {
		if pos, ok := l.pos[p]; ok {
			return pos
		}
		i := strings.LastIndexAny(p, ".[")
		if i < 0 {
			break
		}
		p = p[:i]
	}
	return rules.Pos{File: l.file, Line: 1, Col: 1}
}

// envRe matches ${NAME} and ${NAME:-default}; $$ is a literal $.
var envRe = regexp.MustCompile(`\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}`)

// expand replaces ${VAR} in every scalar value (never in keys). An unset
// variable without a default is an error that names it. Expanding values in
// the parsed tree, rather than the text, keeps line numbers and stops a
// variable from injecting YAML structure.
func (l *loader) expand(n *yaml.Node, lookupEnv func(string) (string, bool)) {
	switch n.Kind {
	case yaml.MappingNode:
		for i := 1; i < len(n.Content); i += 2 {
			l.expand(n.Content[i], lookupEnv)
		}
	case yaml.SequenceNode, yaml.DocumentNode:
		for _, c := range n.Content {
			l.expand(c, lookupEnv)
		}
	case yaml.ScalarNode:
		if !strings.Contains(n.Value, "$") {
			return
		}
		n.Value = envRe.ReplaceAllStringFunc(n.Value, func(m string) string {
			if m == "$$" {
				return "$"
			}
			sub := envRe.FindStringSubmatch(m)
			if v, ok := lookupEnv(sub[1]); ok && v != "" {
				return v
			}
			if strings.Contains(m, ":-") {
				if sub[2] != "" {
					l.fallbacks[sub[2]] = sub[1]
				}
				return sub[2]
			}
			l.add(l.at(n), "environment variable %s is not set", sub[1])
			return ""
		})
		if n.Style == 0 {
			n.Tag = "" // a plain scalar: let the expanded text decide its type
		}
	}
}

// checkKeys reports unknown and duplicate keys against the struct the node
// decodes into, and records where each key's value is.
func (l *loader) checkKeys(n *yaml.Node, t reflect.Type, path string) {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	l.pos[path] = l.at(n)
	l.byLine[n.Line] = append(l.byLine[n.Line], n)
	l.paths[n] = path
	switch t.Kind() {
	case reflect.Struct:
		if n.Kind != yaml.MappingNode {
			return // the decoder reports the wrong type
		}
		fields := map[string]reflect.Type{}
		for i := range t.NumField() {
			f := t.Field(i)
			if tag, _, _ := strings.Cut(f.Tag.Get("yaml"), ","); tag != "" && tag != "-" {
				fields[tag] = f.Type
			}
		}
		seen := map[string]int{}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			key := join(path, k.Value)
			if line, dup := seen[k.Value]; dup {
				l.add(l.at(k), "%s: duplicate key (first at line %d)", key, line)
				continue
			}
			seen[k.Value] = k.Line
			ft, ok := fields[k.Value]
			if !ok {
				known := make([]string, 0, len(fields))
				for name := range fields {
					known = append(known, name)
				}
				sort.Strings(known)
				l.add(l.at(k), "%s: unknown key (known keys here: %s)", key, strings.Join(known, ", "))
				continue
			}
			l.checkKeys(v, ft, key)
		}
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			return
		}
		for i, item := range n.Content {
			l.checkKeys(item, t.Elem(), fmt.Sprintf("%s[%d]", path, i))
		}
	}
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}
