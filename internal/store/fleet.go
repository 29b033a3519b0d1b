package store

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/txbox/txbox/dialect"
)

// FleetStore is the SQL of package relay/fleet: an installation's drain lease, a session-level lock of which each
// database and prefix has one (pg_try_advisory_lock, GET_LOCK), and the heartbeat rows of the relays that hold or
// watch the installation (<prefix>_relays). A lock belongs to the session of the connection that took it: it ends
// when that session ends, however it ends, so the methods that touch it take the *sql.Conn that holds it.
type FleetStore interface {
	// FleetPrepareLease bounds how long the server keeps conn's session while it is idle (MySQL wait_timeout,
	// PostgreSQL 14+ idle_session_timeout; nothing on PostgreSQL 13), so that the lease of a relay that vanished
	// without closing its connection (power loss, a cut network) ends after idle even when no TCP reset reaches
	// the server. idle is rounded up to whole seconds on MySQL.
	FleetPrepareLease(ctx context.Context, conn *sql.Conn, idle time.Duration) error
	// FleetTryLock tries, without waiting, to take the drain lease on conn's session and reports whether it got it.
	FleetTryLock(ctx context.Context, conn *sql.Conn) (bool, error)
	// FleetLockFree reports whether no session holds the drain lease; it takes nothing.
	FleetLockFree(ctx context.Context, db DBTX) (bool, error)
	// FleetHolds reports whether conn's session holds the drain lease.
	FleetHolds(ctx context.Context, conn *sql.Conn) (bool, error)
	// FleetUnlock releases the drain lease held by conn's session; it does nothing when the session holds none.
	FleetUnlock(ctx context.Context, conn *sql.Conn) error

	// FleetBeat records p.Relay's heartbeat at the database's clock, then returns the relays whose last heartbeat
	// is less than p.Live old, p.Relay included, in id order.
	FleetBeat(ctx context.Context, db DBTX, p *FleetBeatParams) ([]FleetRelay, error)
	// FleetRelays returns the relays whose last heartbeat is less than within old (every relay with a row when
	// within is 0), in id order.
	FleetRelays(ctx context.Context, db DBTX, within time.Duration) ([]FleetRelay, error)
	// FleetForget deletes relay's row (a relay that stops cleanly), reporting whether there was one.
	FleetForget(ctx context.Context, db DBTX, relay string) (bool, error)
	// FleetPurge deletes the rows of relays whose last heartbeat is olderThan old or older and returns how many.
	FleetPurge(ctx context.Context, db DBTX, olderThan time.Duration) (int, error)
}

// FleetBeatParams are the arguments of FleetBeat.
type FleetBeatParams struct {
	Relay   string // the relay's id: 1 to 64 bytes
	Holds   bool   // it holds this database's drain lease
	Held    int    // how many databases it holds in all
	MaxHeld int    // how many it may hold (0: no cap)
	// Live is the age under which a heartbeat counts.
	Live time.Duration
}

// FleetRelay is one relay's row as a database last saw it.
type FleetRelay struct {
	ID      string
	Holds   bool
	Held    int
	MaxHeld int
	Age     time.Duration // since its last heartbeat, by the database's clock
}

// fleetStatements renders a dialect's fleet statements for the relays table of t.
func fleetStatements(d dialect.Dialect, t dialect.Tables, render func(relays string) fleetSQL) (fleetSQL, error) {
	relays, err := d.QuoteIdent(t.Relays)
	if err != nil {
		return fleetSQL{}, err
	}
	return render(relays), nil
}

// fleetSQL holds the rendered statements of FleetStore; the lock statements bind the prefix.
type fleetSQL struct {
	prepare, tryLock, lockFree, holds, unlock string
	beat, relays, forget, purge               string
}

func (s *sqlStore) FleetPrepareLease(ctx context.Context, conn *sql.Conn, idle time.Duration) error {
	arg := any(idle.Milliseconds())
	if s.d.Name() == "mysql" {
		arg = int64((idle + time.Second - 1) / time.Second)
	}
	if _, err := conn.ExecContext(ctx, s.fl.prepare, arg); err != nil {
		return fmt.Errorf("bound the lease session's idle time: %w", s.interpret(err))
	}
	return nil
}

func (s *sqlStore) FleetTryLock(ctx context.Context, conn *sql.Conn) (bool, error) {
	return s.lockQuery(ctx, conn, "take the drain lease", s.fl.tryLock)
}

func (s *sqlStore) FleetLockFree(ctx context.Context, db DBTX) (bool, error) {
	return s.lockQuery(ctx, db, "look at the drain lease", s.fl.lockFree)
}

func (s *sqlStore) FleetHolds(ctx context.Context, conn *sql.Conn) (bool, error) {
	return s.lockQuery(ctx, conn, "check the drain lease", s.fl.holds)
}

// lockQuery runs a statement about the drain lease that answers one boolean (a NULL is an error: MySQL's lock
// functions answer NULL when they fail).
func (s *sqlStore) lockQuery(ctx context.Context, db DBTX, what, q string) (bool, error) {
	var ok sql.NullBool
	if err := db.QueryRowContext(ctx, q, s.t.Prefix).Scan(&ok); err != nil {
		return false, fmt.Errorf("%s: %w", what, s.interpret(err))
	}
	if !ok.Valid {
		return false, fmt.Errorf("%s: the database answered NULL", what)
	}
	return ok.Bool, nil
}

func (s *sqlStore) FleetUnlock(ctx context.Context, conn *sql.Conn) error {
	if _, err := conn.ExecContext(ctx, s.fl.unlock, s.t.Prefix); err != nil {
		return fmt.Errorf("release the drain lease: %w", s.interpret(err))
	}
	return nil
}

func (s *sqlStore) FleetBeat(ctx context.Context, db DBTX, p *FleetBeatParams) ([]FleetRelay, error) {
	if _, err := db.ExecContext(ctx, s.fl.beat, p.Relay, p.Holds, p.Held, p.MaxHeld); err != nil {
		return nil, fmt.Errorf("record the relay's heartbeat: %w", s.interpret(err))
	}
	return s.FleetRelays(ctx, db, p.Live)
}

func (s *sqlStore) FleetRelays(ctx context.Context, db DBTX, within time.Duration) ([]FleetRelay, error) {
	rows, err := db.QueryContext(ctx, s.fl.relays, within.Microseconds())
	if err != nil {
		return nil, fmt.Errorf("read the relays' heartbeats: %w", s.interpret(err))
	}
	defer rows.Close()
	var out []FleetRelay
	for rows.Next() {
		var r FleetRelay
		var ageUS int64
		if err := rows.Scan(&r.ID, &r.Holds, &r.Held, &r.MaxHeld, &ageUS); err != nil {
			return nil, fmt.Errorf("read the relays' heartbeats: %w", s.interpret(err))
		}
		r.Age = time.Duration(ageUS) * time.Microsecond
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read the relays' heartbeats: %w", s.interpret(err))
	}
	return out, nil
}

func (s *sqlStore) FleetForget(ctx context.Context, db DBTX, relay string) (bool, error) {
	n, err := s.execCount(ctx, db, "delete the relay's heartbeat", s.fl.forget, relay)
	return n > 0, err
}

func (s *sqlStore) FleetPurge(ctx context.Context, db DBTX, olderThan time.Duration) (int, error) {
	return s.execCount(ctx, db, "purge old relay heartbeats", s.fl.purge, olderThan.Microseconds())
}
