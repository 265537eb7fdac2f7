package intercomtest

import (
	"embed"
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"sync"

	"github.com/intercom-bridge/bridge/intercom"
	"gopkg.in/yaml.v3"
)

// The descriptions Intercom publishes, one per version that changed what the
// fake serves; see openapi/README.md.
//
//go:embed openapi/*.yaml
var descriptions embed.FS

// descriptionFile is the file describing a version the fake serves: the
// versions the client supports.
func descriptionFile(version string) string {
	switch version {
	case "2.11", "2.12", "2.13":
		return "openapi/intercom-2.11.yaml"
	case "2.14", "2.15":
		return "openapi/intercom-2.14.yaml"
	case "2.16":
		return "openapi/intercom-2.16.yaml"
	}
	return ""
}

// defaultVersion is the version of a request without an Intercom-Version
// header. Intercom uses the version set in the app's settings; the fake
// stands for an app set to the description's own default, 2.14, which is
// also the client's intercom.DefaultVersion.
const defaultVersion = "2.14"

// contract is the published contract of one version, with the corrections
// the live API needs.
type contract struct {
	version string
	doc     schema
	v       *validator

	// required lists, per message_type, the fields a message of that type
	// needs: the description's anyOf branches, told apart by type.
	required map[string][]string
}

// contracts loads every served version once; the result is never modified.
var contracts = sync.OnceValues(func() (map[string]*contract, error) {
	out := make(map[string]*contract)
	for _, version := range intercom.SupportedVersions() {
		file := descriptionFile(version)
		if file == "" {
			return nil, fmt.Errorf("intercomtest: no description of version %s", version)
		}
		c, err := loadContract(version, file)
		if err != nil {
			return nil, err
		}
		out[version] = c
	}
	return out, nil
})

func loadContract(version, file string) (*contract, error) {
	data, err := descriptions.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("intercomtest: %w", err)
	}
	var doc schema
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("intercomtest: %s: %w", file, err)
	}
	c := &contract{version: version, doc: doc, v: &validator{doc: doc}, required: map[string][]string{}}
	if err := c.correct(); err != nil {
		return nil, fmt.Errorf("intercomtest: %s for %s: %w", file, version, err)
	}
	return c, nil
}

// branchTitle matches the title of an anyOf branch of a message:
// "message_type: `email`."
var branchTitle = regexp.MustCompile("message_type: `([a-z_]+)`")

// correct applies what the live API and the official SDKs do where the
// description is wrong (Intercom's descriptions README, "What the live API
// and the official SDKs do").
func (c *contract) correct() error {
	msg, ok := dig(c.doc, "components", "schemas", "create_message_request")
	if !ok {
		return fmt.Errorf("no create_message_request schema")
	}
	props, _ := msg["properties"].(schema)

	// The request enum says in_app; the response enum, the docs and the
	// SDKs say inapp, which is what Intercom accepts.
	if mt, ok := props["message_type"].(schema); ok {
		if enum, ok := mt["enum"].([]any); ok {
			for i, e := range enum {
				if e == "in_app" {
					enum[i] = "inapp"
				}
			}
		}
	}

	from, _ := props["from"].(schema)
	fromProps, _ := from["properties"].(schema)
	// from.id is typed integer; the docs' curl examples send a digit
	// string, and both work.
	fromProps["id"] = schema{"oneOf": []any{
		schema{"type": "integer"},
		schema{"type": "string", "pattern": "^[0-9]+$"},
	}}
	// 2.12 and 2.13 are described by the 2.11 file but narrow from.type
	// back to admin, as 2.14 writes down.
	if c.version == "2.12" || c.version == "2.13" {
		if ft, ok := fromProps["type"].(schema); ok {
			ft["enum"] = []any{"admin"}
		}
	}

	// The anyOf branches are not told apart by message type, so an email
	// without a template passes as an in-app message. Read each branch as
	// the fields its message type requires.
	branches, _ := msg["anyOf"].([]any)
	for _, b := range branches {
		b, _ := b.(schema)
		title, _ := b["title"].(string)
		m := branchTitle.FindStringSubmatch(title)
		if m == nil {
			return fmt.Errorf("anyOf branch %q names no message_type", title)
		}
		for _, r := range b["required"].([]any) {
			c.required[m[1]] = append(c.required[m[1]], r.(string))
		}
	}
	if len(c.required) == 0 {
		return fmt.Errorf("create_message_request has no anyOf branches")
	}
	delete(msg, "anyOf")
	return nil
}

// dig walks doc through keys to a schema.
func dig(doc schema, keys ...string) (schema, bool) {
	node := doc
	for _, k := range keys {
		next, ok := node[k].(schema)
		if !ok {
			return nil, false
		}
		node = next
	}
	return node, true
}

// has reports whether the description has the operation: method on the path
// template ("/contacts/{contact_id}").
func (c *contract) has(method, path string) bool {
	_, ok := dig(c.doc, "paths", path, strings.ToLower(method))
	return ok
}

// requestSchema is the schema of the JSON body of an operation.
func (c *contract) requestSchema(method, path string) (schema, bool) {
	return dig(c.doc, "paths", path, strings.ToLower(method), "requestBody", "content", "application/json", "schema")
}

// checkBody validates a request body against its operation's schema.
func (c *contract) checkBody(method, path string, body any) *apiError {
	s, ok := c.requestSchema(method, path)
	if !ok {
		return nil
	}
	return fromViolations(c.v.validate(s, body))
}

// checkMessage validates a POST /messages body, reporting problems as
// Intercom does: a missing body first, then a missing subject (Intercom's
// own examples of those two errors are otherwise invalid too), then every
// violation of the schema.
func (c *contract) checkMessage(body any) *apiError {
	m, ok := body.(map[string]any)
	if !ok {
		return invalid("", "The request body must be a JSON object")
	}
	mt, _ := m["message_type"].(string)
	required, known := c.required[mt]
	if !known {
		required = c.required["inapp"]
	}
	needs := func(field string) bool { return slices.Contains(required, field) }
	if needs("body") && blank(m["body"]) {
		return invalid("body", "Body is required")
	}
	if needs("subject") && blank(m["subject"]) {
		return &apiError{status: http.StatusUnprocessableEntity, details: []detail{{Code: "parameter_not_found", Message: "No subject supplied for email message", Field: "subject"}}}
	}
	vs := c.v.validate(c.mustRequest("POST", "/messages"), body)
	for _, f := range required {
		if _, present := m[f]; !present {
			msg := "is required"
			if known {
				msg += " for " + mt + " messages"
			}
			vs = append(vs, violation{f, msg})
		}
	}
	if mt == "email" {
		if t, ok := m["template"].(string); ok && t != "plain" && t != "personal" {
			vs = append(vs, violation{"template", fmt.Sprintf("must be plain or personal, not %q", t)})
		}
	}
	return fromViolations(vs)
}

func (c *contract) mustRequest(method, path string) schema {
	s, ok := c.requestSchema(method, path)
	if !ok {
		panic("intercomtest: the description of " + c.version + " has no body for " + method + " " + path)
	}
	return s
}

// blank reports whether a field is missing, null or white space.
func blank(v any) bool {
	s, isString := v.(string)
	return v == nil || (isString && strings.TrimSpace(s) == "")
}

// fromViolations is the 400 answer listing vs, or nil.
func fromViolations(vs []violation) *apiError {
	if len(vs) == 0 {
		return nil
	}
	e := &apiError{status: http.StatusBadRequest}
	for _, v := range vs {
		e.details = append(e.details, detail{Code: "parameter_invalid", Message: v.String(), Field: v.path})
	}
	return e
}

// describedMessage decodes the fields of a message body that the
// description of c lists, ignoring the others.
func (c *contract) describedMessage(body any) (*intercom.Message, error) {
	s, err := c.v.resolve(c.mustRequest("POST", "/messages"))
	if err != nil {
		return nil, err
	}
	props, _ := s["properties"].(schema)
	in, _ := body.(map[string]any)
	described := make(map[string]any, len(in))
	for k, v := range in {
		if _, ok := props[k]; ok {
			described[k] = v
		}
	}
	data, err := json.Marshal(described)
	if err != nil {
		return nil, err
	}
	var m intercom.Message
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, err
	}
	return &m, nil
}
