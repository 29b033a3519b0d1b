// Package standin holds a throwaway stand-in for txbox's inbox package, with the API shapes
// of DESIGN.md, so examples/orders could be built and run before that package was merged. They are not
// txbox: no ordering, no dead letters, no fingerprints. Delete this directory once the real packages are in.
package standin

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/txbox/txbox/dialect"
)

// Setup creates the stand-in's table.
func Setup(ctx context.Context, db *sql.DB, d dialect.Dialect) error {
	stmts := []string{
		`CREATE TABLE IF NOT EXISTS standin_inbox (consumer VARBINARY(128) NOT NULL, msg_key VARBINARY(512) NOT NULL,
			PRIMARY KEY (consumer, msg_key))`,
	}
	if d.Name() == "postgres" {
		stmts = []string{
			`CREATE TABLE IF NOT EXISTS standin_inbox (consumer TEXT NOT NULL, msg_key TEXT COLLATE "C" NOT NULL,
				PRIMARY KEY (consumer, msg_key))`,
		}
	}
	for _, s := range stmts {
		if _, err := db.ExecContext(ctx, s); err != nil {
			return fmt.Errorf("standin setup: %w", err)
		}
	}
	return nil
}
