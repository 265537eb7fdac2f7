package pipeline

import "time"

// Timeouts of stage 2, whose AckWait and Heartbeat stage 1 shares. They
// are stated together because each is sized from the others; NewTimeouts
// derives them all from the send timeout.
type Timeouts struct {
	// Send bounds one HTTP exchange with Intercom (intercom.timeout).
	Send time.Duration
	// PacerWait bounds the wait for the pacer before an exchange. A job
	// that waits longer is put back without spending an attempt.
	PacerWait time.Duration
	// Step bounds one ledger, throttle or dead-letter operation.
	Step time.Duration
	// AckWait: JetStream hands a job or an event out again when the
	// process holding it has said nothing for this long. A process says
	// "in progress" every Heartbeat for every one it has held for half of
	// one, queued or in hand, however long it waits for the pacer, a rate
	// limit or a slow first attempt (see workers); so AckWait only bounds
	// how long the work of a process that stopped stays where it is.
	AckWait time.Duration
	// Heartbeat is how often the workers say "in progress", and a holder
	// looks at its lease.
	Heartbeat time.Duration
	// Lease is how long a pending key stays its owner's after the owner
	// last wrote it. A key is marked pending only once the pacer admitted
	// the request, so a lease needs to outlast one exchange and the step
	// that records its outcome; the owner renews it at every Heartbeat past
	// half of it all the same, so that a slow record cannot outlive it.
	Lease time.Duration
}

// NewTimeouts returns the timeouts for a send timeout.
func NewTimeouts(send time.Duration) Timeouts {
	// AckWait is short so that the jobs of a replica that died go on
	// elsewhere within seconds; the heartbeat keeps every live job.
	t := Timeouts{Send: send, PacerWait: 2 * time.Minute, Step: 5 * time.Second, AckWait: 4 * time.Second}
	t.Heartbeat = t.AckWait / 3
	t.Lease = t.Send + t.Step
	return t
}
