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

// readSecretFiles reads nats.password_file and nats.token_file into the
// values they stand for. A trailing line break is not part of the secret.
func (c *Config) readSecretFiles() []FieldError {
	var errs []FieldError
	for _, f := range []struct {
		key, file string
		value     *string
	}{
		{"nats.password_file", c.NATS.PasswordFile, &c.NATS.Password},
		{"nats.token_file", c.NATS.TokenFile, &c.NATS.Token},
	} {
		if f.file == "" {
			continue
		}
		if *f.value != "" {
			errs = append(errs, FieldError{Path: f.key, Msg: "set either the value or the file, not both"})
			continue
		}
		data, err := os.ReadFile(f.file)
		if err != nil {
			errs = append(errs, FieldError{Path: f.key, Msg: err.Error()})
			continue
		}
		if *f.value = strings.TrimRight(string(data), "\r\n"); *f.value == "" {
			errs = append(errs, FieldError{Path: f.key, Msg: f.file + " is empty"})
		}
	}
	return errs
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
