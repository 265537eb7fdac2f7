package intercom

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// DefaultVersion is the Intercom-Version sent when Config.Version is empty:
// the oldest version that accepts several recipients in one message.
const DefaultVersion = "2.14"

// SupportedVersions lists the Intercom-Version values the client speaks, oldest
// first. Older 2.x versions accept the same message body but were never
// tested against; 1.x speaks a different contract altogether.
func SupportedVersions() []string {
	return []string{"2.11", "2.12", "2.13", "2.14", "2.15", "2.16"}
}

// ValidateVersion reports whether v is a supported Intercom-Version.
func ValidateVersion(v string) error {
	if slices.Contains(SupportedVersions(), v) {
		return nil
	}
	return fmt.Errorf("intercom: unsupported Intercom-Version %q: supported versions are %s", v, strings.Join(SupportedVersions(), ", "))
}

// Caps are what a version of Intercom's API can do, beyond what every
// supported version can.
type Caps struct {
	// RecipientLists: "to" may be an array of recipients, and "cc" and
	// "bcc" exist (2.14+).
	RecipientLists bool
	// FindByExternalID: GET /contacts/find_by_external_id/{id} exists (2.14+).
	FindByExternalID bool
}

// Capabilities returns the capabilities of version v. An unsupported v has
// none.
func Capabilities(v string) Caps {
	if ValidateVersion(v) != nil {
		return Caps{}
	}
	minor := minorVersion(v)
	return Caps{RecipientLists: minor >= 14, FindByExternalID: minor >= 14}
}

// minorVersion is the 14 of "2.14", or -1.
func minorVersion(v string) int {
	_, m, ok := strings.Cut(v, ".")
	if !ok {
		return -1
	}
	n, err := strconv.Atoi(m)
	if err != nil {
		return -1
	}
	return n
}
