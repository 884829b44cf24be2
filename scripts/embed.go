// Package scripts holds the driver scripts shipped inside the restore-run binary:
// one NAME.star per database, shared helpers under lib/ and drills under drills/.
// A script of the same name and version in a script directory on disk shadows the
// embedded one (see `restore-run drivers`).
package scripts

import "embed"

// FS is the embedded script tree.
//
//go:embed *.star lib/*.star drills/*.star
var FS embed.FS
