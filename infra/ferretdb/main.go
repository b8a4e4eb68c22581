// Command ferretdb runs FerretDB v1 embedded in a small main module of ours.
//
// Building FerretDB's own cmd/ferretdb with `go install` yields a binary that panics at start
// (its version file is generated at release time and is not part of the module). Embedding the
// public package github.com/FerretDB/FerretDB/ferretdb avoids that.
//
// It also keeps an index that FerretDB v1.24's SQLite backend needs but does not make: queries by
// _id filter on `_ferretdb_sjson->'$._id'`, while the _id index FerretDB creates is on
// `_ferretdb_sjson->"_id"`, so SQLite cannot use it and every lookup by _id scans the whole
// table (FerretDB issue #3340). An index on the exact expression the queries use turns those
// scans into index searches; FerretDB's own unique index still enforces uniqueness.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"database/sql"

	"github.com/FerretDB/FerretDB/ferretdb"
	_ "modernc.org/sqlite" // the SQLite driver FerretDB itself uses
)

func main() {
	listen := flag.String("listen-addr", envOr("NRW_FERRETDB_LISTEN", "127.0.0.1:27017"), "TCP address to serve the MongoDB wire protocol on")
	handler := flag.String("handler", envOr("NRW_FERRETDB_HANDLER", "sqlite"), "storage backend: sqlite or postgresql")
	sqliteURL := flag.String("sqlite-url", envOr("NRW_FERRETDB_SQLITE_URL", "file:var/ferretdb/"), "SQLite directory URI (sqlite backend)")
	postgresURL := flag.String("postgresql-url", os.Getenv("NRW_FERRETDB_POSTGRESQL_URL"), "PostgreSQL URL (postgresql backend)")
	logLevel := flag.String("log-level", envOr("NRW_FERRETDB_LOG_LEVEL", "error"), "debug, info, warn or error")
	flag.Parse()

	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		fmt.Fprintf(os.Stderr, "ferretdb: bad --log-level %q: %v\n", *logLevel, err)
		os.Exit(2)
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))

	f, err := ferretdb.New(&ferretdb.Config{
		Listener:      ferretdb.ListenerConfig{TCP: *listen},
		Logger:        logger,
		Handler:       *handler,
		SQLiteURL:     *sqliteURL,
		PostgreSQLURL: *postgresURL,
	})
	if err != nil {
		fmt.Fprintf(os.Stderr, "ferretdb: %v\n", err)
		os.Exit(1)
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	if *handler == "sqlite" {
		go keepIDIndexes(ctx, logger, strings.TrimPrefix(strings.SplitN(*sqliteURL, "?", 2)[0], "file:"))
	}

	fmt.Fprintf(os.Stderr, "ferretdb: serving %s (%s backend)\n", f.MongoDBURI(), *handler)
	if err := f.Run(ctx); err != nil {
		fmt.Fprintf(os.Stderr, "ferretdb: %v\n", err)
		os.Exit(1)
	}
}

func envOr(name, fallback string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return fallback
}

// keepIDIndexes adds the missing _id expression index to every collection table, now and every
// few seconds (collections are created on first use).
func keepIDIndexes(ctx context.Context, logger *slog.Logger, dir string) {
	ticker := time.NewTicker(3 * time.Second)
	defer ticker.Stop()
	for {
		files, _ := filepath.Glob(filepath.Join(dir, "*.sqlite"))
		for _, file := range files {
			if err := indexFile(ctx, file); err != nil {
				logger.Warn("could not add _id indexes", "file", filepath.Base(file), "error", err)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
		}
	}
}

func indexFile(ctx context.Context, file string) error {
	db, err := sql.Open("sqlite", "file:"+file+"?_pragma=busy_timeout(10000)")
	if err != nil {
		return err
	}
	defer db.Close()

	rows, err := db.QueryContext(ctx, `SELECT table_name FROM _ferretdb_collections`)
	if err != nil {
		return err
	}
	var tables []string
	for rows.Next() {
		var table string
		if err := rows.Scan(&table); err != nil {
			rows.Close()
			return err
		}
		tables = append(tables, table)
	}
	rows.Close()

	for _, table := range tables {
		q := fmt.Sprintf(`CREATE INDEX IF NOT EXISTS %q ON %q (_ferretdb_sjson->'$._id')`, table+"_nrw_id_path", table)
		if _, err := db.ExecContext(ctx, q); err != nil {
			return err
		}
	}
	return nil
}
