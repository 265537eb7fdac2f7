package ingest

import (
	"errors"
	"net/url"
)

// decodeForm returns the JSON event of a form-encoded body, as GitHub
// sends it with content type application/x-www-form-urlencoded:
// "payload=<URL-encoded JSON>" and nothing else. The signature covers the
// form as sent; what is stored is the JSON.
func decodeForm(body []byte) ([]byte, error) {
	values, err := url.ParseQuery(string(body))
	if err != nil {
		return nil, errors.New("form body is not URL-encoded")
	}
	payload := values["payload"]
	if len(values) != 1 || len(payload) != 1 {
		return nil, errors.New("form body must hold one field, payload=<JSON>, as GitHub sends it")
	}
	return []byte(payload[0]), nil
}
