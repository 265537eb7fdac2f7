// Package plural writes a count with its noun, for what people read:
// "1 rule", "2 rules". It imports nothing of the bridge's.
package plural

import "fmt"

// Count is n and noun, the noun with an s unless n is 1.
func Count(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}
