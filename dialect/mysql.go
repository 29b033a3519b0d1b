package dialect

import (
	"fmt"

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
	b, err := u.insertHead(d, rows, "`", func(int) string { return "?" })
	if err != nil {
		return "", err
	}
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
			fmt.Fprintf(b, "`%s` = VALUES(`%s`)", c, c)
		}
	}
	return b.String(), nil
}
