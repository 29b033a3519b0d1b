package inbox

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"

	"github.com/jmoiron/sqlx"

	"github.com/txbox/txbox/dialect"
	"github.com/txbox/txbox/internal/store"
)

// SQLEffectStoreConfig configures an SQLEffectStore.
type SQLEffectStoreConfig struct {
	// Dialect is the database family of the *sqlx.DB: dialect.MySQL or dialect.Postgres. Required.
	Dialect dialect.Dialect
	// Prefix names the installation's tables (see dialect.TablesFor): the records live in <prefix>_effects,
	// created by package migrations with the same prefix. Default "txbox".
	Prefix string
}

// SQLEffectStore is the EffectStore on MySQL/MariaDB or PostgreSQL: the installation's effects table. Each
// transition is one statement (Begin: an INSERT for a new key, else a read and a compare-and-swap on the owner
// token) on the pool, outside any transaction, so no lock is held while the effect runs; lease instants come
// from the database's clock. Purge deletes in batches of short transactions.
type SQLEffectStore struct {
	db *sqlx.DB
	d  dialect.Dialect
	s  store.Store
}

// NewSQLEffectStore returns the EffectStore of db's effects table for cfg. The error matches ErrInvalidConfig.
// It runs no SQL: Effects.Check tells whether the table exists.
func NewSQLEffectStore(db *sqlx.DB, cfg SQLEffectStoreConfig) (*SQLEffectStore, error) {
	if db == nil {
		return nil, fmt.Errorf("%w: nil *sqlx.DB", ErrInvalidConfig)
	}
	if cfg.Dialect == nil {
		return nil, fmt.Errorf("%w: Dialect is required (dialect.MySQL or dialect.Postgres)", ErrInvalidConfig)
	}
	if want := driverDialect(db.DriverName()); want != "" && want != cfg.Dialect.Name() {
		return nil, fmt.Errorf("%w: Dialect is %s but the *sqlx.DB uses driver %q", ErrInvalidConfig,
			cfg.Dialect.Name(), db.DriverName())
	}
	t, err := dialect.TablesFor(cfg.Prefix)
	if err != nil {
		return nil, fmt.Errorf("%w: Prefix: %w", ErrInvalidConfig, err)
	}
	s, err := store.New(cfg.Dialect, t)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidConfig, err)
	}
	return &SQLEffectStore{db: db, d: cfg.Dialect, s: s}, nil
}

var _ EffectStore = (*SQLEffectStore)(nil)

// effectDead is the stored form of d.
func effectDead(d Delivery) (store.EffectDead, error) {
	dead := store.EffectDead{Payload: d.Payload, Topic: d.Topic, MessageID: d.MessageID}
	if len(d.Headers) > 0 {
		b, err := json.Marshal(d.Headers)
		if err != nil {
			return dead, fmt.Errorf("encode headers: %w", err)
		}
		dead.Headers = b
	}
	return dead, nil
}

// BeginEffect implements EffectStore.
func (s *SQLEffectStore) BeginEffect(ctx context.Context, p *EffectBeginParams) (EffectBeginResult, error) {
	dead, err := effectDead(p.Delivery)
	if err != nil {
		return EffectBeginResult{}, err
	}
	r, err := s.s.EffectBegin(ctx, s.db, &store.EffectBeginParams{Consumer: p.Consumer, Key: p.Delivery.Key,
		Fingerprint: p.Fingerprint, Owner: p.Owner, Lease: p.Lease, MaxAttempts: p.MaxAttempts,
		ExpiredError: p.ExpiredError, Dead: dead})
	if err != nil {
		return EffectBeginResult{}, err
	}
	st := effectStatuses[r.Status]
	return EffectBeginResult{Status: st.s, TakenOver: st.takenOver, ParkedNow: st.parkedNow, Attempts: r.Attempts,
		Fingerprint: r.Fingerprint, Result: r.Result, LeaseLeft: r.LeaseLeft}, nil
}

// effectStatuses maps the SQL store's statuses to this package's, and tells the ones that took over or parked.
var effectStatuses = map[store.EffectStatus]struct {
	s                    EffectStatus
	takenOver, parkedNow bool
}{
	store.EffectAcquired: {s: EffectAcquired}, store.EffectTakenOver: {s: EffectAcquired, takenOver: true},
	store.EffectCompleted: {s: EffectCompleted}, store.EffectBusy: {s: EffectBusy}, store.EffectParked: {s: EffectParked},
	store.EffectParkedNow: {s: EffectParked, parkedNow: true}, store.EffectMismatch: {s: EffectMismatch},
}

// CompleteEffect implements EffectStore.
func (s *SQLEffectStore) CompleteEffect(ctx context.Context, p *EffectCompleteParams) (bool, error) {
	return s.s.EffectComplete(ctx, s.db, &store.EffectCompleteParams{Consumer: p.Consumer, Key: p.Key, Owner: p.Owner,
		Result: p.Result})
}

// ReleaseEffect implements EffectStore.
func (s *SQLEffectStore) ReleaseEffect(ctx context.Context, p *EffectReleaseParams) (bool, error) {
	rp := store.EffectReleaseParams{Consumer: p.Consumer, Key: p.Delivery.Key, Owner: p.Owner, LastError: p.LastError,
		Park: p.Park}
	if p.Park {
		dead, err := effectDead(p.Delivery)
		if err != nil {
			return false, err
		}
		rp.Dead = dead
	}
	return s.s.EffectRelease(ctx, s.db, &rp)
}

// ListParkedEffects implements EffectStore.
func (s *SQLEffectStore) ListParkedEffects(ctx context.Context, p *EffectDeadListParams) ([]EffectDeadLetter, error) {
	rows, err := s.s.EffectDeadList(ctx, s.db, &store.EffectDeadListParams{Consumer: p.Consumer, Key: p.Key,
		AfterKey: p.AfterKey, Limit: p.Limit})
	if err != nil {
		return nil, err
	}
	out := make([]EffectDeadLetter, 0, len(rows))
	for _, r := range rows {
		dl, err := effectDeadLetter(r)
		if err != nil {
			return nil, err
		}
		out = append(out, dl)
	}
	return out, nil
}

func effectDeadLetter(r store.EffectDeadRow) (EffectDeadLetter, error) {
	dl := EffectDeadLetter{
		Delivery:    Delivery{Key: r.Key, Payload: r.Payload, Topic: r.Topic, MessageID: r.MessageID},
		Fingerprint: r.Fingerprint, Attempts: r.Attempts, LastError: r.LastError, ParkedAt: r.ParkedAt,
	}
	if len(r.Headers) > 0 {
		if err := json.Unmarshal(r.Headers, &dl.Delivery.Headers); err != nil {
			return dl, fmt.Errorf("parked effect of key %q: decode headers: %w", r.Key, err)
		}
	}
	return dl, nil
}

// TakeParkedEffect implements EffectStore.
func (s *SQLEffectStore) TakeParkedEffect(ctx context.Context, p *EffectTakeParkedParams) (EffectDeadLetter, bool, error) {
	r, found, err := s.s.EffectTakeParked(ctx, s.db, &store.EffectTakeParkedParams{Consumer: p.Consumer, Key: p.Key,
		Owner: p.Owner, Lease: p.Lease})
	if err != nil || !found {
		return EffectDeadLetter{}, false, err
	}
	dl, err := effectDeadLetter(r)
	return dl, err == nil, err
}

// DropParkedEffect implements EffectStore.
func (s *SQLEffectStore) DropParkedEffect(ctx context.Context, p *EffectKeyParams) (bool, error) {
	return s.s.EffectDropParked(ctx, s.db, &store.EffectKeyParams{Consumer: p.Consumer, Key: p.Key})
}

// PurgeEffects implements EffectStore: one batch in its own READ COMMITTED transaction (see Inbox.Purge).
func (s *SQLEffectStore) PurgeEffects(ctx context.Context, p *EffectPurgeParams) (int, error) {
	tx, err := s.db.BeginTxx(ctx, &sql.TxOptions{Isolation: sql.LevelReadCommitted})
	if err != nil {
		return 0, fmt.Errorf("begin transaction: %w", s.d.InterpretError(err))
	}
	defer rollback(tx)
	n, err := s.s.EffectPurge(ctx, tx, &store.EffectPurgeParams{Consumer: p.Consumer, OlderThan: p.OlderThan, Limit: p.Limit})
	if err != nil {
		return 0, err
	}
	if err := tx.Commit(); err != nil {
		return 0, fmt.Errorf("commit: %w", s.d.InterpretError(err))
	}
	return n, nil
}

// CheckEffects implements EffectStore: the error matches dialect.ErrSchemaMissing when the migrations have not
// run, dialect.ErrConnection when the database cannot be reached.
func (s *SQLEffectStore) CheckEffects(ctx context.Context) error {
	return s.s.EffectCheckSchema(ctx, s.db)
}
