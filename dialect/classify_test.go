package dialect_test

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"syscall"
	"testing"

	"github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/lib/pq"

	"github.com/txbox/txbox/dialect"
)

// Every shape of a lost connection the three drivers produce is KindConnection, wrapped or not; a context that
// ended never is. Real cuts through a proxy are in internal/faults.
func TestClassifyConnectionLoss(t *testing.T) {
	reset := &net.OpError{Op: "read", Net: "tcp", Err: os.NewSyscallError("read", syscall.ECONNRESET)}
	pipe := &net.OpError{Op: "write", Net: "tcp", Err: os.NewSyscallError("write", syscall.EPIPE)}
	refused := &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}
	conn := []error{
		pgconn.ErrConnClosed,
		fmt.Errorf("begin transaction: %w", pgconn.ErrConnClosed),
		sql.ErrConnDone, driver.ErrBadConn, mysql.ErrInvalidConn, io.EOF, io.ErrUnexpectedEOF,
		fmt.Errorf("commit: %w", io.ErrUnexpectedEOF),
		reset, pipe, refused, fmt.Errorf("query: %w", reset),
		syscall.ECONNABORTED, syscall.ETIMEDOUT,
		&mysql.MySQLError{Number: 2013}, &mysql.MySQLError{Number: 2006}, &mysql.MySQLError{Number: 1927},
		&mysql.MySQLError{Number: 4031},
		&pq.Error{Code: "57P01"}, &pq.Error{Code: "08006"}, &pgconn.PgError{Code: "57P05"}, &pgconn.PgError{Code: "25P03"},
		// The text of a lost connection whose type an error on the way dropped.
		errors.New("handler: read tcp 127.0.0.1:1->127.0.0.1:2: read: connection reset by peer"),
		errors.New("invalid connection"), errors.New("write: broken pipe"), errors.New("conn closed"),
		errors.New("driver: bad connection"), errors.New("pq: server closed the connection unexpectedly"),
	}
	for _, err := range conn {
		if k := dialect.Classify(err); k != dialect.KindConnection {
			t.Errorf("Classify(%v) = %d, want KindConnection", err, k)
		}
		if !errors.Is(dialect.MySQL.InterpretError(err), dialect.ErrConnection) ||
			!errors.Is(dialect.Postgres.InterpretError(err), dialect.ErrConnection) {
			t.Errorf("InterpretError(%v) does not match ErrConnection", err)
		}
	}
	other := []error{
		context.DeadlineExceeded, context.Canceled,
		fmt.Errorf("timeout: %w", context.DeadlineExceeded), // pgx's errTimeout
		&net.OpError{Op: "read", Net: "tcp", Err: context.DeadlineExceeded},
		fmt.Errorf("inbox: process key %q: %w (%w)", "k", reset, context.Canceled), // the caller gave up
		&pq.Error{Code: "57014"}, &pgconn.PgError{Code: "23505"}, &mysql.MySQLError{Number: 1062},
		sql.ErrTxDone, sql.ErrNoRows, errors.New("payment declined"),
	}
	for _, err := range other {
		if k := dialect.Classify(err); k == dialect.KindConnection {
			t.Errorf("Classify(%v) = KindConnection, want another kind", err)
		}
	}
}
