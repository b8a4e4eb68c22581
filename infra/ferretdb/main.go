// Command ferretdb runs FerretDB v1.24 for the stack: it starts FerretDB's own command
// (ferretdb-server, built by build.sh), makes sure every database account exists with the password
// in its credentials file, and keeps the _id indexes FerretDB's SQLite backend lacks.
//
// Accounts. Only FerretDB's own command takes the flags of its authentication
// (--test-enable-new-auth, --setup-*): the embeddable package github.com/FerretDB/FerretDB/ferretdb
// has no option for them. With them, every command but the handshake, saslStart/saslContinue,
// ping, buildInfo and a few like them is refused to a client that has not authenticated with
// SCRAM; the first account ("operator", in the admin database) is created by FerretDB itself when
// the admin database does not exist yet. FerretDB v1.24 has no authorisation: createUser refuses
// any role (FerretDB issue #174), and every authenticated account may read and write every
// database. Each start therefore runs in two steps: FerretDB listens first on a Unix socket only
// (in the private run folder), where this program logs in as the operator and creates or updates
// one account per password file (<secrets>/mongo-<account>.password, written by
// `python -m shared.keys init`); then FerretDB is restarted on its TCP address, so that no service
// ever connects before its account exists.
//
// Indexes. Queries by _id filter on `_ferretdb_sjson->'$._id'`, while the _id index FerretDB
// creates is on `_ferretdb_sjson->"_id"`, so SQLite cannot use it and every lookup by _id scans
// the whole table (FerretDB issue #3340). An index on the exact expression the queries use turns
// those scans into index searches; FerretDB's own unique index still enforces uniqueness.
package main

import (
	"context"
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

// operator is the account FerretDB creates at its first start; it creates the others.
const operator = "operator"

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
		"--test-enable-new-auth", "--setup-database=admin", "--setup-username=" + operator,
	}
	if *handler == "postgresql" {
		args = append(args, "--postgresql-url="+*postgresURL)
	}
	env := serverEnv(accounts[operator])

	// A port another process holds (another stack's FerretDB, say) fails the start at once.
	if l, err := net.Listen("tcp", *listen); err != nil {
		fail(1, "%v", err)
	} else {
		l.Close()
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	// Step 1: on a Unix socket only, create or update every account.
	socket := filepath.Join(*runDir, "ferretdb-setup.sock")
	_ = os.Remove(socket) // left by a process that was killed
	setup, err := startServer(*server, append(args, "--listen-addr=", "--listen-unix="+socket), env)
	if err != nil {
		fail(1, "%v", err)
	}
	err = ensureAccounts(ctx, socket, accounts, setup)
	_ = setup.Process.Signal(syscall.SIGTERM)
	_ = setup.Wait()
	if err != nil {
		fail(1, "%v", err)
	}
	if ctx.Err() != nil {
		return
	}

	// Step 2: serve clients on the TCP address.
	serving, err := startServer(*server, append(args, "--listen-addr="+*listen), env)
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

// serverEnv is this process's environment without FerretDB's own settings, plus the operator's
// password for the setup (an environment variable, not an argument that `ps` would show).
func serverEnv(operatorPassword string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "FERRETDB_") {
			env = append(env, kv)
		}
	}
	return append(env, "FERRETDB_SETUP_PASSWORD="+operatorPassword, "DO_NOT_TRACK=1")
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

// ensureAccounts logs in as the operator on the setup socket and creates every other account, or
// sets its password to the one in its file (a file made anew, say); SCRAM-SHA-256 only.
func ensureAccounts(ctx context.Context, socket string, accounts map[string]string, setup *exec.Cmd) error {
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	for {
		if _, err := os.Stat(socket); err == nil {
			break
		}
		if setup.ProcessState != nil || ctx.Err() != nil {
			return errors.New("FerretDB did not start (its output above says why)")
		}
		time.Sleep(50 * time.Millisecond)
	}
	client, err := mongo.Connect(ctx, options.Client().SetHosts([]string{socket}).SetAuth(options.Credential{
		AuthMechanism: "SCRAM-SHA-256", AuthSource: "admin", Username: operator, Password: accounts[operator],
	}).SetServerSelectionTimeout(30*time.Second))
	if err != nil {
		return fmt.Errorf("could not connect to FerretDB's setup socket: %w", err)
	}
	defer client.Disconnect(context.Background())
	admin := client.Database("admin")

	names := make([]string, 0, len(accounts))
	for name := range accounts {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		var info struct {
			Users []bson.M `bson:"users"`
		}
		if err := admin.RunCommand(ctx, bson.D{{Key: "usersInfo", Value: name}}).Decode(&info); err != nil {
			if name == operator {
				return fmt.Errorf("the operator account does not log in with the password in mongo-operator.password "+
					"(was var/secrets made anew while var/ferretdb was kept?): %w", err)
			}
			return fmt.Errorf("usersInfo %s: %w", name, err)
		}
		command := "createUser"
		if len(info.Users) > 0 {
			command = "updateUser"
		}
		err := admin.RunCommand(ctx, bson.D{
			{Key: command, Value: name}, {Key: "pwd", Value: accounts[name]},
			{Key: "roles", Value: bson.A{}}, {Key: "mechanisms", Value: bson.A{"SCRAM-SHA-256"}},
		}).Err()
		if err != nil {
			return fmt.Errorf("%s %s: %w", command, name, err)
		}
	}
	return nil
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
