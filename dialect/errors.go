package dialect

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"io"
	"net"
	"strings"
	"syscall"

	"github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5/pgconn"
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
	// ErrConnection matches a lost or refused connection (see Classify for the errors it covers); whether the
	// statement ran is unknown.
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
//
// KindConnection covers every way the three drivers report a connection that is gone or cannot be had: server
// codes (MySQL 2006, 2013, 1927, 4031, shutdowns; PostgreSQL class 08, 57P01-57P03, 57P05, 25P03),
// driver.ErrBadConn, sql.ErrConnDone, mysql.ErrInvalidConn, pgconn.ErrConnClosed ("conn closed"),
// io.EOF and io.ErrUnexpectedEOF, refused, reset, aborted or broken connections (ECONNREFUSED, ECONNRESET,
// ECONNABORTED, EPIPE, ETIMEDOUT, also inside *net.OpError), any other net.Error, and the same failures when
// an error on the way dropped their type and kept only their text ("connection reset by peer", "broken pipe",
// "invalid connection", "bad connection", "conn closed", "unexpected EOF", "connection refused",
// "server closed the connection unexpectedly", "use of closed network connection").
//
// An error caused by a context (context.DeadlineExceeded, context.Canceled anywhere in its chain) is never
// KindConnection: the caller gave up, the database did not go away. It classifies by its other parts, and as
// KindOther when they would say connection.
func Classify(err error) Kind {
	if err == nil {
		return KindOther
	}
	var de *Error
	if errors.As(err, &de) {
		return de.Kind
	}
	k := classify(err)
	if k == KindConnection && (errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled)) {
		return KindOther
	}
	return k
}

func classify(err error) Kind {
	var me *mysql.MySQLError
	if errors.As(err, &me) {
		switch me.Number {
		case 1062, 1586: // ER_DUP_ENTRY, ER_DUP_ENTRY_WITH_KEY_NAME
			return KindDuplicateKey
		case 1213, 1205, 1614, 3572, 4025: // deadlock, lock wait timeout, XA deadlock, NOWAIT, wsrep
			return KindRetryable
		case 1146, 1054: // ER_NO_SUCH_TABLE, ER_BAD_FIELD_ERROR
			return KindSchemaMissing
		case 1927, 2006, 2013, 1053, 1077, 4031: // killed, gone away, lost, shutdown, disconnected for inactivity
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
		case len(code) == 5 && code[:2] == "08", code == "57P01", code == "57P02", code == "57P03", code == "57P05",
			code == "25P03": // connection exceptions, shutdowns, idle (in transaction) session timeouts
			return KindConnection
		}
		return KindOther
	}
	for _, target := range connectionErrors {
		if errors.Is(err, target) {
			return KindConnection
		}
	}
	var ne net.Error
	if errors.As(err, &ne) {
		return KindConnection
	}
	msg := strings.ToLower(err.Error())
	for _, s := range connectionTexts {
		if strings.Contains(msg, s) {
			return KindConnection
		}
	}
	return KindOther
}

// connectionErrors are the sentinels and errnos of a lost or refused connection.
var connectionErrors = []error{
	driver.ErrBadConn, sql.ErrConnDone, mysql.ErrInvalidConn, pgconn.ErrConnClosed, io.ErrUnexpectedEOF, io.EOF,
	syscall.ECONNREFUSED, syscall.ECONNRESET, syscall.ECONNABORTED, syscall.EPIPE, syscall.ETIMEDOUT,
}

// connectionTexts are the same failures as text, lower case, for errors that lost their type on the way.
var connectionTexts = []string{
	"connection reset by peer", "broken pipe", "invalid connection", "bad connection", "conn closed",
	"unexpected eof", "connection refused", "server closed the connection unexpectedly",
	"use of closed network connection", "connection is already closed",
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
