// Package webhook holds the request-level checks the bridge's HTTP layer
// runs on an incoming webhook before it publishes the event to JetStream:
// authenticating the sender (Verifier), recognising CloudEvents
// (ParseCloudEvent) and bounding the JSON it will hand to the rules engine
// (CheckJSON).
//
// Everything here works on an http.Header and a body that has already been
// read (and size-limited) by the caller, and takes the current time as an
// argument, so it is deterministic and safe for concurrent use.
//
// Secrets never appear in errors: an [*AuthError] carries a fixed, short
// reason that can be sent back to the caller in a 401 response.
package webhook
