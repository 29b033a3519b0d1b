package outbox

import (
	"fmt"
	"time"

	"github.com/txbox/txbox/dialect"
)

// The instants each database's outbox column (available_at) can hold, in UTC: MySQL's DATETIME(6) and
// PostgreSQL's TIMESTAMPTZ (4714-11-24 BC to the end of 294276 AD). Enqueue refuses a DeliverAt outside them,
// which the database would otherwise reject with an error of its own (or, for MySQL without strict mode, store
// as a zero date).
var (
	mysqlMinDeliverAt    = time.Date(1000, 1, 1, 0, 0, 0, 0, time.UTC)
	mysqlMaxDeliverAt    = time.Date(9999, 12, 31, 23, 59, 59, 999999000, time.UTC)
	postgresMinDeliverAt = time.Date(-4713, 11, 24, 0, 0, 0, 0, time.UTC)
	postgresMaxDeliverAt = time.Date(294276, 12, 31, 23, 59, 59, 999999000, time.UTC)
)

// checkDeliverAt refuses a DeliverAt (other than zero, "at once") the dialect's database cannot store. Instants
// are stored to the microsecond, truncated.
func checkDeliverAt(d dialect.Dialect, at time.Time) error {
	if at.IsZero() {
		return nil
	}
	lo, hi := postgresMinDeliverAt, postgresMaxDeliverAt
	if d.Name() == "mysql" {
		lo, hi = mysqlMinDeliverAt, mysqlMaxDeliverAt
	}
	if at = at.Truncate(time.Microsecond); at.Before(lo) || at.After(hi) {
		return fmt.Errorf("%w: DeliverAt %s is outside what the %s outbox stores (%s to %s)", ErrInvalidMessage,
			at.UTC().Format(time.RFC3339Nano), d.Name(), lo.Format(time.RFC3339), hi.Format(time.RFC3339Nano))
	}
	return nil
}
