// Command ferretdb runs FerretDB v1 embedded in a small main module of ours.
//
// Building FerretDB's own cmd/ferretdb with `go install` yields a binary that panics at start
// (its version file is generated at release time and is not part of the module). Embedding the
// public package github.com/FerretDB/FerretDB/ferretdb avoids that.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/FerretDB/FerretDB/ferretdb"
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
