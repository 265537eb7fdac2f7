// Package webhook authenticates the senders of webhooks: one Verifier per
// scheme, configured by an AuthConfig, whose Problems the config file
// reports at their keys.
//
// It owns the schemes and their defaults and imports none of the bridge's
// packages. A new scheme is two files: its verifier (a Verifier, and a
// HeaderChecker when it can refuse a request from its headers alone, an
// IDSigner when its signature covers an event id), and
// its case in AuthConfig.Problems, WithDefaults and NewVerifier with a
// Scheme constant; the config file's auth block carries it as it is.
//
// Everything here works on an http.Header and a body that has already been
// read (and size-limited) by the caller, and takes the current time as an
// argument, so it is deterministic and safe for concurrent use.
//
// Secrets never appear in errors: an [*AuthError] carries a fixed, short
// reason that can be sent back to the caller in a 401 response.
package webhook
