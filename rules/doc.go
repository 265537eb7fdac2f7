// Package rules loads rule files and their tests: it checks them (every
// error at file:line:col), compiles the expr conditions and the templates
// once, matches events against the rules and renders each match into a
// Message that names its recipients the way the rule does.
//
// It imports neither intercom nor anything under bridge: the bridge looks
// the recipients up and hands Intercom's form of the message to intercom.
package rules
