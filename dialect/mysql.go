package dialect

import (
	"fmt"
	"strings"

	"github.com/jmoiron/sqlx"
)

type mysqlDialect struct{}

func (mysqlDialect) sealed()                             {}
func (mysqlDialect) Name() string                        { return "mysql" }
func (mysqlDialect) BindType() int                       { return sqlx.QUESTION }
func (mysqlDialect) Rebind(q string) string              { return q }
func (mysqlDialect) QuoteIdent(n string) (string, error) { return quoteIdent(n, '`') }
func (mysqlDialect) InterpretError(err error) error      { return interpretError(err) }

func (d mysqlDialect) UpsertSQL(u Upsert, rows int) (string, error) {
	if err := u.validate(); err != nil {
		return "", err
	}
	if rows < 1 {
		return "", fmt.Errorf("upsert: rows must be at least 1, got %d", rows)
	}
	table, _ := d.QuoteIdent(u.Table)
	var b strings.Builder
	b.WriteString("INSERT INTO ")
	b.WriteString(table)
	b.WriteString(" (")
	writeList(&b, u.Columns, "`", "`")
	b.WriteString(") VALUES ")
	writeValueRows(&b, rows, len(u.Columns), func(int) string { return "?" })
	b.WriteString(" ON DUPLICATE KEY UPDATE ")
	if len(u.Update) == 0 {
		// A no-op assignment, not INSERT IGNORE: IGNORE would also swallow truncation, FK and NOT NULL errors.
		c := "`" + u.Conflict[0] + "`"
		b.WriteString(c + " = " + c)
	} else {
		for i, c := range u.Update {
			if i > 0 {
				b.WriteString(", ")
			}
			fmt.Fprintf(&b, "`%s` = VALUES(`%s`)", c, c)
		}
	}
	return b.String(), nil
}
