package inbox

import (
	"context"
	"strconv"
	"time"
)

// EffectStore keeps the idempotency records Effects is built on: the atomic transitions of one record per
// (consumer, key). Two implementations come with txbox, SQLEffectStore (the installation's effects table on
// MySQL/MariaDB or PostgreSQL) and package inbox/redis; both pass one conformance suite. Use it through
// Effects: its methods take the owner tokens, fingerprints and limits Effects computes.
//
// A record is running (leased to an owner token until a lease end), released (its last run failed), completed
// (with a saved result) or parked. Every transition is atomic, and the ones an owner makes are fenced by its
// token: once a run's lease was taken over, nothing that run does changes the record.
type EffectStore interface {
	// BeginEffect records a new key as running under p.Owner with a lease of p.Lease, or reports the existing
	// record: completed (EffectCompleted with its result), running under a live lease (EffectBusy with the time
	// left), parked (EffectParked), recorded with another fingerprint (EffectMismatch). A released record, or a
	// running one whose lease expired, is taken over by p.Owner (EffectAcquired). An expired lease counts as a
	// failed attempt with p.ExpiredError as the last error; when that reaches p.MaxAttempts the record is
	// parked with p.Delivery instead (EffectParked, ParkedNow).
	BeginEffect(ctx context.Context, p *EffectBeginParams) (EffectBeginResult, error)
	// CompleteEffect saves p.Result and marks the record completed when p.Owner holds it (running, even past
	// its lease, as long as nobody took it over). It reports false when p.Owner does not hold it; true also
	// when p.Owner completed it already (a retried call).
	CompleteEffect(ctx context.Context, p *EffectCompleteParams) (bool, error)
	// ReleaseEffect counts a failed run of p.Owner with p.LastError and frees the record for the next delivery,
	// or parks it with p.Delivery when p.Park is set. It reports false when p.Owner does not hold the record.
	ReleaseEffect(ctx context.Context, p *EffectReleaseParams) (bool, error)

	// ListParkedEffects lists p.Consumer's parked records with keys after p.AfterKey (only p.Key when set), in
	// byte order of their keys, at most p.Limit.
	ListParkedEffects(ctx context.Context, p *EffectDeadListParams) ([]EffectDeadLetter, error)
	// TakeParkedEffect hands the parked record of p.Key to p.Owner as running with a lease of p.Lease, to run
	// it again, and returns it as it was parked; found is false when the key is not parked.
	TakeParkedEffect(ctx context.Context, p *EffectTakeParkedParams) (dl EffectDeadLetter, found bool, err error)
	// DropParkedEffect marks the parked record of p.Key completed without a result and reports whether it was
	// parked.
	DropParkedEffect(ctx context.Context, p *EffectKeyParams) (bool, error)

	// PurgeEffects deletes up to p.Limit of p.Consumer's records first begun more than p.OlderThan ago, never parked ones nor running ones under a live lease, and returns how many it deleted.
	// A store whose records expire by themselves (Redis) deletes nothing and returns 0.
	PurgeEffects(ctx context.Context, p *EffectPurgeParams) (int, error)
	// CheckEffects tells whether the store answers and is set up (tables migrated).
	CheckEffects(ctx context.Context) error
}

// EffectStatus is what a record was found in, or put in, by BeginEffect (and what a Claim holds).
type EffectStatus int

const (
	// EffectAcquired: the record runs under the caller's owner token: run the effect, then complete or release.
	EffectAcquired EffectStatus = iota + 1
	// EffectCompleted: the effect completed (before, or by this claim); Result holds the saved result.
	EffectCompleted
	// EffectBusy: another owner holds a live lease.
	EffectBusy
	// EffectParked: the record is parked (before, or by this call).
	EffectParked
	// EffectMismatch: the key is recorded with another payload's fingerprint.
	EffectMismatch
)

func (s EffectStatus) String() string {
	switch s {
	case EffectAcquired:
		return "acquired"
	case EffectCompleted:
		return "completed"
	case EffectBusy:
		return "busy"
	case EffectParked:
		return "parked"
	case EffectMismatch:
		return "mismatch"
	}
	return "EffectStatus(" + strconv.Itoa(int(s)) + ")"
}

// EffectBeginParams are the arguments of EffectStore.BeginEffect.
type EffectBeginParams struct {
	Consumer string
	// Delivery is the message whose effect begins: its Key names the record, and the whole delivery is stored
	// if this call parks the record.
	Delivery    Delivery
	Fingerprint []byte // SHA-256 of Delivery.Payload
	Owner       []byte // 16 random bytes, new for every run
	Lease       time.Duration
	Retention   time.Duration // how long the store keeps the record (stores whose records expire)
	MaxAttempts int
	// ExpiredError is the last error recorded when an expired lease is counted.
	ExpiredError string
}

// EffectBeginResult is what BeginEffect found or did.
type EffectBeginResult struct {
	Status EffectStatus
	// TakenOver: acquired from an owner whose lease had expired (EffectAcquired).
	TakenOver bool
	// ParkedNow: this call parked the record (EffectParked).
	ParkedNow bool
	// Attempts is the record's count of failed runs, an expired lease this call counted included.
	Attempts    int
	Fingerprint []byte        // the recorded fingerprint (EffectMismatch)
	Result      []byte        // the saved result (EffectCompleted); nil when none was saved
	LeaseLeft   time.Duration // time left on the other owner's lease (EffectBusy)
}

// EffectCompleteParams are the arguments of EffectStore.CompleteEffect.
type EffectCompleteParams struct {
	Consumer  string
	Key       string
	Owner     []byte
	Result    []byte // nil or empty: none
	Retention time.Duration
}

// EffectReleaseParams are the arguments of EffectStore.ReleaseEffect.
type EffectReleaseParams struct {
	Consumer  string
	Delivery  Delivery // Key names the record; stored when Park
	Owner     []byte
	LastError string // valid UTF-8 without NUL bytes, at most 4000 bytes
	Park      bool
	Retention time.Duration
}

// EffectDeadListParams are the arguments of EffectStore.ListParkedEffects.
type EffectDeadListParams struct {
	Consumer string
	Key      string // only this key, when not empty
	AfterKey string
	Limit    int
}

// EffectTakeParkedParams are the arguments of EffectStore.TakeParkedEffect.
type EffectTakeParkedParams struct {
	Consumer  string
	Key       string
	Owner     []byte
	Lease     time.Duration
	Retention time.Duration
}

// EffectKeyParams name one record, for EffectStore.DropParkedEffect.
type EffectKeyParams struct {
	Consumer  string
	Key       string
	Retention time.Duration
}

// EffectPurgeParams are the arguments of EffectStore.PurgeEffects.
type EffectPurgeParams struct {
	Consumer  string
	OlderThan time.Duration
	Limit     int
}

// EffectDeadLetter is a parked effect: it failed MaxAttempts times (errors, or leases that expired), or was
// parked with Effects.Park. Deliveries of its key meanwhile return Parked without running anything.
type EffectDeadLetter struct {
	Delivery    Delivery // Key, Payload, Headers, Topic and MessageID as delivered; Attempt is 0
	Fingerprint []byte
	Attempts    int    // failed runs counted
	LastError   string // the last failure's error text
	ParkedAt    time.Time
}
