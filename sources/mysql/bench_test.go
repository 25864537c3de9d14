package mysql

import (
	"fmt"
	"testing"

	"github.com/cdcd-dev/cdcd/internal/testenv"
	"github.com/cdcd-dev/cdcd/sources"
	"github.com/cdcd-dev/cdcd/sources/sourcetest"
	"github.com/go-mysql-org/go-mysql/client"
	"github.com/stretchr/testify/require"
)

// BenchmarkCatalog10k measures what the wizard's table step asks of a MariaDB
// source with 10,000 tables (100 databases of 100, 8 columns and a key
// each): the first page, a search for one table and one database's page,
// through the public Catalog as the API calls it. The UI needs 200 ms a
// request.
//
//	go test -run XXX -bench Catalog10k ./sources/mysql
func BenchmarkCatalog10k(b *testing.B) {
	m := testenv.StartMariaDB(b)
	conn, err := client.Connect(m.Addr(), "root", "", "")
	require.NoError(b, err)
	defer conn.Close()
	for d := range 100 {
		_, err := conn.Execute(fmt.Sprintf("CREATE DATABASE s%02d", d))
		require.NoError(b, err)
		for t := range 100 {
			_, err := conn.Execute(fmt.Sprintf("CREATE TABLE s%02d.t%02d (id bigint PRIMARY KEY, a text, b int, c decimal(12,2), d datetime(6), e json, f bool, g blob)", d, t))
			require.NoError(b, err)
		}
	}
	cfg := Config{Addr: m.Addr(), User: "root", Tables: []string{"s00.t00"}}.WithDefaults("bench")
	require.NoError(b, cfg.Validate())
	src := New(cfg, sources.Deps{})
	sourcetest.BenchCatalog10k(b, src)
}
