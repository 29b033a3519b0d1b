package store

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"time"
)

// EffectStore is the SQL of the idempotency records that package inbox keeps for effects outside the database
// (inbox.Effects on SQL): one row per (consumer, key) in the effects table. Every change is a single statement
// fenced by the owner token of the run that holds the lease, so the methods run on a pool (each statement in
// its own transaction, seeing what committed before it), never inside a caller's transaction. Lease instants
// come from the database's clock.
type EffectStore interface {
	// EffectBegin records a new key as running under p.Owner with a lease of p.Lease, or reports what the
	// existing record holds: completed (its result), running under a live lease (busy, with the time left),
	// parked, or recorded with another fingerprint. A released record, or a running one whose lease expired, is
	// taken over by p.Owner; an expired lease counts as a failed attempt, and when that makes p.MaxAttempts the
	// record is parked with p.Dead instead.
	EffectBegin(ctx context.Context, db DBTX, p *EffectBeginParams) (EffectBeginResult, error)
	// EffectComplete marks the record completed with p.Result when p.Owner still holds it (running, not parked)
	// and reports whether it did; it also reports true when the record is completed by p.Owner already (a
	// retried call). false: another owner took the lease over (or the record was parked or purged).
	EffectComplete(ctx context.Context, db DBTX, p *EffectCompleteParams) (bool, error)
	// EffectRelease counts a failed run of p.Owner and frees the record for the next delivery, or parks it with
	// p.Dead when p.Park is set; it reports false when p.Owner no longer holds the record.
	EffectRelease(ctx context.Context, db DBTX, p *EffectReleaseParams) (bool, error)

	// EffectDeadList lists p.Consumer's parked records with keys after p.AfterKey (only p.Key when set), in key
	// order, at most p.Limit.
	EffectDeadList(ctx context.Context, db DBTX, p *EffectDeadListParams) ([]EffectDeadRow, error)
	// EffectTakeParked hands a parked record to p.Owner as running with a lease of p.Lease (to replay it) and
	// returns it as it was parked; found is false when the key is not parked. The delivery stays stored until
	// the run completes.
	EffectTakeParked(ctx context.Context, db DBTX, p *EffectTakeParkedParams) (row EffectDeadRow, found bool, err error)
	// EffectDropParked marks a parked record completed without a result and reports whether it was parked.
	EffectDropParked(ctx context.Context, db DBTX, p *EffectKeyParams) (bool, error)

	// EffectPurge deletes up to p.Limit of p.Consumer's records first begun (or dropped) more than p.OlderThan
	// ago, oldest first, never parked ones nor running ones under a live lease, and returns how many
	// it deleted. Run it in a short READ COMMITTED transaction per batch, like InboxPurge.
	EffectPurge(ctx context.Context, tx DBTX, p *EffectPurgeParams) (int, error)

	// EffectCheckSchema returns an error wrapping dialect.ErrSchemaMissing when the effects table or one of
	// its columns does not exist.
	EffectCheckSchema(ctx context.Context, db DBTX) error
}

// EffectStatus is what EffectBegin found or did.
type EffectStatus int

const (
	EffectAcquired  EffectStatus = iota + 1 // a new key, or a released record: running under the caller's token
	EffectTakenOver                         // an expired lease, taken over (counted as a failed run)
	EffectCompleted                         // completed earlier: Result holds the saved result
	EffectBusy                              // running under another owner whose lease is live
	EffectParked                            // parked earlier
	EffectParkedNow                         // an expired lease that was the last attempt allowed: parked now
	EffectMismatch                          // recorded with another fingerprint
)

// Record states in the effects table's state column.
const (
	effectRunning   = 1
	effectReleased  = 2
	effectCompleted = 3
)

// EffectDead is the delivery stored with a parked record.
type EffectDead struct {
	Payload   []byte
	Headers   []byte // JSON object of strings, or nil
	Topic     string
	MessageID string
}

// EffectBeginParams are the arguments of EffectBegin.
type EffectBeginParams struct {
	Consumer    string
	Key         string
	Fingerprint []byte // 32 bytes (SHA-256 of the payload)
	Owner       []byte // 16 bytes, new for every Begin
	Lease       time.Duration
	MaxAttempts int
	// ExpiredError is the last error recorded when an expired lease is counted.
	ExpiredError string
	Dead         EffectDead // stored when this call parks the record
}

// EffectBeginResult is what EffectBegin found or did (Status) and what the record holds after it: its count of
// failed runs, and by status the recorded fingerprint (EffectMismatch), the saved result (EffectCompleted, nil
// for none) or the time left on the other owner's lease (EffectBusy).
type EffectBeginResult struct {
	Status              EffectStatus
	Attempts            int
	Fingerprint, Result []byte
	LeaseLeft           time.Duration
}

// EffectCompleteParams are the arguments of EffectComplete.
type EffectCompleteParams struct {
	Consumer string
	Key      string
	Owner    []byte
	Result   []byte // nil or empty: none
}

// EffectReleaseParams are the arguments of EffectRelease.
type EffectReleaseParams struct {
	Consumer  string
	Key       string
	Owner     []byte
	LastError string // valid UTF-8 without NUL bytes, already shortened by the caller
	Park      bool
	Dead      EffectDead // stored when Park
}

// EffectDeadListParams are the arguments of EffectDeadList.
type EffectDeadListParams struct {
	Consumer string
	Key      string // only this key when not empty
	AfterKey string
	Limit    int
}

// EffectTakeParkedParams are the arguments of EffectTakeParked.
type EffectTakeParkedParams struct {
	Consumer string
	Key      string
	Owner    []byte
	Lease    time.Duration
}

// EffectKeyParams name one record.
type EffectKeyParams struct {
	Consumer string
	Key      string
}

// EffectPurgeParams are the arguments of EffectPurge: the same as InboxPurge's.
type EffectPurgeParams = InboxPurgeParams

// EffectDeadRow is one parked record.
type EffectDeadRow struct {
	Key         string
	Fingerprint []byte
	EffectDead
	Attempts  int
	LastError string
	ParkedAt  time.Time
}

// effectSQL holds a dialect's effect statements for one table set.
type effectSQL struct {
	// insert records a new key as running (args consumer, key, fingerprint, owner, lease µs).
	insert string
	// read returns fingerprint, state, parked, attempts, result, owner, whether the lease is live and the
	// microseconds left on it (args consumer, key).
	read string
	// take hands a released record, or a running one whose lease expired, to a new owner (args new owner, lease
	// µs, attempts to add, last error or NULL, consumer, key, old owner, old state).
	take string
	// park parks the running record of an owner (args last error, payload, headers, topic, message id,
	// consumer, key, owner, whether a live lease may be parked).
	park string
	// complete saves the result of an owner's run (args result, consumer, key, owner); completedBy reads whether
	// the record is completed by an owner (args consumer, key, owner).
	complete, completedBy string
	// release frees the running record of an owner after a failed run (args last error, consumer, key, owner).
	release string

	deadList, deadListKey  string
	takeParked, dropParked string
	purge, purgeSelect     string
	checkEffects           string
}

// effectBeginRounds bounds EffectBegin's read-and-swap loop: each round loses only to a concurrent change of
// the same record, so a handful of rounds means a storm of deliveries of one key.
const effectBeginRounds = 16

// effectRow is a record as EffectBegin reads it.
type effectRow struct {
	fingerprint, result, owner []byte
	state, attempts            int
	parked, live               bool
	leftMicros                 int64
}

func (s *sqlStore) EffectBegin(ctx context.Context, db DBTX, p *EffectBeginParams) (EffectBeginResult, error) {
	lease := p.Lease.Microseconds()
	for range effectBeginRounds {
		inserted, err := s.insertNew(ctx, db, s.fx.insert, p.Consumer, p.Key, p.Fingerprint, p.Owner, lease)
		if err != nil {
			return EffectBeginResult{}, wrap("record effect key", err)
		}
		if inserted {
			return EffectBeginResult{Status: EffectAcquired}, nil
		}
		var r effectRow
		err = db.QueryRowContext(ctx, s.fx.read, p.Consumer, p.Key).Scan(&r.fingerprint, &r.state, &r.parked,
			&r.attempts, &r.result, &r.owner, &r.live, &r.leftMicros)
		if errors.Is(err, sql.ErrNoRows) {
			continue // purged between the two statements: insert again
		}
		if err != nil {
			return EffectBeginResult{}, wrap("read effect record", s.interpret(err))
		}
		switch {
		case !bytes.Equal(r.fingerprint, p.Fingerprint):
			return EffectBeginResult{Status: EffectMismatch, Fingerprint: r.fingerprint, Attempts: r.attempts}, nil
		case r.parked:
			return EffectBeginResult{Status: EffectParked, Attempts: r.attempts}, nil
		case r.state == effectCompleted:
			return EffectBeginResult{Status: EffectCompleted, Result: nonEmpty(r.result), Attempts: r.attempts}, nil
		case r.state == effectRunning && r.live:
			return EffectBeginResult{Status: EffectBusy, Attempts: r.attempts,
				LeaseLeft: time.Duration(max(r.leftMicros, 0)) * time.Microsecond}, nil
		case r.state == effectRunning && r.attempts+1 >= p.MaxAttempts:
			// The expired run is the last failure allowed: park instead of running again.
			ok, err := s.effectPark(ctx, db, p.Consumer, p.Key, r.owner, p.ExpiredError, &p.Dead, true)
			if err != nil {
				return EffectBeginResult{}, err
			}
			if ok {
				return EffectBeginResult{Status: EffectParkedNow, Attempts: r.attempts + 1}, nil
			}
		default:
			// Released, or running under an expired lease, which counts as a failed run.
			status, inc, lastErr := EffectAcquired, 0, any(nil)
			if r.state == effectRunning {
				status, inc, lastErr = EffectTakenOver, 1, p.ExpiredError
			}
			n, err := s.execCount(ctx, db, "take effect record", s.fx.take, p.Owner, lease, inc, lastErr,
				p.Consumer, p.Key, r.owner, r.state)
			if err != nil {
				return EffectBeginResult{}, err
			}
			if n > 0 {
				return EffectBeginResult{Status: status, Attempts: r.attempts + inc}, nil
			}
		}
		// Another delivery changed the record between the read and the swap: read it again.
	}
	return EffectBeginResult{}, retryableError("effect record kept changing while beginning it")
}

// effectPark parks the record running under owner, storing dead and counting one more failed run. expiredOnly
// limits it to a record whose lease expired (a takeover that parks); otherwise the owner parks its own run.
// rows-affected counts are safe here: the statement always changes the row it matches (parked turns TRUE), so
// MySQL's clientFoundRows does not change the answer.
func (s *sqlStore) effectPark(ctx context.Context, db DBTX, consumer, key string, owner []byte, lastErr string,
	dead *EffectDead, expiredOnly bool) (bool, error) {
	payload := dead.Payload
	if payload == nil {
		payload = []byte{} // a parked record always has a payload, empty or not
	}
	var headers any
	if len(dead.Headers) > 0 {
		headers = s.jsonArg(dead.Headers)
	}
	n, err := s.execCount(ctx, db, "park effect record", s.fx.park, lastErr, payload, headers, dead.Topic,
		dead.MessageID, consumer, key, owner, !expiredOnly)
	return n > 0, err
}

func (s *sqlStore) EffectComplete(ctx context.Context, db DBTX, p *EffectCompleteParams) (bool, error) {
	var result any
	if len(p.Result) > 0 {
		result = p.Result
	}
	n, err := s.execCount(ctx, db, "complete effect record", s.fx.complete, result, p.Consumer, p.Key, p.Owner)
	if err != nil || n > 0 {
		return n > 0, err
	}
	// Nothing changed: lost to another owner, or completed by this one already (a retried call whose first
	// try committed).
	var done bool
	err = db.QueryRowContext(ctx, s.fx.completedBy, p.Consumer, p.Key, p.Owner).Scan(&done)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	return done, wrap("read effect record", s.interpret(err))
}

func (s *sqlStore) EffectRelease(ctx context.Context, db DBTX, p *EffectReleaseParams) (bool, error) {
	if p.Park {
		return s.effectPark(ctx, db, p.Consumer, p.Key, p.Owner, p.LastError, &p.Dead, false)
	}
	n, err := s.execCount(ctx, db, "release effect record", s.fx.release, p.LastError, p.Consumer, p.Key, p.Owner)
	return n > 0, err
}

func (s *sqlStore) EffectDeadList(ctx context.Context, db DBTX, p *EffectDeadListParams) ([]EffectDeadRow, error) {
	var rows *sql.Rows
	var err error
	if p.Key != "" {
		rows, err = db.QueryContext(ctx, s.fx.deadListKey, p.Consumer, p.Key)
	} else {
		rows, err = db.QueryContext(ctx, s.fx.deadList, p.Consumer, p.AfterKey, p.Limit)
	}
	if err != nil {
		return nil, wrap("list parked effect records", s.interpret(err))
	}
	return s.scanEffectDead(rows)
}

func (s *sqlStore) EffectTakeParked(ctx context.Context, db DBTX, p *EffectTakeParkedParams) (EffectDeadRow, bool, error) {
	rows, err := db.QueryContext(ctx, s.fx.deadListKey, p.Consumer, p.Key)
	if err != nil {
		return EffectDeadRow{}, false, wrap("read parked effect record", s.interpret(err))
	}
	list, err := s.scanEffectDead(rows)
	if err != nil || len(list) == 0 {
		return EffectDeadRow{}, false, err
	}
	// The swap needs the record still parked, nothing more: between the read and the swap it can only have been
	// taken or dropped (then nothing changes here: not found), or taken, run and parked again, with the same
	// key and fingerprint and so the same delivery.
	n, err := s.execCount(ctx, db, "take parked effect record", s.fx.takeParked, p.Owner, p.Lease.Microseconds(),
		p.Consumer, p.Key)
	if err != nil || n == 0 {
		return EffectDeadRow{}, false, err
	}
	return list[0], true, nil
}

func (s *sqlStore) EffectDropParked(ctx context.Context, db DBTX, p *EffectKeyParams) (bool, error) {
	n, err := s.execCount(ctx, db, "drop parked effect record", s.fx.dropParked, p.Consumer, p.Key)
	return n > 0, err
}

func (s *sqlStore) EffectPurge(ctx context.Context, tx DBTX, p *EffectPurgeParams) (int, error) {
	return s.purgeBatch(ctx, tx, "purge effect records", s.fx.purgeSelect, s.fx.purge, p)
}

func (s *sqlStore) EffectCheckSchema(ctx context.Context, db DBTX) error {
	return s.checkQueries(ctx, db, "effects", s.fx.checkEffects)
}

// scanEffectDead reads parked records in the column order of effectDeadCols.
func (s *sqlStore) scanEffectDead(rows *sql.Rows) ([]EffectDeadRow, error) {
	defer rows.Close()
	var out []EffectDeadRow
	for rows.Next() {
		var r EffectDeadRow
		var headers, lastErr sql.NullString
		at := s.times.newTime()
		if err := rows.Scan(&r.Key, &r.Fingerprint, &r.Payload, &headers, &r.Topic, &r.MessageID, &r.Attempts,
			&lastErr, at); err != nil {
			return nil, wrap("scan parked effect record", s.interpret(err))
		}
		if headers.Valid && headers.String != "" {
			r.Headers = []byte(headers.String)
		}
		if r.Payload == nil {
			r.Payload = []byte{}
		}
		r.LastError, r.ParkedAt = lastErr.String, s.times.at(at)
		out = append(out, r)
	}
	return out, wrap("read parked effect records", s.interpret(rows.Err()))
}

// effectDeadCols are the columns scanEffectDead reads.
const effectDeadCols = "msg_key, fingerprint, payload, headers, topic, message_id, attempts, last_error, parked_at"

func nonEmpty(b []byte) []byte {
	if len(b) == 0 {
		return nil
	}
	return b
}
