package dialect

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
)

// Upsert describes an idempotent insert for handler code: insert a row, and when a row with the same
// Conflict columns exists, overwrite the Update columns (or leave the row alone when Update is empty).
// Running it twice with the same arguments leaves the same row, which is what a redelivered message needs.
//
// On MySQL/MariaDB it renders INSERT ... ON DUPLICATE KEY UPDATE c = VALUES(c) (MariaDB has no "AS new" row
// alias, VALUES() works on both); on PostgreSQL INSERT ... ON CONFLICT (conflict) DO UPDATE SET
// c = EXCLUDED.c, or DO NOTHING. On MySQL the Conflict columns must be the unique key that collides (MySQL
// cannot name the conflict target); list them anyway, they document the intent and PostgreSQL needs them.
//
//	u := dialect.Upsert{Table: "payments", Columns: []string{"order_id", "amount"},
//		Conflict: []string{"order_id"}, Update: []string{"amount"}}
//	_, err := u.Exec(ctx, tx, d, orderID, amount)
type Upsert struct {
	Table    string   // required; validated like every identifier ("schema.table" allowed)
	Columns  []string // required: inserted columns, in the order of the arguments
	Conflict []string // required: columns of the unique key that identifies the row
	Update   []string // columns overwritten on conflict; empty means keep the existing row (DO NOTHING)
}

func (u Upsert) validate() error {
	if err := ValidateIdent(u.Table); err != nil {
		return fmt.Errorf("upsert: Table: %w", err)
	}
	if len(u.Columns) == 0 {
		return errors.New("upsert: Columns is empty")
	}
	if len(u.Conflict) == 0 {
		return errors.New("upsert: Conflict is empty")
	}
	cols := make(map[string]bool, len(u.Columns))
	for _, c := range u.Columns {
		if err := checkIdentPart(c); err != nil {
			return fmt.Errorf("upsert: column %q: %w: %s", c, ErrInvalidIdent, err)
		}
		if cols[c] {
			return fmt.Errorf("upsert: column %q listed twice", c)
		}
		cols[c] = true
	}
	for _, c := range u.Conflict {
		if !cols[c] {
			return fmt.Errorf("upsert: conflict column %q is not in Columns", c)
		}
	}
	for _, c := range u.Update {
		if !cols[c] {
			return fmt.Errorf("upsert: update column %q is not in Columns", c)
		}
	}
	return nil
}

// insertHead validates u and writes "INSERT INTO table (columns) VALUES (...), ..." for rows rows, quoting
// names with q and rendering the n-th placeholder with ph.
func (u Upsert) insertHead(d Dialect, rows int, q string, ph func(n int) string) (*strings.Builder, error) {
	if err := u.validate(); err != nil {
		return nil, err
	}
	if rows < 1 {
		return nil, fmt.Errorf("upsert: rows must be at least 1, got %d", rows)
	}
	table, _ := d.QuoteIdent(u.Table)
	b := &strings.Builder{}
	b.WriteString("INSERT INTO ")
	b.WriteString(table)
	b.WriteString(" (")
	writeList(b, u.Columns, q, q)
	b.WriteString(") VALUES ")
	writeValueRows(b, rows, len(u.Columns), ph)
	return b, nil
}

// Exec renders u for one row on d and runs it with args (one per column) on db.
func (u Upsert) Exec(ctx context.Context, db DBTX, d Dialect, args ...any) (sql.Result, error) {
	if len(args) != len(u.Columns) {
		return nil, fmt.Errorf("upsert into %s: %d arguments for %d columns", u.Table, len(args), len(u.Columns))
	}
	q, err := d.UpsertSQL(u, 1)
	if err != nil {
		return nil, err
	}
	res, err := db.ExecContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("upsert into %s: %w", u.Table, d.InterpretError(err))
	}
	return res, nil
}
