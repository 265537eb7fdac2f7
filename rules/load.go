package rules

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Options are what a rule set needs from outside the rule files.
type Options struct {
	// DefaultAdminID is the admin a message is sent from when its rule
	// names none (the config's intercom.default_admin_id).
	DefaultAdminID string
	// Sources, when not nil, are the configured source names; a rule that
	// names another source is an error.
	Sources []string
	// NoRecipientLists refuses what the configured Intercom version cannot
	// send: a list under message.to, and message.cc and message.bcc (they
	// need 2.14 or later). IntercomVersion names that version in the error.
	NoRecipientLists bool
	IntercomVersion  string
	// MaxDelay, when not zero, is the longest a message may wait (the
	// events stream's max_age): a schedule whose delay is longer is an
	// error at load.
	MaxDelay time.Duration
}

// File is one rule file's name and content.
type File struct {
	Name string
	Data []byte
}

// IsTestFile reports whether name is a rule test file (*.test.yaml).
func IsTestFile(name string) bool {
	base := filepath.Base(name)
	return strings.HasSuffix(base, ".test.yaml") || strings.HasSuffix(base, ".test.yml")
}

func isYAML(name string) bool {
	return strings.HasSuffix(name, ".yaml") || strings.HasSuffix(name, ".yml")
}

// hidden reports names that editors and tools leave beside real files.
func hidden(name string) bool {
	return strings.HasPrefix(name, ".") || strings.HasPrefix(name, "#") || strings.HasSuffix(name, "~")
}

// Discover lists the rule files and test files under paths. A path may be a
// file or a directory, walked recursively for *.yaml and *.yml files; hidden
// files and directories are skipped. Both lists are sorted.
func Discover(paths []string) (ruleFiles, testFiles []string, err error) {
	seen := map[string]bool{}
	add := func(p string) {
		if seen[p] {
			return
		}
		seen[p] = true
		if IsTestFile(p) {
			testFiles = append(testFiles, p)
		} else {
			ruleFiles = append(ruleFiles, p)
		}
	}
	for _, root := range paths {
		info, err := os.Stat(root)
		if err != nil {
			return nil, nil, fmt.Errorf("rules: %w", err)
		}
		if !info.IsDir() {
			add(filepath.Clean(root))
			continue
		}
		err = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if p != root && hidden(d.Name()) {
				if d.IsDir() {
					return filepath.SkipDir
				}
				return nil
			}
			if !d.IsDir() && isYAML(d.Name()) {
				add(p)
			}
			return nil
		})
		if err != nil {
			return nil, nil, fmt.Errorf("rules: walk %s: %w", root, err)
		}
	}
	sort.Strings(ruleFiles)
	sort.Strings(testFiles)
	return ruleFiles, testFiles, nil
}

// Load reads and compiles the rule files under paths. The error, if any, is
// an ErrorList with every problem in every file.
func Load(paths []string, opts Options) (*Set, error) {
	names, _, err := Discover(paths)
	if err != nil {
		return nil, err
	}
	return LoadFiles(names, opts)
}

// LoadFiles reads and compiles the named rule files, as Discover lists them.
func LoadFiles(names []string, opts Options) (*Set, error) {
	files := make([]File, 0, len(names))
	for _, name := range names {
		data, err := os.ReadFile(name)
		if err != nil {
			return nil, fmt.Errorf("rules: %w", err)
		}
		files = append(files, File{Name: name, Data: data})
	}
	return Parse(files, opts)
}

// Parse compiles rule files already in memory.
func Parse(files []File, opts Options) (*Set, error) {
	var errs ErrorList
	var all []*Rule
	byName := map[string]*Rule{}
	h := sha256.New()
	for _, f := range files {
		fmt.Fprintf(h, "%s\x00%d\x00", f.Name, len(f.Data))
		h.Write(f.Data)
		for _, r := range parseFile(f, opts, &errs) {
			if prev, dup := byName[r.Name]; dup {
				errs.add(r.Pos, "rule %q is defined twice: here and at %s", r.Name, prev.Pos)
				continue
			}
			byName[r.Name] = r
			all = append(all, r)
		}
	}
	if len(errs) > 0 {
		errs.Sort()
		return nil, errs
	}
	return newSet(all, hex.EncodeToString(h.Sum(nil))), nil
}

// parseFile decodes one file's rules; a rule with errors is left out and
// its errors added to errs.
func parseFile(f File, opts Options, errs *ErrorList) []*Rule {
	src := newSource(f.Name, f.Data)
	doc, err := parseYAML(f.Data)
	if err != nil {
		*errs = append(*errs, YAMLError(f, err))
		return nil
	}
	if doc == nil { // an empty file holds no rules
		return nil
	}
	d := &decoder{src: src, errs: errs}
	var out []*Rule
	d.fields(doc, "the file", map[string]func(*yaml.Node){
		"rules": func(n *yaml.Node) {
			if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
				return
			}
			if n.Kind != yaml.SequenceNode {
				d.errorf(n, "rules must be a list, got %s", kindName(n))
				return
			}
			for _, item := range n.Content {
				if r := compileRule(d, item, opts); r != nil {
					out = append(out, r)
				}
			}
		},
	})
	return out
}

// parseYAML parses one YAML document into a node tree. A panic inside the
// parser becomes an error: a rule file must never crash the bridge.
func parseYAML(data []byte) (doc *yaml.Node, err error) {
	defer func() {
		if r := recover(); r != nil {
			doc, err = nil, fmt.Errorf("yaml: parser failed: %v", r)
		}
	}()
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return nil, err
	}
	if root.Kind == 0 || len(root.Content) == 0 {
		return nil, nil
	}
	return root.Content[0], nil
}

// YAMLError places a yaml.v3 syntax error ("yaml: line 3: ...") at the
// line that is wrong, as "invalid YAML: ...". The parser names the line
// before the construct it was reading (it counts those from zero), and for
// a block collection that construct starts above the wrong line; the most
// common mistake, a tab in the indentation, is found in the file instead.
func YAMLError(f File, err error) *Error {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	line := 0
	if rest, ok := strings.CutPrefix(msg, "line "); ok {
		if n, after, ok := strings.Cut(rest, ": "); ok {
			if _, scanErr := fmt.Sscan(n, &line); scanErr == nil {
				msg = after
			}
		}
	}
	lines := strings.Split(string(f.Data), "\n")
	if strings.Contains(msg, "tab character") {
		for i, text := range lines {
			indent := text[:len(text)-len(strings.TrimLeft(text, " \t"))]
			if j := strings.IndexByte(indent, '\t'); j >= 0 {
				return &Error{Pos: Pos{File: f.Name, Line: i + 1, Col: j + 1}, Msg: "invalid YAML: " + msg}
			}
		}
	}
	pos := Pos{File: f.Name, Line: max(line, 1), Col: 1}
	if strings.HasPrefix(msg, "did not find expected ") && slices.Contains(parserErrors, strings.TrimPrefix(msg, "did not find expected ")) {
		pos.Line = line + 1
		pos.Line, pos.Col = misfit(lines, pos.Line, msg)
	}
	return &Error{Pos: pos, Msg: "invalid YAML: " + msg}
}

// parserErrors end the yaml.v3 parser's messages "did not find expected
// ...": those count lines from zero. The scanner's count from one.
var parserErrors = []string{"<document start>", "node content", "key", "'-' indicator", "',' or ']'", "',' or '}'"}

// misfit finds, from the line where a block mapping or sequence starts,
// the first line at its indentation that does not belong to it: a list
// item in a mapping, a key in a list. It returns the line and its column.
func misfit(lines []string, start int, msg string) (int, int) {
	if start > len(lines) {
		return start, 1
	}
	indentOf := func(s string) int { return len(s) - len(strings.TrimLeft(s, " ")) }
	want := indentOf(lines[start-1])
	isKey, isItem := strings.HasSuffix(msg, "key"), strings.HasSuffix(msg, "'-' indicator")
	for i := start; (isKey || isItem) && i < len(lines); i++ {
		text := strings.TrimSpace(lines[i])
		if text == "" || strings.HasPrefix(text, "#") || indentOf(lines[i]) > want {
			continue
		}
		if indentOf(lines[i]) < want {
			break
		}
		if item := strings.HasPrefix(text, "- ") || text == "-"; item == isKey {
			return i + 1, want + 1
		}
	}
	return start, indentOf(lines[start-1]) + 1
}
