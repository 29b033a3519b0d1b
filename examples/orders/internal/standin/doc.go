// Package standin holds throwaway stand-ins for txbox's outbox, inbox and relay packages, with the API shapes
// of DESIGN.md, so examples/orders could be built and run before those packages were merged. They are not
// txbox: no ordering, no dead letters, no fingerprints. Delete this directory once the real packages are in.
package standin

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/txbox/txbox/dialect"
)

// Setup creates the stand-ins' tables.
func Setup(ctx context.Context, db *sql.DB, d dialect.Dialect) error {
	stmts := []string{
		`CREATE TABLE IF NOT EXISTS standin_outbox (id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY, topic VARCHAR(255) NOT NULL,
			msg_key VARBINARY(512) NOT NULL, payload BLOB NOT NULL)`,
		`CREATE TABLE IF NOT EXISTS standin_inbox (consumer VARBINARY(128) NOT NULL, msg_key VARBINARY(512) NOT NULL,
			PRIMARY KEY (consumer, msg_key))`,
	}
	if d.Name() == "postgres" {
		stmts = []string{
			`CREATE TABLE IF NOT EXISTS standin_outbox (id BIGSERIAL PRIMARY KEY, topic TEXT NOT NULL,
				msg_key TEXT NOT NULL, payload BYTEA NOT NULL)`,
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
