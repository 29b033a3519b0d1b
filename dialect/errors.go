package dialect

import (
	"context"
	"database/sql/driver"
	"errors"
	"io"
	"net"
	"syscall"

	"github.com/go-sql-driver/mysql"
)

// Errors returned (wrapped) by this package. Callers match them with errors.Is.
var (
	// ErrInvalidIdent is returned by ValidateIdent, QuoteIdent and the upsert builder for a name that is not a
	// plain SQL identifier.
	ErrInvalidIdent = errors.New("dialect: invalid SQL identifier")
	// ErrInvalidKey is returned by CheckKey (and so by inbox and outbox) for an empty, over-long or non-UTF-8 key.
	ErrInvalidKey = errors.New("invalid key")

	// ErrDuplicateKey matches a unique-constraint violation (MySQL 1062, PostgreSQL 23505).
	ErrDuplicateKey = errors.New("duplicate key")
	// ErrRetryable matches a failure that a new transaction may not hit: deadlock, lock wait timeout,
	// serialization failure, lock not available.
	ErrRetryable = errors.New("retryable database error (deadlock, lock timeout or serialization failure)")
	// ErrConnection matches a lost or refused connection; whether the statement ran is unknown.
	ErrConnection = errors.New("database connection lost")
	// ErrSchemaMissing matches a statement on a table or column that does not exist, which for txbox means the
	// migrations have not been run (see package migrations).
	ErrSchemaMissing = errors.New("txbox schema missing: run the migrations (migrations.Up or `txbox migrate up`)")
)

// Kind is the class of a database error.
type Kind int

// Error kinds, see Classify.
const (
	KindOther Kind = iota
	KindDuplicateKey
	KindRetryable
	KindConnection
	KindSchemaMissing
)

func (k Kind) sentinel() error {
	switch k {
	case KindDuplicateKey:
		return ErrDuplicateKey
	case KindRetryable:
		return ErrRetryable
	case KindConnection:
		return ErrConnection
	case KindSchemaMissing:
		return ErrSchemaMissing
	}
	return nil
}

// Classify tells what kind of failure err is, for errors from go-sql-driver/mysql, lib/pq and pgx alike (their
// error types do not overlap, so no dialect is needed). Errors already wrapped by InterpretError classify as
// their kind.
func Classify(err error) Kind {
	if err == nil {
		return KindOther
	}
	var de *Error
	if errors.As(err, &de) {
		return de.Kind
	}
	var me *mysql.MySQLError
	if errors.As(err, &me) {
		switch me.Number {
		case 1062, 1586: // ER_DUP_ENTRY, ER_DUP_ENTRY_WITH_KEY_NAME
			return KindDuplicateKey
		case 1213, 1205, 1614, 3572, 4025: // deadlock, lock wait timeout, XA deadlock, NOWAIT, wsrep
			return KindRetryable
		case 1146, 1054: // ER_NO_SUCH_TABLE, ER_BAD_FIELD_ERROR
			return KindSchemaMissing
		case 1927, 2006, 2013, 1053, 1077: // connection killed, gone away, lost, server shutdown
			return KindConnection
		}
		return KindOther
	}
	var st interface{ SQLState() string } // *pq.Error and *pgconn.PgError
	if errors.As(err, &st) {
		code := st.SQLState()
		switch {
		case code == "23505":
			return KindDuplicateKey
		case code == "40001", code == "40P01", code == "55P03":
			return KindRetryable
		case code == "42P01", code == "42703", code == "3F000":
			return KindSchemaMissing
		case len(code) == 5 && code[:2] == "08", code == "57P01", code == "57P02", code == "57P03":
			return KindConnection
		}
		return KindOther
	}
	if errors.Is(err, driver.ErrBadConn) || errors.Is(err, mysql.ErrInvalidConn) ||
		errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) ||
		errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) {
		return KindConnection
	}
	var ne net.Error
	if errors.As(err, &ne) && !errors.Is(err, context.DeadlineExceeded) {
		return KindConnection
	}
	return KindOther
}

// Error is a classified database error, as returned by a Dialect's InterpretError.
type Error struct {
	Kind Kind
	Err  error // the driver's error
}

func (e *Error) Error() string { return e.Err.Error() }
func (e *Error) Unwrap() error { return e.Err }

// Is makes errors.Is(err, ErrDuplicateKey) (and the other kind sentinels) true for an *Error of that kind.
func (e *Error) Is(target error) bool { s := e.Kind.sentinel(); return s != nil && target == s }

func interpretError(err error) error {
	if err == nil {
		return nil
	}
	var de *Error
	if errors.As(err, &de) {
		return err
	}
	if k := Classify(err); k != KindOther {
		return &Error{Kind: k, Err: err}
	}
	return err
}
