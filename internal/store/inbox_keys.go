package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/txbox/txbox/dialect"
)

// keysSQL holds a dialect's statements on the partitioned inbox keys (<prefix>_inbox_keys), used when
// KeysLayout is set. Arguments: consumer, key, fingerprint, instant (NULL: the database's clock), period in
// seconds, window in microseconds, and for the claim retention in seconds, parked, and "look in <prefix>_inbox
// too".
type keysSQL struct {
	// claim looks the key up over the live buckets and records it in the claim's buckets when it is new, in one
	// round trip. It returns (inserted, fingerprint, parked) or, on MySQL, may fail with a duplicate-key error
	// when a concurrent claim recorded the key in the same bucket and committed.
	claim string
	// read returns the recorded fingerprint and parked flag of a key (consumer, key).
	read, readLegacy string
	// lock locks every row of a key (consumer, key) and returns its parked flags.
	lock, lockLegacy string
	// unparkAll clears parked on every row of a key; record records it now (consumer, key, fingerprint,
	// instant, period, window) as processed; unparkLegacy clears it in <prefix>_inbox.
	unparkAll, record, unparkLegacy string
	// deleteParked deletes the parked rows of a key (consumer, key).
	deleteParked string
	check        string
}

func keysArgs(p *KeysLayout, consumer, key string, fp []byte, at any) []any {
	return []any{consumer, key, fp, at, int64(p.Period / time.Second), p.Window.Microseconds()}
}

// keysClaim records a key in the partitioned table (the claim of Partitioned, and half of Converting's).
func (s *sqlStore) keysClaim(ctx context.Context, tx DBTX, l *KeysLayout, consumer, key string, fp []byte, at any, parked, legacy bool) (InboxClaimResult, error) {
	args := append(keysArgs(l, consumer, key, fp, at), int64(l.Retention/time.Second), parked, legacy)
	var r InboxClaimResult
	rows, err := tx.QueryContext(ctx, s.ks.claim, args...)
	if err == nil {
		var fpRec []byte
		var parkedRec sql.NullBool
		for rows.Next() {
			if err = rows.Scan(&r.Inserted, &fpRec, &parkedRec); err != nil {
				break
			}
		}
		err = errors.Join(err, rows.Close(), rows.Err())
		if err == nil && !r.Inserted && fpRec != nil {
			r.Fingerprint, r.Parked = fpRec, parkedRec.Bool
			return r, nil
		}
	}
	if err != nil {
		if s.d.Name() != "mysql" || !isDuplicateKey(err) {
			return r, s.interpret(err)
		}
		r.Inserted = false // a concurrent claim of the key committed in one of our buckets
	}
	if r.Inserted {
		return r, nil
	}
	// Recorded meanwhile (the insert waited for it): read it with a statement that sees the commit.
	read, args := s.ks.read, []any{consumer, key}
	if legacy {
		read = s.ks.readLegacy
		if s.d.Name() == "mysql" { // '?' placeholders: the key once per table
			args = append(args, consumer, key)
		}
	}
	err = tx.QueryRowContext(ctx, read, args...).Scan(&r.Fingerprint, &r.Parked)
	if errors.Is(err, sql.ErrNoRows) {
		return r, retryableError("inbox key conflicted but is not visible (dropped concurrently or snapshot too old)")
	}
	return r, s.interpret(err)
}

// inboxClaimKeys is InboxClaim when the installation records keys in the partitioned table.
func (s *sqlStore) inboxClaimKeys(ctx context.Context, tx DBTX, p *InboxClaimParams, at any) (InboxClaimResult, error) {
	l := p.Keys
	if l.Mode == Converting {
		// Processes that still record keys in <prefix>_inbox only (an older txbox, or one that has not read the
		// new mode yet) block on its primary key: record the key there first, as they do.
		inserted, err := s.insertNew(ctx, tx, s.ib.claim, p.Consumer, p.Key, p.Fingerprint, at)
		if err != nil {
			return InboxClaimResult{}, wrap("record inbox key", err)
		}
		if !inserted {
			var r InboxClaimResult
			err := tx.QueryRowContext(ctx, s.ib.claimRead, p.Consumer, p.Key).Scan(&r.Fingerprint, &r.Parked)
			if errors.Is(err, sql.ErrNoRows) {
				return r, retryableError("inbox key conflicted but is not visible (purged concurrently or snapshot too old)")
			}
			return r, wrap("read recorded inbox key", s.interpret(err))
		}
	}
	r, err := s.keysClaim(ctx, tx, l, p.Consumer, p.Key, p.Fingerprint, at, false, l.Legacy && l.Mode != Converting)
	if err != nil {
		return r, wrap("record inbox key", err)
	}
	if r.Inserted && p.ClearAttempts {
		if _, err := tx.ExecContext(ctx, s.ib.clearAttempts, p.Consumer, p.Key); err != nil {
			return InboxClaimResult{}, wrap("clear inbox attempts", s.interpret(err))
		}
	}
	return r, nil
}

// inboxParkKeys records a parked key in the partitioned layout; false when the key is recorded already. While
// the inbox converts it writes both tables under a savepoint, undone when either finds the key: the caller may
// still commit (a counted failure), and must not commit half a park.
func (s *sqlStore) inboxParkKeys(ctx context.Context, tx DBTX, p *InboxParkParams) (bool, error) {
	l := p.Keys
	if l.Mode != Converting {
		r, err := s.keysClaim(ctx, tx, l, p.Consumer, p.Key, p.Fingerprint, nil, true, l.Legacy)
		return r.Inserted, wrap("record parked inbox key", err)
	}
	if _, err := tx.ExecContext(ctx, "SAVEPOINT txbox_park"); err != nil {
		return false, wrap("record parked inbox key", s.interpret(err))
	}
	inserted, err := s.insertNew(ctx, tx, s.ib.parkInbox, p.Consumer, p.Key, p.Fingerprint)
	if err == nil && inserted {
		var r InboxClaimResult
		r, err = s.keysClaim(ctx, tx, l, p.Consumer, p.Key, p.Fingerprint, nil, true, false)
		inserted = r.Inserted
	}
	if err != nil || !inserted {
		if _, rerr := tx.ExecContext(ctx, "ROLLBACK TO SAVEPOINT txbox_park"); rerr != nil && err == nil {
			err = s.interpret(rerr)
		}
		return false, wrap("record parked inbox key", err)
	}
	return true, nil
}

// inboxSettleKeys is InboxSettle in the partitioned layout: the key's rows in both tables are locked; when
// every one is parked they are unparked and the key is recorded afresh now.
func (s *sqlStore) inboxSettleKeys(ctx context.Context, tx DBTX, p *InboxKeyParams) (bool, error) {
	l := p.Keys
	var flags []bool
	lock := []string{s.ks.lock}
	if l.Legacy || l.Mode == Converting {
		lock = append(lock, s.ks.lockLegacy)
	}
	for _, q := range lock {
		rows, err := tx.QueryContext(ctx, q, p.Consumer, p.Key)
		if err != nil {
			return false, wrap("lock inbox key", s.interpret(err))
		}
		for rows.Next() {
			var parked bool
			if err := rows.Scan(&parked); err != nil {
				rows.Close()
				return false, wrap("lock inbox key", s.interpret(err))
			}
			flags = append(flags, parked)
		}
		if err := errors.Join(rows.Close(), rows.Err()); err != nil {
			return false, wrap("lock inbox key", s.interpret(err))
		}
	}
	for _, parked := range flags {
		if !parked {
			return false, nil // processed meanwhile
		}
	}
	if len(flags) > 0 {
		if _, err := tx.ExecContext(ctx, s.ks.unparkAll, p.Consumer, p.Key); err != nil {
			return false, wrap("unpark inbox key", s.interpret(err))
		}
		if len(lock) > 1 {
			if _, err := tx.ExecContext(ctx, s.ks.unparkLegacy, p.Consumer, p.Key); err != nil {
				return false, wrap("unpark inbox key", s.interpret(err))
			}
		}
	}
	if l.Mode == Converting && len(flags) == 0 {
		if _, err := s.insertNew(ctx, tx, s.ib.settleInsert, p.Consumer, p.Key, p.Fingerprint); err != nil {
			return false, wrap("record inbox key", err)
		}
	}
	if _, err := tx.ExecContext(ctx, s.ks.record, keysArgs(l, p.Consumer, p.Key, p.Fingerprint, nil)...); err != nil {
		return false, wrap("record inbox key", s.interpret(err))
	}
	return true, nil
}

// inboxUnparkKeys deletes a key's parked rows from both tables.
func (s *sqlStore) inboxUnparkKeys(ctx context.Context, tx DBTX, p *InboxKeyParams) (bool, error) {
	n, err := s.execCount(ctx, tx, "delete parked inbox key", s.ks.deleteParked, p.Consumer, p.Key)
	if err != nil {
		return false, err
	}
	if p.Keys.Legacy || p.Keys.Mode == Converting {
		m, err := s.execCount(ctx, tx, "delete parked inbox key", s.ib.unpark, p.Consumer, p.Key)
		if err != nil {
			return false, err
		}
		n += m
	}
	return n > 0, nil
}

func isDuplicateKey(err error) bool { return dialect.Classify(err) == dialect.KindDuplicateKey }

// checkKeysLayout refuses a layout the statements cannot run with.
func checkKeysLayout(l *KeysLayout) error {
	if l.Mode != Converting && l.Mode != Partitioned {
		return fmt.Errorf("keys layout: mode %s has no partitioned table", l.Mode)
	}
	if l.Period < time.Second || l.Retention < time.Second || l.Window < 0 {
		return fmt.Errorf("keys layout: period %s, retention %s, window %s", l.Period, l.Retention, l.Window)
	}
	return nil
}
