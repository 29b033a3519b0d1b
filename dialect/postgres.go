package dialect

import (
	"fmt"

	"github.com/jmoiron/sqlx"
)

type postgresDialect struct{}

func (postgresDialect) sealed()                             {}
func (postgresDialect) Name() string                        { return "postgres" }
func (postgresDialect) BindType() int                       { return sqlx.DOLLAR }
func (postgresDialect) Rebind(q string) string              { return sqlx.Rebind(sqlx.DOLLAR, q) }
func (postgresDialect) QuoteIdent(n string) (string, error) { return quoteIdent(n, '"') }
func (postgresDialect) InterpretError(err error) error      { return interpretError(err) }

func (d postgresDialect) UpsertSQL(u Upsert, rows int) (string, error) {
	b, err := u.insertHead(d, rows, `"`, func(n int) string { return fmt.Sprintf("$%d", n) })
	if err != nil {
		return "", err
	}
	b.WriteString(" ON CONFLICT (")
	writeList(b, u.Conflict, `"`, `"`)
	if len(u.Update) == 0 {
		b.WriteString(") DO NOTHING")
		return b.String(), nil
	}
	b.WriteString(") DO UPDATE SET ")
	for i, c := range u.Update {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(b, `"%s" = EXCLUDED."%s"`, c, c)
	}
	return b.String(), nil
}
