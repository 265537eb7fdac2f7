package rules

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/intercom-bridge/bridge/internal/jsonout"
)

// funcs are the helpers every template can call. They accept any value an
// event can hold (JSON strings, numbers, booleans, lists, objects) and fail
// with a clear error rather than print something wrong.
func funcs() map[string]any {
	return map[string]any{
		"default":     defaultValue,
		"optional":    optional,
		optionalFunc:  lookupOptional,
		printableFunc: printable,
		"upper":       func(v any) string { return strings.ToUpper(toString(v)) },
		"lower":       func(v any) string { return strings.ToLower(toString(v)) },
		"title":       func(v any) string { return title(toString(v)) },
		"trim":        func(v any) string { return strings.TrimSpace(toString(v)) },
		"truncate":    truncate,
		"join":        join,
		"date":        formatDate,
		"dateIn":      formatDateIn,
		"money":       money,
		"moneyMinor":  moneyMinor,
		"json":        toJSON,
	}
}

// optionalFunc is the internal helper that `default` and `optional` turn a
// field reference into, so that a missing field yields nil instead of an
// error. See rewriteTree.
const optionalFunc = "_optionalField"

// printableFunc is the internal helper that ends every printing action (see
// rewriteTree).
const printableFunc = "_printable"

// printable formats floats without an exponent and nil as nothing; other
// values print as they are.
func printable(v any) any {
	switch x := v.(type) {
	case nil:
		return ""
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64)
	}
	return v
}

// defaultValue returns def when v is missing (nil) or the empty string:
// {{ .event.name | default "there" }}.
func defaultValue(def, v any) any {
	if v == nil {
		return def
	}
	if s, ok := v.(string); ok && s == "" {
		return def
	}
	return v
}

// optional returns its argument, or nil when the field is missing:
// {{ with optional .event.coupon }}...{{ end }}.
func optional(v any) any { return v }

// lookupOptional walks path from dot through maps and returns nil where a
// key is missing.
func lookupOptional(dot any, path ...string) any {
	v := dot
	for _, key := range path {
		switch m := v.(type) {
		case map[string]any:
			v = m[key]
		case map[string]string:
			s, ok := m[key]
			if !ok {
				return nil
			}
			v = s
		default:
			return nil
		}
		if v == nil {
			return nil
		}
	}
	return v
}

// toString formats a value as a person would write it: integers without an
// exponent, floats in their shortest form, nil as the empty string.
func toString(v any) string {
	switch x := v.(type) {
	case nil:
		return ""
	case string:
		return x
	case int64:
		return strconv.FormatInt(x, 10)
	case int:
		return strconv.Itoa(x)
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64)
	case bool:
		return strconv.FormatBool(x)
	case time.Time:
		return x.Format(time.RFC3339)
	case fmt.Stringer:
		return x.String()
	}
	return fmt.Sprint(v)
}

func title(s string) string {
	prev := ' '
	return strings.Map(func(r rune) rune {
		defer func() { prev = r }()
		if unicode.IsSpace(prev) || prev == '-' {
			return unicode.ToTitle(r)
		}
		return r
	}, s)
}

// truncate shortens s to at most n characters, ending with "…" when cut:
// {{ .event.note | truncate 80 }}.
func truncate(n int, v any) (string, error) {
	if n < 1 {
		return "", fmt.Errorf("truncate: length must be at least 1, got %d", n)
	}
	s := toString(v)
	if utf8.RuneCountInString(s) <= n {
		return s, nil
	}
	r := []rune(s)
	return string(r[:n-1]) + "…", nil
}

// join joins a list with sep: {{ .event.items | join ", " }}.
func join(sep string, v any) (string, error) {
	switch list := v.(type) {
	case []any:
		parts := make([]string, len(list))
		for i, e := range list {
			parts[i] = toString(e)
		}
		return strings.Join(parts, sep), nil
	case []string:
		return strings.Join(list, sep), nil
	case nil:
		return "", nil
	}
	return "", fmt.Errorf("join: want a list, got %T", v)
}

// dateLayouts are names for common layouts; any Go layout works too.
var dateLayouts = map[string]string{
	"rfc3339":  time.RFC3339,
	"rfc1123":  time.RFC1123,
	"date":     "2006-01-02",
	"datetime": "2006-01-02 15:04",
	"time":     "15:04",
	"long":     "January 2, 2006",
	"short":    "Jan 2, 2006",
}

// formatDate formats a time given as unix seconds, an RFC 3339 string or a
// time value, in UTC: {{ date "long" .event.created_at }}.
func formatDate(layout string, v any) (string, error) {
	return formatDateIn("UTC", layout, v)
}

// formatDateIn is formatDate in a named time zone:
// {{ dateIn "Europe/Paris" "datetime" .time }}.
func formatDateIn(zone, layout string, v any) (string, error) {
	loc, err := loadZone(zone)
	if err != nil {
		return "", fmt.Errorf("dateIn: %w", err)
	}
	t, err := toTime(v)
	if err != nil {
		return "", err
	}
	if l, ok := dateLayouts[layout]; ok {
		layout = l
	}
	return t.In(loc).Format(layout), nil
}

func toTime(v any) (time.Time, error) {
	switch x := v.(type) {
	case time.Time:
		return x, nil
	case int64:
		return time.Unix(x, 0), nil
	case int:
		return time.Unix(int64(x), 0), nil
	case float64:
		sec, frac := math.Modf(x)
		return time.Unix(int64(sec), int64(frac*1e9)), nil
	case string:
		if t, err := time.Parse(time.RFC3339Nano, x); err == nil {
			return t, nil
		}
		if n, err := strconv.ParseInt(x, 10, 64); err == nil {
			return time.Unix(n, 0), nil
		}
		return time.Time{}, fmt.Errorf("date: %q is neither RFC 3339 nor unix seconds", x)
	}
	return time.Time{}, fmt.Errorf("date: want unix seconds or an RFC 3339 string, got %T", v)
}

// currencySymbols are the prefixes money uses; other currencies are written
// as "1,234.50 SEK".
var currencySymbols = map[string]string{
	"USD": "$", "EUR": "€", "GBP": "£", "JPY": "¥", "INR": "₹", "KRW": "₩",
	"CNY": "CN¥", "BRL": "R$", "CAD": "CA$", "AUD": "A$", "NZD": "NZ$", "MXN": "MX$",
}

// currencyDigits are the minor-unit digits of currencies that do not use 2.
var currencyDigits = map[string]int{
	"JPY": 0, "KRW": 0, "VND": 0, "CLP": 0, "ISK": 0, "HUF": 0, "TWD": 0, "UGX": 0, "XOF": 0, "XAF": 0,
	"BHD": 3, "KWD": 3, "OMR": 3, "JOD": 3, "TND": 3, "LYD": 3, "IQD": 3,
}

// money formats an amount in major units with its ISO 4217 currency:
// {{ money .event.amount .event.currency }} -> "$1,234.50".
func money(amount, currency any) (string, error) {
	x, err := toFloat(amount)
	if err != nil {
		return "", fmt.Errorf("money: %w", err)
	}
	return formatMoney(x, toString(currency))
}

// moneyMinor formats an amount in minor units (cents), as payment providers
// send it: {{ moneyMinor .event.amount_cents "USD" }} -> "$1,234.50".
func moneyMinor(amount, currency any) (string, error) {
	x, err := toFloat(amount)
	if err != nil {
		return "", fmt.Errorf("moneyMinor: %w", err)
	}
	code := strings.ToUpper(toString(currency))
	return formatMoney(x/math.Pow10(digitsOf(code)), code)
}

func digitsOf(code string) int {
	if d, ok := currencyDigits[code]; ok {
		return d
	}
	return 2
}

func formatMoney(x float64, currency string) (string, error) {
	code := strings.ToUpper(strings.TrimSpace(currency))
	if len(code) != 3 {
		return "", fmt.Errorf("money: currency must be a 3-letter ISO 4217 code, got %q", currency)
	}
	if math.IsNaN(x) || math.IsInf(x, 0) {
		return "", fmt.Errorf("money: amount is not a number")
	}
	sign := ""
	if x < 0 {
		sign, x = "-", -x
	}
	digits := strconv.FormatFloat(x, 'f', digitsOf(code), 64)
	whole, frac, _ := strings.Cut(digits, ".")
	var b strings.Builder
	for i, r := range whole {
		if i > 0 && (len(whole)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(r)
	}
	num := b.String()
	if frac != "" {
		num += "." + frac
	}
	if sym, ok := currencySymbols[code]; ok {
		return sign + sym + num, nil
	}
	return sign + num + " " + code, nil
}

func toFloat(v any) (float64, error) {
	switch x := v.(type) {
	case float64:
		return x, nil
	case int64:
		return float64(x), nil
	case int:
		return float64(x), nil
	case string:
		f, err := strconv.ParseFloat(strings.TrimSpace(x), 64)
		if err != nil {
			return 0, fmt.Errorf("%q is not a number", x)
		}
		return f, nil
	}
	return 0, fmt.Errorf("want a number, got %T", v)
}

// toJSON writes v as compact JSON: {{ json .event.items }}.
func toJSON(v any) (string, error) {
	b, err := jsonout.Marshal(v) // html/template escapes by context where needed
	if err != nil {
		return "", fmt.Errorf("json: %w", err)
	}
	return string(b), nil
}
