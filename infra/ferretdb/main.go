// Command ferretdb runs FerretDB v1.24 for the stack: it starts FerretDB's own command
// (ferretdb-server, built by build.sh), makes sure every database account exists with the password
// in its credentials file, and keeps the _id indexes FerretDB's SQLite backend lacks.
//
// Accounts. Only FerretDB's own command takes the flags of its authentication
// (--test-enable-new-auth, --setup-*): the embeddable package github.com/FerretDB/FerretDB/ferretdb
// has no option for them. With them, every command but the handshake, saslStart/saslContinue,
// ping, buildInfo and a few like them is refused to a client that has not authenticated with
// SCRAM. FerretDB v1.24 has no authorisation: createUser refuses any role (FerretDB issue #174),
// every authenticated account may read and write every database, and may create, change or drop
// any account (admin.system.users is an ordinary collection to it). So the accounts the database
// holds are never trusted: each start rebuilds them from the password files alone, on a Unix
// socket in the private run folder, before FerretDB listens on its TCP address. Step 1: FerretDB
// without authentication (its older mode, which asks the SQLite backend for no login) on the
// socket; this program drops admin.system.users, every account with it (one a service or a former
// insider made, an operator whose password a service changed) and any index a service put on it.
// Step 2: FerretDB with authentication on the socket, with --setup-* naming a database that does
// not exist (a random name) and an account with a random password made for this start, which
// FerretDB then creates itself as it creates its first user; logged in with it, this program
// creates one account per password file (<secrets>/mongo-<account>.password, written by
// `python -m shared.keys init`), then drops its own account and database. Step 3: FerretDB with
// authentication on the TCP address, without any setup flag or password in its environment. No
// service ever connects before its account exists, and nothing a service did to the accounts
// outlives a restart.
//
// Indexes. Queries by _id filter on `_ferretdb_sjson->'$._id'`, while the _id index FerretDB
// creates is on `_ferretdb_sjson->"_id"`, so SQLite cannot use it and every lookup by _id scans
// the whole table (FerretDB issue #3340). An index on the exact expression the queries use turns
// those scans into index searches; FerretDB's own unique index still enforces uniqueness.
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"syscall"
	"time"

	"database/sql"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/mongo"
	"go.mongodb.org/mongo-driver/mongo/options"
	_ "modernc.org/sqlite" // the SQLite driver FerretDB itself uses
)

// operator is the account the launcher and people log in with; its password file must be there.
const operator = "operator"

// startPrefix names the database of each start's own account (FerretDB's setup account); a
// database of that name left by a start that was killed is dropped by the next.
const startPrefix = "nrw_start_"

func main() {
	// FerretDB's processes are started from this thread: the kernel kills them when it ends (Pdeathsig).
	runtime.LockOSThread()
	listen := flag.String("listen-addr", envOr("NRW_FERRETDB_LISTEN", "127.0.0.1:27017"), "TCP address to serve the MongoDB wire protocol on")
	handler := flag.String("handler", envOr("NRW_FERRETDB_HANDLER", "sqlite"), "storage backend: sqlite or postgresql")
	sqliteURL := flag.String("sqlite-url", envOr("NRW_FERRETDB_SQLITE_URL", "file:var/ferretdb/"), "SQLite directory URI (sqlite backend)")
	postgresURL := flag.String("postgresql-url", os.Getenv("NRW_FERRETDB_POSTGRESQL_URL"), "PostgreSQL URL (postgresql backend)")
	logLevel := flag.String("log-level", envOr("NRW_FERRETDB_LOG_LEVEL", "error"), "debug, info, warn or error")
	varDir := envOr("NRW_VAR", "var")
	secretsDir := flag.String("secrets-dir", envOr("NRW_SECRETS_DIR", filepath.Join(varDir, "secrets")), "folder of the accounts' password files (mongo-<account>.password)")
	runDir := flag.String("run-dir", filepath.Join(varDir, "run"), "private folder for the setup step's Unix socket")
	server := flag.String("server", "", "FerretDB's own command (default: ferretdb-server next to this program)")
	flag.Parse()

	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		fail(2, "bad --log-level %q: %v", *logLevel, err)
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))

	if *server == "" {
		self, err := os.Executable()
		if err != nil {
			fail(1, "%v", err)
		}
		*server = filepath.Join(filepath.Dir(self), "ferretdb-server")
	}
	accounts, err := readAccounts(*secretsDir)
	if err != nil {
		fail(1, "%v", err)
	}
	sqliteDir := strings.TrimPrefix(strings.SplitN(*sqliteURL, "?", 2)[0], "file:")
	args := []string{
		"--handler=" + *handler, "--sqlite-url=" + *sqliteURL, "--state-dir=" + sqliteDir,
		"--log-level=" + *logLevel, "--telemetry=disable", "--debug-addr=-",
	}
	if *handler == "postgresql" {
		args = append(args, "--postgresql-url="+*postgresURL)
	}

	// A port another process holds (another stack's FerretDB, say) fails the start at once.
	if l, err := net.Listen("tcp", *listen); err != nil {
		fail(1, "%v", err)
	} else {
		l.Close()
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	// Steps 1 and 2, on a Unix socket only, in a folder no other user may enter (step 1 asks no login).
	if err := os.MkdirAll(*runDir, 0o700); err != nil {
		fail(1, "%v", err)
	}
	if err := os.Chmod(*runDir, 0o700); err != nil {
		fail(1, "the run folder must be private (0700): %v", err)
	}
	socket := filepath.Join(*runDir, "ferretdb-setup.sock")
	onSocket := func(step string, extra []string, env []string, credential *options.Credential,
		work func(context.Context, *mongo.Client) error) {
		_ = os.Remove(socket) // left by a process that was killed
		setup, err := startServer(*server, append(append(append([]string{}, args...), extra...),
			"--listen-addr=", "--listen-unix="+socket), env)
		if err != nil {
			fail(1, "%v", err)
		}
		ended := make(chan error, 1)
		go func() { ended <- setup.Wait() }()
		err = onSetupSocket(ctx, socket, ended, credential, work)
		_ = setup.Process.Signal(syscall.SIGTERM)
		<-ended
		if err != nil {
			fail(1, "%s: %v", step, err)
		}
		if ctx.Err() != nil {
			os.Exit(0)
		}
	}
	// Step 1: without authentication, delete every account and the start accounts' databases.
	onSocket("deleting the accounts", nil, serverEnv(), nil, func(ctx context.Context, client *mongo.Client) error {
		return clearAccounts(ctx, client, accounts)
	})
	// Step 2: with an account FerretDB's setup makes for this start, create one account per
	// password file, then drop this start's own account and database. FerretDB reads the setup
	// password from its environment (an argument would show in `ps`).
	start := options.Credential{AuthMechanism: "SCRAM-SHA-256", AuthSource: startPrefix + randomHex(8),
		Username: "nrw-start-" + randomHex(4), Password: randomHex(32)}
	onSocket("creating the accounts", []string{"--test-enable-new-auth",
		"--setup-database=" + start.AuthSource, "--setup-username=" + start.Username},
		append(serverEnv(), "FERRETDB_SETUP_PASSWORD="+start.Password), &start,
		func(ctx context.Context, client *mongo.Client) error {
			return createAccounts(ctx, client, start, accounts)
		})

	// Step 3: serve clients on the TCP address.
	serving, err := startServer(*server, append(args, "--test-enable-new-auth", "--listen-addr="+*listen), serverEnv())
	if err != nil {
		fail(1, "%v", err)
	}
	if *handler == "sqlite" {
		go keepIDIndexes(ctx, logger, sqliteDir)
	}
	ended, exited := make(chan error, 1), make(chan struct{})
	go func() {
		err := serving.Wait()
		close(exited)
		ended <- err
	}()
	go announce(exited, *listen, fmt.Sprintf("ferretdb: serving mongodb://%s/ (%s backend; %d accounts, authentication required)",
		*listen, *handler, len(accounts)))
	select {
	case err = <-ended:
	case <-ctx.Done():
		_ = serving.Process.Signal(syscall.SIGTERM)
		err = <-ended
	}
	if ctx.Err() == nil {
		fail(exitCode(err), "FerretDB stopped: %v", err)
	}
}

// announce prints the line once FerretDB accepts connections on its TCP address (not before:
// a port taken by another process makes it exit instead).
func announce(exited <-chan struct{}, address, line string) {
	for {
		if conn, err := net.DialTimeout("tcp", address, time.Second); err == nil {
			conn.Close()
			fmt.Fprintln(os.Stderr, line)
			return
		}
		select {
		case <-exited:
			return
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func fail(code int, format string, args ...any) {
	fmt.Fprintf(os.Stderr, "ferretdb: "+format+"\n", args...)
	os.Exit(code)
}

func exitCode(err error) int {
	var exit *exec.ExitError
	if errors.As(err, &exit) && exit.ExitCode() > 0 {
		return exit.ExitCode()
	}
	return 1
}

// readAccounts reads every <dir>/mongo-<account>.password: account name -> password. The
// operator's file must be there (FerretDB creates that account itself).
func readAccounts(dir string) (map[string]string, error) {
	files, err := filepath.Glob(filepath.Join(dir, "mongo-*.password"))
	if err != nil {
		return nil, err
	}
	accounts := map[string]string{}
	for _, file := range files {
		name := strings.TrimSuffix(strings.TrimPrefix(filepath.Base(file), "mongo-"), ".password")
		text, err := os.ReadFile(file)
		if err != nil {
			return nil, err
		}
		if password := strings.TrimSpace(string(text)); password != "" {
			accounts[name] = password
		}
	}
	if _, ok := accounts[operator]; !ok {
		return nil, fmt.Errorf("no password in %s (run `python -m shared.keys init`)",
			filepath.Join(dir, "mongo-"+operator+".password"))
	}
	return accounts, nil
}

// serverEnv is the little of this process's environment FerretDB needs: no FERRETDB_* setting
// of a caller's, and no secret a caller's environment might hold.
func serverEnv() []string {
	env := []string{"DO_NOT_TRACK=1"}
	for _, name := range []string{"PATH", "HOME", "TMPDIR", "TZ"} {
		if v, ok := os.LookupEnv(name); ok {
			env = append(env, name+"="+v)
		}
	}
	return env
}

func randomHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		fail(1, "no randomness: %v", err)
	}
	return hex.EncodeToString(b)
}

func startServer(path string, args []string, env []string) (*exec.Cmd, error) {
	cmd := exec.Command(path, args...)
	cmd.Env = env
	// Its own process group, so that a signal to ours (the stack's stop, Ctrl-C) reaches FerretDB
	// once, through us, and it shuts down cleanly; killed with us if we are killed.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("could not start %s (infra/ferretdb/build.sh builds it): %w", path, err)
	}
	return cmd, nil
}

// onSetupSocket waits for FerretDB's setup socket, connects to it (with the credential, if any)
// and runs work.
func onSetupSocket(ctx context.Context, socket string, ended chan error, credential *options.Credential,
	work func(context.Context, *mongo.Client) error) error {
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	for {
		if _, err := os.Stat(socket); err == nil {
			break
		}
		select {
		case err := <-ended:
			ended <- err // for the caller
			return fmt.Errorf("FerretDB stopped before it listened on its setup socket (%v; its output above says why)", err)
		case <-ctx.Done():
			return errors.New("FerretDB did not listen on its setup socket within 60 s (its output above may say why)")
		case <-time.After(50 * time.Millisecond):
		}
	}
	// One connection: FerretDB checks an account only when a connection logs in, and this one
	// must go on working once its own account is dropped.
	opts := options.Client().SetHosts([]string{socket}).SetMaxPoolSize(1).SetServerSelectionTimeout(30 * time.Second)
	if credential != nil {
		opts.SetAuth(*credential)
	}
	client, err := mongo.Connect(ctx, opts)
	if err != nil {
		return fmt.Errorf("could not connect to FerretDB's setup socket: %w", err)
	}
	defer client.Disconnect(context.Background())
	return work(ctx, client)
}

// clearAccounts, on a FerretDB that asks no login, drops admin.system.users (every account, and
// any index a service made on it: a unique one could refuse the next accounts) and the databases
// of the start accounts of starts that were killed. It logs how many accounts no password file
// names (not their names: those are a service's choice).
func clearAccounts(ctx context.Context, client *mongo.Client, accounts map[string]string) error {
	users := client.Database("admin").Collection("system.users")
	unknown, err := unknownAccounts(ctx, users, accounts)
	if err != nil {
		return fmt.Errorf("could not list the accounts in admin.system.users: %w", err)
	}
	if err := users.Drop(ctx); err != nil {
		return fmt.Errorf("could not drop admin.system.users: %w", err)
	}
	if unknown > 0 {
		fmt.Fprintf(os.Stderr, "ferretdb: dropped %d account(s) that have no password file\n", unknown)
	}
	databases, err := client.ListDatabaseNames(ctx, bson.D{})
	if err != nil {
		return fmt.Errorf("could not list the databases: %w", err)
	}
	for _, name := range databases {
		if strings.HasPrefix(name, startPrefix) {
			if err := client.Database(name).Drop(ctx); err != nil {
				return fmt.Errorf("could not drop %s, the database of a former start's account: %w", name, err)
			}
		}
	}
	return nil
}

// createAccounts, logged in with this start's own account on a FerretDB that holds no other,
// creates one account per password file (SCRAM-SHA-256 only), then drops its own account and
// database.
func createAccounts(ctx context.Context, client *mongo.Client, start options.Credential, accounts map[string]string) error {
	if err := client.Database("admin").RunCommand(ctx, bson.D{{Key: "connectionStatus", Value: 1}}).Err(); err != nil {
		return fmt.Errorf("this start's own account (made by FerretDB's setup) did not log in: %w", err)
	}
	names := make([]string, 0, len(accounts))
	for name := range accounts {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		err := client.Database("admin").RunCommand(ctx, bson.D{
			{Key: "createUser", Value: name}, {Key: "pwd", Value: accounts[name]},
			{Key: "roles", Value: bson.A{}}, {Key: "mechanisms", Value: bson.A{"SCRAM-SHA-256"}},
		}).Err()
		if err != nil {
			return fmt.Errorf("could not create the account %q: %w", name, err)
		}
	}
	own := client.Database(start.AuthSource)
	if err := own.RunCommand(ctx, bson.D{{Key: "dropUser", Value: start.Username}}).Err(); err != nil {
		return fmt.Errorf("could not drop this start's own account: %w", err)
	}
	if err := own.Drop(ctx); err != nil {
		return fmt.Errorf("could not drop this start's own database: %w", err)
	}
	return nil
}

// unknownAccounts counts the accounts that no password file names.
func unknownAccounts(ctx context.Context, users *mongo.Collection, accounts map[string]string) (int, error) {
	cursor, err := users.Find(ctx, bson.D{})
	if err != nil {
		return 0, err
	}
	var found []struct {
		ID any `bson:"_id"`
	}
	if err := cursor.All(ctx, &found); err != nil {
		return 0, err
	}
	unknown := 0
	for _, user := range found {
		id, ok := user.ID.(string)
		if !ok || !strings.HasPrefix(id, "admin.") || accounts[strings.TrimPrefix(id, "admin.")] == "" {
			unknown++
		}
	}
	return unknown, nil
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
