package intercomtest

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/intercom-bridge/bridge/intercom"
)

// contactJSON is a contact as Intercom answers it, with the fields the fake
// knows; the others of the description are left out.
type contactJSON struct {
	Type        string  `json:"type"`
	ID          string  `json:"id"`
	WorkspaceID string  `json:"workspace_id"`
	ExternalID  *string `json:"external_id"`
	Role        string  `json:"role"`
	Email       *string `json:"email"`
	CreatedAt   int64   `json:"created_at"`
	UpdatedAt   int64   `json:"updated_at"`
	SignedUpAt  int64   `json:"signed_up_at"`
}

func (c contact) json() contactJSON {
	orNull := func(s string) *string {
		if s == "" {
			return nil
		}
		return &s
	}
	t := c.createdAt.Unix()
	return contactJSON{
		Type: "contact", ID: c.ID, WorkspaceID: "fake", ExternalID: orNull(c.ExternalID),
		Role: c.Role, Email: orNull(c.Email), CreatedAt: t, UpdatedAt: t, SignedUpAt: t,
	}
}

// GET /contacts/{id}
func (s *Server) getContact(a *answer, id string) {
	s.mu.Lock()
	c, ok := s.contactByID(id)
	if !ok && s.permissive {
		// A trial run names contacts the fake never heard of: make it a
		// user, the role a message to an unknown id is accepted as.
		s.putContact(intercom.Contact{ID: id, Role: intercom.RecipientUser})
		c, ok = s.contactByID(id)
	}
	s.mu.Unlock()
	if !ok {
		a.reject(notFound("", "User Not Found"))
		return
	}
	a.json(http.StatusOK, c.json())
}

// GET /contacts/find_by_external_id/{id}: users only, as the description
// says.
func (s *Server) findByExternalID(a *answer, externalID string) {
	s.mu.Lock()
	var found *contact
	for i := range s.contacts {
		if c := &s.contacts[i]; c.Role == intercom.RecipientUser && c.ExternalID == externalID {
			found = c
			break
		}
	}
	if found == nil && s.permissive {
		// As a permissive search does: the user now exists.
		id := newContactID()
		s.putContact(intercom.Contact{ID: id, Role: intercom.RecipientUser, ExternalID: externalID})
		c, _ := s.contactByID(id)
		found = &c
	}
	var out contactJSON
	if found != nil {
		out = found.json()
	}
	s.mu.Unlock()
	if found == nil {
		a.reject(notFound("", "User Not Found"))
		return
	}
	a.json(http.StatusOK, out)
}

// Pagination of search answers.
const (
	defaultPerPage = 50
	maxPerPage     = 150
)

// POST /contacts/search. The fake searches on id, external_id, email,
// role and created_at; other fields of the description are refused, so that
// a test never relies on a filter the fake quietly ignores.
func (s *Server) searchContacts(a *answer, c *contract, v any) {
	if e := c.checkBody(http.MethodPost, opSearch, v); e != nil {
		a.reject(e)
		return
	}
	body := v.(map[string]any)
	q := body["query"]
	if e := checkQuery(q, "query"); e != nil {
		a.reject(e)
		return
	}
	perPage := defaultPerPage
	if p, ok := body["pagination"].(map[string]any); ok {
		if n, err := strconv.Atoi(fmt.Sprint(p["per_page"])); err == nil && n > 0 {
			perPage = min(n, maxPerPage)
		}
	}

	s.mu.Lock()
	var hits []contactJSON
	for _, ct := range s.contacts {
		if matches(q, ct) {
			hits = append(hits, ct.json())
		}
	}
	if len(hits) == 0 && s.permissive {
		if nc, ok := contactFor(q); ok {
			nc.ID = newContactID()
			s.putContact(nc)
			created, _ := s.contactByID(nc.ID)
			hits = append(hits, created.json())
		}
	}
	s.mu.Unlock()

	total := len(hits)
	a.json(http.StatusOK, struct {
		Type       string        `json:"type"`
		Data       []contactJSON `json:"data"`
		TotalCount int           `json:"total_count"`
		Pages      any           `json:"pages"`
	}{"list", append([]contactJSON{}, hits[:min(total, perPage)]...), total, map[string]any{
		"type": "pages", "page": 1, "per_page": perPage, "total_pages": (total + perPage - 1) / perPage,
	}})
}

// searchOperators are the operators the fake evaluates on a field; none for
// a field it does not search on.
func searchOperators(field string) []string {
	switch field {
	case "id", "external_id", "email":
		return []string{"=", "!=", "IN", "NIN"}
	case "role":
		return []string{"=", "!="}
	case "created_at":
		return []string{"=", ">", "<"}
	}
	return nil
}

// checkQuery refuses a query the schema accepts but the fake cannot
// evaluate.
func checkQuery(q any, path string) *apiError {
	f, _ := q.(map[string]any)
	if list, ok := f["value"].([]any); ok && f["field"] == nil {
		for i, sub := range list {
			if e := checkQuery(sub, fmt.Sprintf("%s.value[%d]", path, i)); e != nil {
				return e
			}
		}
		if op := f["operator"]; op != "AND" && op != "OR" {
			return invalid(path+".operator", "operator must be AND or OR to combine filters")
		}
		return nil
	}
	field, _ := f["field"].(string)
	ops := searchOperators(field)
	if ops == nil {
		return invalid(path+".field", "the fake does not search on %q (it searches on id, external_id, email, role and created_at)", field)
	}
	if op, _ := f["operator"].(string); !slices.Contains(ops, op) {
		return invalid(path+".operator", "operator %q is not supported on %s (use one of %s)", op, field, strings.Join(ops, " "))
	}
	return nil
}

// matches evaluates a query checkQuery accepted.
func matches(q any, c contact) bool {
	f, _ := q.(map[string]any)
	if f["field"] == nil {
		list, _ := f["value"].([]any)
		and := f["operator"] == "AND"
		for _, sub := range list {
			if matches(sub, c) != and {
				return !and
			}
		}
		return and
	}
	field, _ := f["field"].(string)
	op, _ := f["operator"].(string)
	if field == "created_at" {
		return matchTime(op, f["value"], c.createdAt)
	}
	var have string
	switch field {
	case "id":
		have = c.ID
	case "external_id":
		have = c.ExternalID
	case "email":
		have = c.Email
	case "role":
		have = c.Role
	}
	eq := func(want any) bool {
		w := scalar(want)
		if field == "email" {
			return have != "" && strings.EqualFold(have, w)
		}
		return have != "" && have == w
	}
	switch op {
	case "=":
		return eq(f["value"])
	case "!=":
		return !eq(f["value"])
	case "IN", "NIN":
		list, _ := f["value"].([]any)
		return slices.ContainsFunc(list, eq) == (op == "IN")
	}
	return false
}

// matchTime compares a contact's creation with unix seconds; = matches the
// same (UTC) day, as Intercom matches dates by day.
func matchTime(op string, value any, t time.Time) bool {
	sec, err := strconv.ParseInt(scalar(value), 10, 64)
	if err != nil {
		return false
	}
	day := func(x time.Time) time.Time { return x.UTC().Truncate(24 * time.Hour) }
	v := time.Unix(sec, 0)
	switch op {
	case "=":
		return day(t).Equal(day(v))
	case ">":
		return !day(t).Before(day(v).Add(24 * time.Hour))
	case "<":
		return day(t).Before(day(v))
	}
	return false
}

func scalar(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case json.Number:
		return string(x)
	case nil:
		return ""
	}
	return fmt.Sprint(v)
}

// contactFor is the contact a permissive fake creates for a search that
// found nobody: a user for an external_id, a lead for an email (leads are
// who Intercom knows only by email). Only = filters, alone or joined by AND,
// name someone.
func contactFor(q any) (intercom.Contact, bool) {
	f, _ := q.(map[string]any)
	filters := []any{q}
	if f["field"] == nil {
		if f["operator"] != "AND" {
			return intercom.Contact{}, false
		}
		filters, _ = f["value"].([]any)
	}
	var c intercom.Contact
	for _, sub := range filters {
		sf, _ := sub.(map[string]any)
		if sf["operator"] != "=" {
			continue
		}
		switch sf["field"] {
		case "external_id":
			c.ExternalID = scalar(sf["value"])
		case "email":
			c.Email = scalar(sf["value"])
		}
	}
	switch {
	case c.ExternalID != "":
		c.Role = intercom.RecipientUser
	case c.Email != "":
		c.Role = intercom.RecipientLead
	default:
		return intercom.Contact{}, false
	}
	return c, true
}
