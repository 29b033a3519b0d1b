package bus

import "sync/atomic"

// Stats counts what a consumer (through ConsumerHooks) and a publisher (through Instrument) saw. All fields are
// safe for concurrent use; read them with Snapshot.
type Stats struct {
	published atomic.Int64 // messages the broker accepted (SendOK), re-sends included
	resent    atomic.Int64 // extra sends injected by Faults.ResendPercent

	delivered atomic.Int64 // messages the broker delivered to the consumer, redeliveries included
	processed atomic.Int64 // deliveries whose handler committed (inbox.Processed)
	dupLost   atomic.Int64 // duplicates absorbed after an injected lost ACK
	dupResent atomic.Int64 // duplicates absorbed after an injected producer re-send
	dupOther  atomic.Int64 // duplicates from anything else (rebalance, broker-side retry, ...)
	lostAcks  atomic.Int64 // committed deliveries reported to the broker as failed (injected)
	timedOut  atomic.Int64 // first deliveries rolled back by the handler deadline (injected slow handler)
	failed    atomic.Int64 // other failed deliveries (returned to the broker for redelivery)
	parked    atomic.Int64 // deliveries parked: by the inbox after too many failures, or by the consumer (no usable key)

	lostResponses atomic.Int64 // deliveries failed by an injected lost gateway response (Faults.LostResponsePercent)
	effectDups    atomic.Int64 // charges found completed in the effect records: no gateway call
}

// EffectDuplicate counts a charge the effect records found completed, so that the gateway was not called.
func (s *Stats) EffectDuplicate() { s.effectDups.Add(1) }

// StatsSnapshot is a copy of Stats at one instant.
type StatsSnapshot struct {
	Published          int64 `json:"published"`
	Resent             int64 `json:"resent"`
	Delivered          int64 `json:"delivered"`
	Processed          int64 `json:"processed"`
	DuplicateLostAck   int64 `json:"duplicate_lost_ack"`
	DuplicateResent    int64 `json:"duplicate_resent"`
	DuplicateOther     int64 `json:"duplicate_other"`
	LostAcksInjected   int64 `json:"lost_acks_injected"`
	TimeoutsRolledBack int64 `json:"timeouts_rolled_back"`
	Failed             int64 `json:"failed"`
	Parked             int64 `json:"parked"`
	LostResponses      int64 `json:"lost_gateway_responses"`
	EffectDuplicates   int64 `json:"effect_duplicates"`
}

// Snapshot returns the current counts.
func (s *Stats) Snapshot() StatsSnapshot {
	return StatsSnapshot{
		Published:          s.published.Load(),
		Resent:             s.resent.Load(),
		Delivered:          s.delivered.Load(),
		Processed:          s.processed.Load(),
		DuplicateLostAck:   s.dupLost.Load(),
		DuplicateResent:    s.dupResent.Load(),
		DuplicateOther:     s.dupOther.Load(),
		LostAcksInjected:   s.lostAcks.Load(),
		TimeoutsRolledBack: s.timedOut.Load(),
		Failed:             s.failed.Load(),
		Parked:             s.parked.Load(),
		LostResponses:      s.lostResponses.Load(),
		EffectDuplicates:   s.effectDups.Load(),
	}
}

// Duplicates is the number of duplicate deliveries the inbox absorbed, whatever their cause.
func (s StatsSnapshot) Duplicates() int64 {
	return s.DuplicateLostAck + s.DuplicateResent + s.DuplicateOther
}

// Add returns the sum of two snapshots.
func (s StatsSnapshot) Add(o StatsSnapshot) StatsSnapshot {
	return StatsSnapshot{
		Published:          s.Published + o.Published,
		Resent:             s.Resent + o.Resent,
		Delivered:          s.Delivered + o.Delivered,
		Processed:          s.Processed + o.Processed,
		DuplicateLostAck:   s.DuplicateLostAck + o.DuplicateLostAck,
		DuplicateResent:    s.DuplicateResent + o.DuplicateResent,
		DuplicateOther:     s.DuplicateOther + o.DuplicateOther,
		LostAcksInjected:   s.LostAcksInjected + o.LostAcksInjected,
		TimeoutsRolledBack: s.TimeoutsRolledBack + o.TimeoutsRolledBack,
		Failed:             s.Failed + o.Failed,
		Parked:             s.Parked + o.Parked,
		LostResponses:      s.LostResponses + o.LostResponses,
		EffectDuplicates:   s.EffectDuplicates + o.EffectDuplicates,
	}
}
