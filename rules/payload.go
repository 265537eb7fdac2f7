package rules

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math"
)

// DecodeJSON decodes an event payload the way rules expect to see it:
// objects as map[string]any, whole numbers that fit as int64 (so that ids
// print as 1000000, not 1e+06), other numbers as float64.
func DecodeJSON(data []byte) (any, error) {
	if v, ok := readJSON(data); ok {
		return v, nil
	}
	return decodeJSONReflect(data)
}

// decodeJSONReflect is DecodeJSON by encoding/json: the reference
// readJSON is checked against, and the reader of what readJSON leaves.
func decodeJSONReflect(data []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, fmt.Errorf("unexpected data after the JSON value")
	}
	return Normalize(v), nil
}

// Normalize converts decoded JSON or YAML values to the types rules use:
// json.Number and int become int64 or float64, map[any]any becomes
// map[string]any.
func Normalize(v any) any {
	switch x := v.(type) {
	case json.Number:
		if n, err := x.Int64(); err == nil {
			return n
		}
		f, err := x.Float64()
		if err != nil {
			return x.String()
		}
		return f
	case int:
		return int64(x)
	case uint64:
		if x <= math.MaxInt64 {
			return int64(x)
		}
		return float64(x)
	case float32:
		return float64(x)
	case []any:
		for i := range x {
			x[i] = Normalize(x[i])
		}
		return x
	case map[string]any:
		for k, e := range x {
			x[k] = Normalize(e)
		}
		return x
	case map[any]any:
		m := make(map[string]any, len(x))
		for k, e := range x {
			m[fmt.Sprint(k)] = Normalize(e)
		}
		return m
	}
	return v
}
