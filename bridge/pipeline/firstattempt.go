package pipeline

import "time"

// A job's first attempt is made by stage 1, as soon as the job is rendered
// and before it is stored anywhere, when Intercom can take the request at
// once: the outbox is then left out, which saves a publish, a second
// consumer's delivery and ack, and the job's JSON both ways. The attempt is
// the one stage 2 would make (Sender.deliver): the same ledger entries,
// lease, throttle, dead letters and metrics. The event stands for the job
// until the attempt is settled: stage 1's workers keep it in progress
// meanwhile, and it is acked only after the attempt, so a crash
// mid-attempt redelivers the event, whose job then finds the key's entry
// as stage 2 would.
//
// Whatever would make stage 2 put the job back, or wait with it (a retry,
// a 429, a key another worker holds, the pacer not admitting the request at
// once), hands the job to the outbox instead, with the time it may go again
// (Job.RetryAt); stage 2 works it from there, and a bridge that is behind
// queues its jobs in the outbox as before. So does a job for which no send
// slot frees soon: stage 1 makes up to delivery.workers first attempts at
// once, and has more workers than that, so that it goes on matching while
// Intercom is slow. A slot bounds requests to Intercom: it frees once
// Intercom has answered, so that the next attempt's request goes while
// the last one's answer is written to the ledger.

// firstAttempt is the jobMsg of a first attempt made by stage 1.
type firstAttempt struct {
	handOff bool          // again was called: the job goes to the outbox
	after   time.Duration // and may be worked again after this
	slot    func()        // frees the attempt's slot; nil once freed
}

// answered frees the attempt's slot: its request has had its answer.
func (f *firstAttempt) answered() {
	if f.slot != nil {
		f.slot()
		f.slot = nil
	}
}

func (f *firstAttempt) done(bool) {}

func (f *firstAttempt) again(delay time.Duration) { f.handOff, f.after = true, delay }

func (f *firstAttempt) mayWait() bool { return false }

// attemptFirst makes the first attempt at a job stage 1 has just rendered
// from an event delivered for the delivered-th time, whose dead letters name
// origin. It reports whether the job is to go to the outbox after all, and
// when it may be worked again there (zero: at once). Jobs that wait
// (schedule), replays and dry runs always go to the outbox.
func (s *Sender) attemptFirst(delivered uint64, job *Job, origin Origin) (toOutbox bool, retryAt time.Time) {
	if s.DryRun || job.Schedule != nil || job.Replay {
		return true, time.Time{}
	}
	select {
	case <-s.stop:
		return true, time.Time{} // stage 2 stops: the job waits for the next start
	default:
	}
	if !s.takeSlot() {
		return true, time.Time{} // every slot is taken by a slow request: the job queues
	}
	log := s.jobLog(job)
	fa := &firstAttempt{slot: func() { <-s.slots }}
	defer fa.answered()
	if err := s.work(fa, job, delivered, origin, log); err != nil {
		log.Warn().Err(err).Msg("delivery interrupted; queued to retry")
		return true, time.Now().Add(time.Second)
	}
	if !fa.handOff {
		return false, time.Time{}
	}
	if fa.after <= 0 {
		return true, time.Time{}
	}
	return true, time.Now().Add(fa.after)
}

// slotWait bounds the wait of a first attempt for a free slot. Under load a
// slot frees within one request's time; when none does for this long, the
// requests in flight are slow, and the job is better queued than waited
// for by stage 1.
const slotWait = 100 * time.Millisecond

// takeSlot takes one of the first attempts' slots, waiting up to slotWait
// for one; false if none freed.
func (s *Sender) takeSlot() bool {
	select {
	case s.slots <- struct{}{}:
		return true
	default:
	}
	t := time.NewTimer(slotWait)
	defer t.Stop()
	select {
	case s.slots <- struct{}{}:
		return true
	case <-t.C:
		return false
	}
}
