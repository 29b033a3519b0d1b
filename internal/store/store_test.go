package store_test

import (
	"testing"

	"github.com/txbox/txbox/internal/store/storetest"
	"github.com/txbox/txbox/internal/testdb"
)

func TestMain(m *testing.M) { testdb.Main(m) }

// TestConformance runs the store conformance suite on MariaDB, PostgreSQL/lib/pq and PostgreSQL/pgx.
func TestConformance(t *testing.T) { storetest.Run(t) }
