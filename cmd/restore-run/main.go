// Command restore-run restores database snapshots (etcd, MySQL/MariaDB, Cassandra)
// with versioned Starlark driver scripts, validates the result and reports the
// recovery time. See README.md and docs/.
//
// Exit codes: 0 success; 1 restore or validation failed; 2 usage, configuration or
// script error; 130 interrupted.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/restore-run/restore-run/drivers"
	"github.com/restore-run/restore-run/engine"
)

// Exit codes.
const (
	exitOK          = 0
	exitFailed      = 1
	exitUsage       = 2
	exitInterrupted = 130
)

func main() {
	ctx, cancel := context.WithCancelCause(context.Background())
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	go func() {
		s := <-sigs
		fmt.Fprintf(os.Stderr, "restore-run: %s received: stopping, rolling back and cleaning up (send it again to exit at once)\n", s)
		cancel(fmt.Errorf("interrupted by %s", s))
		<-sigs
		fmt.Fprintln(os.Stderr, "restore-run: second signal: exiting now without cleanup")
		os.Exit(exitInterrupted)
	}()
	os.Exit(run(ctx, os.Args[1:]))
}

func run(ctx context.Context, args []string) int {
	root, g := newRootCmd()
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return exitOK
	}
	if !g.started {
		// cobra found the mistake (unknown command or flag, missing required flag,
		// wrong arguments) before any command ran.
		err = &flagError{err}
	}
	var se *silentError
	if !errors.As(err, &se) {
		fmt.Fprintln(os.Stderr, "restore-run: "+err.Error())
		if bt := engine.BacktraceOf(err); bt != "" {
			fmt.Fprintln(os.Stderr, bt)
		}
	}
	return exitCode(err)
}

// exitCode maps an error to the documented exit codes.
func exitCode(err error) int {
	var ue *engine.UsageError
	var fe *flagError
	switch {
	case err == nil:
		return exitOK
	case errors.As(err, &fe), errors.As(err, &ue):
		return exitUsage
	}
	switch drivers.ClassOf(err) {
	case drivers.Cancelled:
		return exitInterrupted
	case drivers.Script:
		return exitUsage
	}
	return exitFailed
}

// flagError is a command-line mistake found by cobra or by a command.
type flagError struct{ error }

func (e *flagError) Unwrap() error { return e.error }

// silentError is a failure already reported to the user; main only sets the exit
// code.
type silentError struct{ error }

func (e *silentError) Unwrap() error { return e.error }
